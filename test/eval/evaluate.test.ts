// evaluate(): clean accuracy counts argmax hits, the attack runs on the correct points only, and the
// gradient-masking sanity checks fire on the signs they look for.
import { describe, expect, test } from 'vitest';
import type { AttackLoss, AttackModel, LossGradResult } from '../../src/attacks/types.js';
import type { Dataset } from '../../src/data/types.js';
import { createAttack } from '../../src/attacks/index.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { predictedLabels, randomImages, ToyModel } from '../attacks/toy-model.js';

function dataset(x: Float32Array, y: Int32Array, shape: [number, number, number], k: number): Dataset {
  return {
    name: 'toy', split: 'test', n: y.length, channels: shape[0], height: shape[1], width: shape[2], numClasses: k,
    classNames: Array.from({ length: k }, (_, i) => String(i)), originalClassIds: Array.from({ length: k }, (_, i) => i),
    mean: [0], std: [1], images: x, labels: y, source: 'memory',
  };
}

/** Wraps a model: outputs softmax probabilities instead of logits, and/or returns all-zero input gradients. */
class Masked implements AttackModel {
  constructor(private readonly inner: ToyModel, private readonly o: { softmax?: boolean; zeroGrad?: boolean }) {}
  get numClasses() { return this.inner.numClasses; }
  get inputShape() { return this.inner.inputShape; }
  private probs(z: Float32Array): Float32Array {
    if (!this.o.softmax) return z;
    const k = this.numClasses, out = new Float32Array(z.length);
    for (let i = 0; i < z.length / k; i++) {
      const row = z.subarray(i * k, (i + 1) * k), mx = Math.max(...row);
      const e = Array.from(row, (v) => Math.exp(v - mx)), s = e.reduce((a, v) => a + v, 0);
      e.forEach((v, j) => { out[i * k + j] = v / s; });
    }
    return out;
  }
  async logits(x: Float32Array, n: number) { return this.probs(await this.inner.logits(x, n)); }
  async lossGrad(x: Float32Array, n: number, loss: AttackLoss): Promise<LossGradResult> {
    const r = await this.inner.lossGrad(x, n, loss);
    return { ...r, logits: this.probs(r.logits), grad: this.o.zeroGrad ? new Float32Array(r.grad.length) : r.grad };
  }
}

describe('evaluate', () => {
  const shape: [number, number, number] = [1, 4, 4];
  const model = new ToyModel({ numClasses: 5, shape, hidden: 8, seed: 3 });
  const n = 24;
  const x = randomImages(n, model.d, 4);

  test('clean accuracy is the argmax hit rate; robust accuracy never exceeds it; a healthy model gets no warnings', async () => {
    const y = await predictedLabels(model, x, n);
    for (const i of [0, 5, 9]) y[i] = (y[i]! + 1) % 5; // three clean errors
    const r = await evaluate(model, dataset(x, y, shape, 5), { attack: 'pgd', eps: 0.1, norm: 'linf', steps: 5, seed: 0, batchSize: 10 });
    expect(r.clean_acc).toBeCloseTo(21 / 24, 12);
    expect(r.robust_acc!).toBeLessThanOrEqual(r.clean_acc);
    expect(r.warnings).toEqual([]);
  });

  test('each example is attacked the same way however the examples are batched (its random stream follows its id)', async () => {
    const y = await predictedLabels(model, x, n);
    const d = model.d, h = 9;
    for (const name of ['pgd', 'apgd-ce', 'square'] as const) {
      const attack = createAttack(name, { eps: 0.3, norm: 'linf', steps: 3, nQueries: 20, seed: 5 });
      const whole = await attack.run(model, x, y, n, Array.from({ length: n }, (_, i) => i));
      const first = await attack.run(model, x.slice(0, h * d), y.slice(0, h), h, Array.from({ length: h }, (_, i) => i));
      const rest = await attack.run(model, x.slice(h * d), y.slice(h), n - h, Array.from({ length: n - h }, (_, i) => h + i));
      expect(Array.from(whole.xAdv), name).toEqual([...first.xAdv, ...rest.xAdv]);
      // Without ids the second piece's examples would get the first piece's streams.
      const unnamed = await attack.run(model, x.slice(h * d), y.slice(h), n - h);
      if (name !== 'apgd-ce') expect(Array.from(unnamed.xAdv), name).not.toEqual(Array.from(rest.xAdv));
    }
    const robustAt = async (batchSize: number) => (await evaluate(model, dataset(x, y, shape, 5), { attack: 'pgd', eps: 0.3, norm: 'linf', steps: 1, seed: 2, batchSize })).robust_acc;
    expect(await robustAt(5)).toBe(await robustAt(24));
  });

  test('warns on a randomised model (outputs differ between identical calls) and on a single zero-gradient point', async () => {
    const y = await predictedLabels(model, x, n);
    let calls = 0;
    const noisy: AttackModel = {
      numClasses: model.numClasses, inputShape: model.inputShape,
      logits: async (xs, m) => (await model.logits(xs, m)).map((v) => v + 0.05 * (++calls % 7)),
      lossGrad: (xs, m, loss) => model.lossGrad(xs, m, loss),
    };
    const r = await evaluate(noisy, dataset(x, y, shape, 5), { attack: null, batchSize: 24 });
    expect(r.warnings.join('\n')).toMatch(/different outputs for the same input/);
    // One example with an all-zero gradient is enough for a warning (AutoAttack's rule).
    const oneFlat: AttackModel = {
      numClasses: model.numClasses, inputShape: model.inputShape, logits: (xs, m) => model.logits(xs, m),
      lossGrad: async (xs, m, loss) => { const g = await model.lossGrad(xs, m, loss); const grad = g.grad.slice(); grad.fill(0, 0, model.d); return { ...g, grad }; },
    };
    const flat = await evaluate(oneFlat, dataset(x, y, shape, 5), { attack: null, batchSize: 24 });
    expect(flat.warnings.join('\n')).toMatch(/1\/24 examples have an all-zero input gradient/);
  });

  test('warns on probabilities instead of logits and on all-zero input gradients', async () => {
    const y = await predictedLabels(model, x, n);
    const soft = await evaluate(new Masked(model, { softmax: true }), dataset(x, y, shape, 5), { attack: null, batchSize: 24 });
    expect(soft.warnings.join('\n')).toMatch(/probabilities \(softmax\)/);
    const flat = await evaluate(new Masked(model, { zeroGrad: true }), dataset(x, y, shape, 5), { attack: null, batchSize: 24 });
    expect(flat.warnings.join('\n')).toMatch(/24\/24 examples have an all-zero input gradient/);
  });

  test('aa-lite: warns when the black-box Square stage breaks points the white-box stages left (zero gradients)', async () => {
    const y = await predictedLabels(model, x, n);
    const r = await evaluate(new Masked(model, { zeroGrad: true }), dataset(x, y, shape, 5), { attack: 'aa-lite', eps: 0.3, norm: 'linf', steps: 5, nQueries: 200, nTargetClasses: 2, seed: 0, batchSize: 24 });
    expect(r.warnings.join('\n')).toMatch(/black-box Square attack broke \d+ points the white-box APGD attacks did not/);
  });
});
