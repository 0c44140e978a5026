// Every attack, both norms: xAdv stays in the eps-ball around x and in [0,1], `robust` agrees with
// the model on xAdv, `queries` matches the passes the model saw, and the input is not modified.

import { describe, expect, test } from 'vitest';
import { ATTACK_NAMES, createAttack, type CreateAttackOptions } from '../../src/attacks/index.js';
import type { Norm } from '../../src/attacks/types.js';
import { correctMask, count, perturbationStats, predictedLabels, randomImages, ToyModel } from './toy-model.js';

const n = 16;

/** Small budgets: these tests check invariants, not strength. */
function options(name: string, norm: Norm, eps: number): CreateAttackOptions {
  const steps = name === 'apgd-ce' || name === 'apgd-t' || name === 'aa-lite' ? 12 : 8;
  return { eps, norm, seed: 3, steps, nQueries: 60, nTargetClasses: 3, restarts: name === 'pgd' || name === 'fgsm-rs' ? 2 : 1 };
}

describe('eps-ball and [0,1] for every attack', () => {
  const model = new ToyModel({ numClasses: 10, shape: [3, 6, 6], hidden: 24, seed: 11, weightScale: 0.6 });
  const d = model.d;
  const x = randomImages(n, d, 12);
  const cases: [Norm, number][] = [
    ['linf', 0.03],
    ['linf', 0.3],
    ['l2', 0.5],
    ['l2', 3],
  ];
  for (const name of ATTACK_NAMES) {
    for (const [norm, eps] of cases) {
      test(`${name} ${norm} eps=${eps}`, async () => {
        const y = await predictedLabels(model, x, n);
        y[0] = (y[0]! + 1) % 10; // one clean-misclassified example
        const xCopy = x.slice();
        model.calls = [];
        const r = await createAttack(name, options(name, norm, eps)).run(model, x, y, n);
        expect(x).toEqual(xCopy);
        expect(r.xAdv.length).toBe(x.length);
        expect(r.robust.length).toBe(n);
        const s = perturbationStats(r.xAdv, x, n, d);
        // Exactly inside the ball, float32 rounding included (no tolerance: the projections guarantee it).
        expect(norm === 'linf' ? s.linf : s.l2).toBeLessThanOrEqual(eps);
        expect(s.min).toBeGreaterThanOrEqual(0);
        expect(s.max).toBeLessThanOrEqual(1);
        // The attack did move the points (all of these perturb), and robust agrees with the model.
        expect(norm === 'linf' ? s.linf : s.l2).toBeGreaterThan(eps / 10);
        model.calls = [];
        expect(Array.from(r.robust)).toEqual(Array.from(await correctMask(model, r.xAdv, y, n)));
        expect(r.robust[0]).toBe(0);
        // Large budgets break something.
        if (eps >= 0.3 && name !== 'square') expect(count(r.robust)).toBeLessThan(n - 1);
      });
    }
  }
});

describe('query accounting and eps = 0', () => {
  const model = new ToyModel({ numClasses: 6, shape: [1, 5, 5], hidden: 8, seed: 2 });
  const x = randomImages(8, model.d, 3);
  for (const name of ATTACK_NAMES) {
    test(`${name}: queries = passes seen by the model; eps 0 returns x`, async () => {
      const y = await predictedLabels(model, x, 8);
      for (const norm of ['linf', 'l2'] as const) {
        model.calls = [];
        const r = await createAttack(name, { ...options(name, norm, 0.1), nTargetClasses: 2 }).run(model, x, y, 8);
        expect(r.queries).toBe(model.calls.length);
        expect(r.queries).toBeGreaterThan(0);
        const z = await createAttack(name, { ...options(name, norm, 0), nTargetClasses: 2 }).run(model, x, y, 8);
        expect(z.xAdv).toEqual(x);
        expect(count(z.robust)).toBe(8);
      }
    });
  }
});

test('an empty batch is fine', async () => {
  const model = new ToyModel({ numClasses: 6, shape: [1, 5, 5], seed: 2 });
  for (const name of ATTACK_NAMES) {
    const r = await createAttack(name, options(name, 'linf', 0.1)).run(model, new Float32Array(0), new Int32Array(0), 0);
    expect(r.xAdv.length).toBe(0);
    expect(r.robust.length).toBe(0);
  }
});
