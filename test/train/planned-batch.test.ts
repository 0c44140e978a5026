// A train step planned for a batch size (ArtifactConfig.plannedBatch, the run's --batch-size) builds its
// weight-gradient columns in cache-sized pieces of that batch. It must run any batch size and give what
// the unplanned step gives: fewer images than planned (trailing pieces empty) and more (the last piece grows).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { modelProtoToGraph } from '../../src/onnx/io.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-6, diff = 0;
  for (let i = 0; i < b.length; i++) { scale = Math.max(scale, Math.abs(b[i]!)); diff = Math.max(diff, Math.abs(a[i]! - b[i]!)); }
  return diff / scale;
}

describe('train step planned for a batch size', () => {
  test('planned for 128 images, run with 70 and 200: the same state after a step as the unplanned one', async () => {
    const model = { arch: 'small-cnn', width: 16, inChannels: 1, imageSize: 28, numClasses: 10, activation: { kind: 'relu' as const }, mean: [0.5], std: [0.25] };
    const base = { model, loss: { kind: 'ce' as const }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false } };
    const dir = mkdtempSync(join(tmpdir(), 'advrun-planned-'));
    const planned = ensureArtifacts({ ...base, plannedBatch: 128 }, dir), unplanned = ensureArtifacts(base, dir);
    expect(planned.dir).not.toBe(unplanned.dir);
    expect(planned.manifest.config.plannedBatch).toBe(128);
    // The planned graph builds columns in pieces: more column convolutions than the unplanned one.
    const convs = (bytes: Uint8Array) => modelProtoToGraph(bytes, 'train_step').nodes.filter((n) => n.op === 'Conv').length;
    expect(convs(planned.bytes.train_step!)).toBeGreaterThan(convs(unplanned.bytes.train_step!));

    const rng = new Rng(4);
    for (const n of [70, 200]) {
      const x = rng.fillUniform(new Float32Array(n * 28 * 28), 0, 1);
      const y = Int32Array.from({ length: n }, () => rng.int(10));
      const runtimes = [planned, unplanned].map((art) => new ModelRuntime(art, initialState(art.manifest, 0), { threads: 1, stateBinding: 'inputs' }));
      // One step: after it the momentum buffers hold each gradient (plus weight decay), compared to float32 rounding.
      // (Over several steps rounding differences grow chaotically in near-cancelling sums such as BN biases.)
      for (const rt of runtimes) await rt.trainStep(x, y, n, 0.05);
      const [a, b] = runtimes.map((rt) => rt.getState());
      for (const [name, t] of b!) expect(maxRelDiff(a!.get(name)!.data as Float32Array, t.data as Float32Array), `${name}, batch ${n}`).toBeLessThan(1e-5);
      for (const rt of runtimes) await rt.release();
    }
  }, 120_000);
});
