// The mechanics of the paper methods on a tiny model: TWINS' two wings, SAM's ascent step, and SAT's
// smooth backward applied only where asked.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { Tensor } from '../../src/ir/tensor.js';
import { parseActivation } from '../../src/models/index.js';
import { ensureArtifacts, type ArtifactConfig } from '../../src/train/artifacts.js';
import type { LossConfig } from '../../src/train/objectives.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';

const graphs = mkdtempSync(join(tmpdir(), 'advrun-methods-'));
const spec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.3], std: [0.3] };
const sgd = { kind: 'sgd' as const, momentum: 0.9, nesterov: false, weightDecay: 0 };
const cfg = (loss: LossConfig, extra: Partial<ArtifactConfig> = {}): ArtifactConfig => ({ model: spec, loss, optimizer: sgd, ...extra });
const ce: LossConfig = { kind: 'ce', labelSmoothing: 0 };

const rng = new Rng(5);
const N = 8;
const x = rng.fillUniform(new Float32Array(N * 144), 0, 1);
const y = Int32Array.from({ length: N }, () => rng.int(10));

const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

function runtime(c: ArtifactConfig, state?: Map<string, Tensor>): ModelRuntime {
  const art = ensureArtifacts(c, graphs);
  const rt = new ModelRuntime(art, state ?? initialState(art.manifest, 0));
  runtimes.push(rt);
  return rt;
}

