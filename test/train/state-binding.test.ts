// ModelRuntime's compiled-state sessions (the CPU default): the eval and attack graphs get the model state
// as constants and are rebuilt after every state change. They must agree with the state-as-inputs graphs
// and never serve a stale state.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';

const model = { arch: 'small-cnn', width: 4, inChannels: 1, imageSize: 28, numClasses: 10, activation: { kind: 'relu' as const }, mean: [0.5], std: [0.25] };
const cfg = { model, loss: { kind: 'ce' as const }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false } };

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  const scale = Math.max(1e-6, ...Array.from(b, Math.abs));
  return Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!))) / scale;
}

describe('compiled-state sessions', () => {
  test('match the state-as-inputs graphs before and after train steps, and follow every state change', async () => {
    const art = ensureArtifacts(cfg, mkdtempSync(join(tmpdir(), 'advrun-binding-')));
    const compiled = new ModelRuntime(art, initialState(art.manifest, 0), { threads: 1 });
    const inputs = new ModelRuntime(art, initialState(art.manifest, 0), { threads: 1, stateBinding: 'inputs' });
    expect(compiled.stateBinding).toBe('compiled');
    const rng = new Rng(1);
    const n = 16;
    const x = rng.fillUniform(new Float32Array(n * 784), 0, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(10));
    const loss = { kind: 'ce' as const, labels: y };
    const before = await compiled.lossGrad(x, n, loss);
    expect(maxRelDiff(before.grad, (await inputs.lossGrad(x, n, loss)).grad)).toBeLessThan(1e-4);
    for (let i = 0; i < 3; i++) {
      await compiled.trainStep(x, y, n, 0.1);
      await inputs.trainStep(x, y, n, 0.1);
    }
    const after = await compiled.lossGrad(x, n, loss);
    expect(maxRelDiff(after.grad, before.grad)).toBeGreaterThan(1e-2); // a stale session would repeat `before`
    expect(maxRelDiff(after.grad, (await inputs.lossGrad(x, n, loss)).grad)).toBeLessThan(1e-3);
    expect(maxRelDiff(await compiled.logits(x, n), await inputs.logits(x, n))).toBeLessThan(1e-3);
    // setState (a checkpoint load) also invalidates the compiled sessions.
    compiled.setState(initialState(art.manifest, 0));
    expect(maxRelDiff((await compiled.lossGrad(x, n, loss)).grad, before.grad)).toBeLessThan(1e-5);
    await compiled.release();
    await inputs.release();
  });

  test('a graph is compiled for a state only on its second run in that state', async () => {
    const art = ensureArtifacts(cfg, mkdtempSync(join(tmpdir(), 'advrun-binding-')));
    const rt = new ModelRuntime(art, initialState(art.manifest, 0), { threads: 1 });
    const rng = new Rng(4);
    const n = 4;
    const x = rng.fillUniform(new Float32Array(n * 784), 0, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(10));
    const first = await rt.logits(x, n);
    expect(rt.compiledGraphs).toEqual([]); // one run per state (PGD's clean logits) costs no session build
    const second = await rt.logits(x, n);
    expect(rt.compiledGraphs).toEqual(['eval']);
    expect(maxRelDiff(second, first)).toBeLessThan(1e-5);
    await rt.trainStep(x, y, n, 0.1);
    await rt.logits(x, n);
    expect(rt.compiledGraphs).toEqual([]); // the new state starts counting again
    await rt.logits(x, n);
    expect(rt.compiledGraphs).toEqual(['eval']);
    // An epoch start forgets the state's history: a resumed run, whose runtime is new, sees the same sessions.
    await rt.restartStateRuns();
    expect(rt.compiledGraphs).toEqual([]);
    await rt.logits(x, n);
    expect(rt.compiledGraphs).toEqual([]);
    await rt.release();
  });
});
