// The toy models' analytic gradients against central finite differences, so the attack tests can
// trust them.

import { describe, expect, test } from 'vitest';
import type { AttackLoss } from '../../src/attacks/types.js';
import { Rng } from '../../src/util/random.js';
import { randomImages, ToyModel } from './toy-model.js';

function softmax(z: Float32Array, k: number): Float32Array {
  const out = new Float32Array(z.length);
  for (let i = 0; i < z.length / k; i++) {
    const row = Array.from(z.subarray(i * k, i * k + k));
    const mx = Math.max(...row);
    const e = row.map((v) => Math.exp(v - mx));
    const s = e.reduce((a, b) => a + b, 0);
    for (let c = 0; c < k; c++) out[i * k + c] = e[c]! / s;
  }
  return out;
}

describe('toy model gradients', () => {
  const n = 3;
  for (const hidden of [0, 16]) {
    const model = new ToyModel({ numClasses: 6, shape: [2, 3, 3], hidden, seed: 4 });
    const d = model.d;
    // Keep inputs away from 0/1 so ±h stays a plain perturbation.
    const x = randomImages(n, d, 5).map((v) => 0.2 + 0.6 * v);
    const y = Int32Array.from([0, 3, 5]);
    const targets = Int32Array.from([2, 1, 4]);
    const losses = async (): Promise<AttackLoss[]> => {
      const other = new Float32Array(x.length);
      new Rng(9).fillUniform(other, 0, 1);
      const p = softmax(await model.logits(other, n), 6);
      return [
        { kind: 'ce', labels: y },
        { kind: 'dlr', labels: y },
        { kind: 'dlr-targeted', labels: y, targets },
        { kind: 'kl', cleanProbs: p },
      ];
    };
    test(`${hidden ? 'MLP' : 'linear'}: every loss matches finite differences`, async () => {
      for (const loss of await losses()) {
        const { grad, loss: l0 } = await model.lossGrad(x, n, loss);
        expect(l0.every(Number.isFinite)).toBe(true);
        let worst = 0;
        for (let i = 0; i < x.length; i += 5) {
          const xp = x.slice();
          const xm = x.slice();
          xp[i] = xp[i]! + 1e-3;
          xm[i] = xm[i]! - 1e-3;
          const lp = (await model.lossGrad(xp, n, loss)).loss;
          const lm = (await model.lossGrad(xm, n, loss)).loss;
          const row = Math.floor(i / d);
          const fd = (lp[row]! - lm[row]!) / (xp[i]! - xm[i]!);
          worst = Math.max(worst, Math.abs(fd - grad[i]!) / (1e-2 + Math.abs(grad[i]!)));
        }
        expect(worst, `loss ${loss.kind}`).toBeLessThan(5e-2);
      }
    });
  }
});