const copy = (t: Tensor): Tensor => ({ ...t, data: t.data.slice() as Tensor['data'] });
const arr = (t: Tensor) => Array.from(t.data as Float32Array);
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A state for every tensor of `rt` taken from `base` (plus TWINS' frozen copies), momentum zero. */
function stateLike(rt: ModelRuntime, base: Map<string, Tensor>, frozenScale = 1): Map<string, Tensor> {
  const s = initialState(rt.manifest, 0);
  for (const k of s.keys()) {
    if (k.startsWith('momentum.')) continue;
    const src = base.get(k.replace(/^frozen\./, ''))!;
    const t = copy(src);
    // Make the frozen wing's BN differ from the adaptive one's, so swapping the wings would show.
    if (k.startsWith('frozen.')) (t.data as Float32Array).forEach((v, i, a) => { a[i] = k.endsWith('running_var') ? v * frozenScale + 0.5 : v * frozenScale + 0.1; });
    s.set(k, t);
  }
  return s;
}

describe('TWINS', () => {
  const base = initialState(ensureArtifacts(cfg(ce), graphs).manifest, 3);

  test('frozen BN statistics never change; adaptive ones and both wings\' affine parameters do', async () => {
    const rt = runtime(cfg({ kind: 'twins-at', lambda: 1, labelSmoothing: 0 }));
    rt.setState(stateLike(rt, base, 1.3));
    const before = rt.getState();
    for (let i = 0; i < 3; i++) await rt.trainStep(x, y, N, 0.1);
    const after = rt.getState();
    for (const bn of ['bn1', 'bn2', 'bn3']) {
      for (const stat of ['running_mean', 'running_var']) {
        expect(arr(after.get(`frozen.${bn}.${stat}`)!)).toEqual(arr(before.get(`frozen.${bn}.${stat}`)!));
        expect(maxDiff(arr(after.get(`${bn}.${stat}`)!), arr(before.get(`${bn}.${stat}`)!))).toBeGreaterThan(1e-4);
      }
      for (const p of [`frozen.${bn}.weight`, `${bn}.weight`]) expect(maxDiff(arr(after.get(p)!), arr(before.get(p)!))).toBeGreaterThan(1e-6);
    }
    expect(rt.manifest.graphs.eval!.inputs.some((i) => i.name.startsWith('frozen.'))).toBe(false); // eval = adaptive net only
  });

  test('first half through the frozen wing, second through the adaptive wing, loss = lambda CE_f + CE_a', async () => {
    const lambda = 0.4;
    const twins = runtime(cfg({ kind: 'twins-at', lambda, labelSmoothing: 0 }));
    const twinsState = stateLike(twins, base, 1.3);
    twins.setState(twinsState);
    const { loss } = await twins.trainStep(x, y, N, 0);

    // Frozen wing = the model in eval mode with the frozen BN tensors in place of the BN layers.
    const frozenAsModel = runtime(cfg(ce));
    const fs = initialState(frozenAsModel.manifest, 0);
    for (const k of fs.keys()) if (!k.startsWith('momentum.')) fs.set(k, twinsState.get(twinsState.has(`frozen.${k}`) ? `frozen.${k}` : k)!);
    frozenAsModel.setState(fs);
    const h = N / 2, per = 144;
    const ceFrozen = (await frozenAsModel.lossGrad(x.subarray(0, h * per), h, { kind: 'ce', labels: y.subarray(0, h) })).loss.reduce((a, v) => a + v, 0) / h;
    // Adaptive wing = an ordinary train-mode step on the second half.
    const adaptive = runtime(cfg(ce), stateLike(runtime(cfg(ce)), base));
    const ceAdaptive = (await adaptive.trainStep(x.subarray(h * per), y.subarray(h), h, 0)).loss;
    expect(Math.abs(loss - (lambda * ceFrozen + ceAdaptive))).toBeLessThan(1e-5);
    // The other assignment of halves gives a different number (the test can tell the wings apart).
    const swapped = (await frozenAsModel.lossGrad(x.subarray(h * per), h, { kind: 'ce', labels: y.subarray(h) })).loss.reduce((a, v) => a + v, 0) / h;
    expect(Math.abs(lambda * swapped + ceAdaptive - loss)).toBeGreaterThan(1e-3);
  });

  test('an odd batch is a clear error', async () => {
    const rt = runtime(cfg({ kind: 'twins-at', lambda: 1, labelSmoothing: 0 }));
    rt.setState(stateLike(rt, base));
    await expect(rt.trainStep(x.subarray(0, 7 * 144), y.subarray(0, 7), 7, 0.1)).rejects.toThrow(/even --batch-size/);
  });
});

describe('SAM', () => {
  test('ascent step is rho g/||g|| and the update uses the gradient at the perturbed weights', async () => {
    const rho = 0.5, lr = 0.1;
    const plain = runtime(cfg(ce));
    const w0 = plain.getState();
    await plain.trainStep(x, y, N, 0);
    const g1 = plain.getState(); // momentum.* = gradient at w0 (lr 0, zero momentum, no weight decay)
    const params = plain.manifest.params.map((p) => p.name);
    let norm = 0;
    for (const p of params) for (const v of arr(g1.get(`momentum.${p}`)!)) norm += v * v;
    norm = Math.sqrt(norm);
    // Gradient at w0 + rho g/||g||, from an ordinary step there.
    const perturbed = new Map(w0);
    for (const p of params) {
      const g = arr(g1.get(`momentum.${p}`)!);
      perturbed.set(p, { ...w0.get(p)!, data: Float32Array.from(arr(w0.get(p)!), (v, i) => v + (rho * g[i]!) / norm) });
    }
    const atPerturbed = runtime(cfg(ce), perturbed);
    await atPerturbed.trainStep(x, y, N, 0);
    const g2 = atPerturbed.getState();

    const sam = runtime(cfg(ce, { samRho: rho }), w0);
    await sam.trainStep(x, y, N, lr);
    const after = sam.getState();
    for (const p of params) {
      const want = arr(g2.get(`momentum.${p}`)!);
      const scale = Math.max(1e-3, ...want.map(Math.abs));
      expect(maxDiff(arr(after.get(`momentum.${p}`)!), want) / scale, p).toBeLessThan(1e-3);
      expect(maxDiff(arr(after.get(p)!), arr(w0.get(p)!).map((v, i) => v - lr * want[i]!)), p).toBeLessThan(1e-5);
      // and it is not the plain gradient
    }
    expect(maxDiff(arr(after.get('momentum.fc.weight')!), arr(g1.get('momentum.fc.weight')!))).toBeGreaterThan(1e-4);
    // BN running statistics come from the first (unperturbed) pass only.
    for (const b of sam.manifest.buffers) expect(maxDiff(arr(after.get(b)!), arr(g1.get(b)!)), b).toBeLessThan(1e-6);
  });
});

describe('SAT smooth backward', () => {
  const variants = { attacker: { attacker: true, optimizer: false }, optimizer: { attacker: false, optimizer: true } } as const;

  async function gradients(c: ArtifactConfig) {
    // State as inputs: the first and second run in a state would otherwise come from different sessions (the
    // compiled one is built on the second run), which agree only to float32 rounding; these checks are exact.
    const art = ensureArtifacts(c, graphs);
    const rt = new ModelRuntime(art, initialState(art.manifest, 0), { stateBinding: 'inputs' });
    runtimes.push(rt);
    const trainAttack = (await rt.trainingAttacker().lossGrad(x, N, { kind: 'ce', labels: y })).grad;
    const evalAttack = (await rt.lossGrad(x, N, { kind: 'ce', labels: y })).grad;
    await rt.trainStep(x, y, N, 0);
    return { trainAttack, evalAttack, weights: arr(rt.getState().get('momentum.conv1.weight')!) };
  }

  test('each variant changes only the gradient it names; evaluation attacks keep the true gradient', async () => {
    const plain = await gradients(cfg(ce));
    expect(maxDiff(plain.trainAttack, plain.evalAttack)).toBe(0);
    const att = await gradients(cfg(ce, { smoothBackward: { alpha: 10, ...variants.attacker } }));
    expect(maxDiff(att.trainAttack, plain.trainAttack)).toBeGreaterThan(1e-6);
    expect(maxDiff(att.evalAttack, plain.evalAttack)).toBe(0);
    expect(maxDiff(att.weights, plain.weights)).toBe(0);
    const opt = await gradients(cfg(ce, { smoothBackward: { alpha: 10, ...variants.optimizer } }));
    expect(maxDiff(opt.trainAttack, plain.trainAttack)).toBe(0);
    expect(maxDiff(opt.weights, plain.weights)).toBeGreaterThan(1e-6);
  });
});
