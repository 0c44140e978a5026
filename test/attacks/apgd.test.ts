// APGD-CE and APGD-T: the checkpoint schedule and step-size rule, strength against PGD at equal
// budget, the target classes of APGD-T, restarts / targets as per-example worst case, determinism.

import { describe, expect, test } from 'vitest';
import { apgdCheckpoints, apgdReduceStep } from '../../src/attacks/apgd.js';
import { clipLinf } from '../../src/attacks/common.js';
import { createAttack } from '../../src/attacks/index.js';
import type { AttackLoss } from '../../src/attacks/types.js';
import { UserError } from '../../src/util/errors.js';
import { correctMask, count, predictedLabels, randomImages, ToyModel } from './toy-model.js';

describe('schedule', () => {
  test('checkpoints follow p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), p_0 = 0, p_1 = 0.22', () => {
    const p = [0, 0.22];
    while (true) {
      const next = p[p.length - 1]! + Math.max(p[p.length - 1]! - p[p.length - 2]! - 0.03, 0.06);
      if (next > 1) break;
      p.push(next);
    }
    expect(apgdCheckpoints(100)).toEqual(p.slice(1).map((v) => Math.round(v * 100)));
    expect(apgdCheckpoints(100)).toEqual([22, 41, 57, 70, 80, 87, 93, 99]);
    // Tiny budgets still check (interval >= 1).
    expect(apgdCheckpoints(3)).toEqual([1, 2, 3]);
  });

  test('step size halves on oscillation or on a stall with an unchanged step', () => {
    // 16 of 22 increases > 0.75·22 = 16.5? no -> oscillating -> reduce.
    expect(apgdReduceStep(16, 22, 0.75, false, 0, 1)).toBe(true);
    expect(apgdReduceStep(17, 22, 0.75, false, 0, 1)).toBe(false);
    // Enough increases, but no improvement since the last check and the step was not reduced then.
    expect(apgdReduceStep(20, 22, 0.75, false, 1, 1)).toBe(true);
    // ...unless it was reduced at the last check.
    expect(apgdReduceStep(20, 22, 0.75, true, 1, 1)).toBe(false);
  });
});

describe('strength', () => {
  const model = new ToyModel({ numClasses: 10, shape: [3, 6, 6], hidden: 24, seed: 5, weightScale: 1 });
  const n = 32;
  const x = randomImages(n, model.d, 9);

  for (const [norm, eps] of [
    ['linf', 0.03],
    ['l2', 0.5],
  ] as const) {
    test(`APGD-CE is never worse than PGD at the same number of iterations (${norm})`, async () => {
      const y = await predictedLabels(model, x, n);
      const clean = count(await correctMask(model, x, y, n));
      for (const steps of [10, 50]) {
        const pgd = await createAttack('pgd', { eps, norm, steps, seed: 1 }).run(model, x, y, n);
        const apgd = await createAttack('apgd-ce', { eps, norm, steps, seed: 1 }).run(model, x, y, n);
        expect(count(apgd.robust)).toBeLessThanOrEqual(count(pgd.robust));
        expect(count(apgd.robust)).toBeLessThan(clean);
        // Budget: at most steps + 1 gradient passes and one clean pass.
        expect(apgd.queries).toBeLessThanOrEqual(steps + 2);
      }
    });
  }

  test('APGD-CE on a linear model returns the L∞ corner as its best-loss point', async () => {
    const lin = ToyModel.linear(
      [Array.from({ length: 16 }, (_, i) => Math.sin(i + 1)), Array.from({ length: 16 }, (_, i) => Math.cos(2 * i))],
      [5, -5],
      [1, 4, 4],
    );
    const xs = randomImages(4, 16, 3);
    const y = new Int32Array(4);
    const eps = 0.05;
    expect(count(await correctMask(lin, xs, y, 4))).toBe(4);
    const r = await createAttack('apgd-ce', { eps, norm: 'linf', steps: 20, seed: 1 }).run(lin, xs, y, 4);
    expect(count(r.robust)).toBe(4);
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < 16; i++) {
        const s = Math.sign(lin.w1[i]! - lin.w1[16 + i]!);
        const corner = Math.min(1, Math.max(0, xs[j * 16 + i]! - eps * s));
        expect(Math.abs(r.xAdv[j * 16 + i]! - corner)).toBeLessThan(1e-6);
      }
    }
  });

  test('restarts and more target classes never reduce success; same seed, same result', async () => {
    const y = await predictedLabels(model, x, n);
    const base = { eps: 0.02, norm: 'linf' as const, steps: 10, seed: 2 };
    const r1 = await createAttack('apgd-ce', { ...base, restarts: 1 }).run(model, x, y, n);
    const r3 = await createAttack('apgd-ce', { ...base, restarts: 3 }).run(model, x, y, n);
    const t1 = await createAttack('apgd-t', { ...base, nTargetClasses: 1 }).run(model, x, y, n);
    const t4 = await createAttack('apgd-t', { ...base, nTargetClasses: 4 }).run(model, x, y, n);
    const t4b = await createAttack('apgd-t', { ...base, nTargetClasses: 4 }).run(model, x, y, n);
    for (let i = 0; i < n; i++) {
      if (!r1.robust[i]) expect(r3.robust[i]).toBe(0);
      if (!t1.robust[i]) expect(t4.robust[i]).toBe(0);
    }
    expect(count(t4.robust)).toBeLessThan(count(t1.robust));
    expect(t4b.xAdv).toEqual(t4.xAdv);
    expect(t4b.robust).toEqual(t4.robust);
  });
});

describe('APGD-T targets', () => {
  for (const k of [12, 5]) {
    test(`targets are the top ${Math.min(9, k - 1)} classes by clean logit, in order (${k} classes)`, async () => {
      const model = new ToyModel({ numClasses: k, shape: [1, 4, 4], hidden: 8, seed: 7 });
      const n = 6;
      const x = randomImages(n, model.d, 8);
      const y = await predictedLabels(model, x, n);
      const z = await model.logits(x, n);
      model.calls = [];
      // eps tiny: nothing breaks, so every example sees every target.
      const steps = 4;
      const r = await createAttack('apgd-t', { eps: 1e-5, norm: 'linf', steps, seed: 1 }).run(model, x, y, n);
      expect(count(r.robust)).toBe(n);
      const calls = model.calls.filter((c) => c.fn === 'lossGrad');
      const nT = Math.min(9, k - 1);
      expect(calls.length).toBe(nT * (steps + 1));
      for (let t = 0; t < nT; t++) {
        for (let s = 0; s <= steps; s++) {
          const loss = calls[t * (steps + 1) + s]!.loss as Extract<AttackLoss, { kind: 'dlr-targeted' }>;
          expect(loss.kind).toBe('dlr-targeted');
          expect(Array.from(loss.labels)).toEqual(Array.from(y));
          for (let i = 0; i < n; i++) {
            const order = Array.from({ length: k }, (_, c) => c).sort((a, b) => z[i * k + b]! - z[i * k + a]!);
            expect(order[0]).toBe(y[i]);
            expect(loss.targets[i]).toBe(order[t + 1]);
          }
        }
      }
    });
  }

  test('needs at least 4 classes', async () => {
    const model = new ToyModel({ numClasses: 3, shape: [1, 2, 2], seed: 1 });
    await expect(createAttack('apgd-t', { eps: 0.1, norm: 'linf', seed: 1 }).run(model, new Float32Array(4), new Int32Array(1), 1)).rejects.toThrow(UserError);
  });
});

/**
 * A plain single-example APGD (L∞, no random start), written straight from the algorithm's
 * description, to pin down the vectorised implementation: step 2·eps, momentum 0.75, checkpoints,
 * halving with a reset to the best point. Returns the best-loss point, whether any iterate was
 * misclassified, how many times the step was halved, and every evaluated point.
 */
async function referenceApgd(model: ToyModel, x: Float32Array, y: number, eps: number, nIter: number, rho: number) {
  const d = x.length;
  const labels = Int32Array.of(y);
  const evalAt = async (p: Float32Array) => {
    const r = await model.lossGrad(p, 1, { kind: 'ce', labels });
    const z = r.logits;
    const other = Math.max(...Array.from(z).filter((_, c) => c !== y));
    return { loss: r.loss[0]!, grad: Float32Array.from(r.grad), correct: z[y]! > other };
  };
  // The projection primitive (clip to the ball ∩ box, float32-safe) is the library's own.
  const proj = (v: number, i: number) => clipLinf(x[i]!, eps, v);
  let cur = x.slice();
  const trace: Float32Array[] = [cur.slice()];
  let e = await evalAt(cur);
  let grad = e.grad;
  let broken = !e.correct;
  let best = cur.slice();
  let gradBest = grad.slice();
  let lossBest = e.loss;
  let prevLoss = e.loss;
  let old = cur.slice();
  let eta = 2 * eps;
  let interval = Math.max(Math.floor(0.22 * nIter), 1);
  let since = 0;
  let increases = 0;
  let reducedLast = true;
  let bestAtLast = lossBest;
  let halvings = 0;
  for (let it = 0; it < nIter && !broken; it++) {
    const a = it === 0 ? 1 : 0.75;
    const z = Float32Array.from(cur, (v, i) => proj(v + eta * Math.sign(grad[i]!), i));
    const next = Float32Array.from(cur, (v, i) => proj(v + a * (z[i]! - v) + (1 - a) * (v - old[i]!), i));
    old = cur;
    cur = next;
    e = await evalAt(cur);
    trace.push(cur.slice());
    grad = e.grad;
    if (!e.correct) broken = true;
    if (e.loss > prevLoss) increases++;
    prevLoss = e.loss;
    if (e.loss > lossBest) {
      lossBest = e.loss;
      best = cur.slice();
      gradBest = grad.slice();
    }
    if (++since === interval) {
      const reduce: boolean = increases <= rho * interval || (!reducedLast && bestAtLast >= lossBest);
      reducedLast = reduce;
      bestAtLast = lossBest;
      increases = 0;
      if (reduce) {
        eta /= 2;
        halvings++;
        cur = best.slice();
        grad = gradBest.slice();
      }
      interval = Math.max(interval - Math.max(Math.floor(0.03 * nIter), 1), Math.max(Math.floor(0.06 * nIter), 1));
      since = 0;
    }
  }
  return { best, broken, halvings, trace };
}

for (const [eps, weightScale] of [
  [0.01, 1.5],
  [0.01, 4],
] as const) {
  test(`APGD-CE matches a plain single-example reference: momentum, checkpoints, halving, reset (eps ${eps}, weight scale ${weightScale})`, async () => {
    const model = new ToyModel({ numClasses: 10, shape: [3, 6, 6], hidden: 24, seed: 5, weightScale });
    const n = 12;
    const d = model.d;
    const x = randomImages(n, d, 19);
    const y = await predictedLabels(model, x, n);
    const nIter = 40;
    const opts = { eps, norm: 'linf' as const, steps: nIter, seed: 0, randomStart: false };
    const r = await createAttack('apgd-ce', opts).run(model, x, y, n);
    let totalHalvings = 0;
    let robustSeen = 0;
    for (let j = 0; j < n; j++) {
      const xj = x.slice(j * d, j * d + d);
      const ref = await referenceApgd(model, xj, y[j]!, eps, nIter, 0.75);
      // The batched run: same verdict, same best point.
      expect(r.robust[j]).toBe(ref.broken ? 0 : 1);
      if (!ref.broken) {
        robustSeen++;
        totalHalvings += ref.halvings;
        expect(r.xAdv.subarray(j * d, j * d + d)).toEqual(ref.best);
      }
      // A single-example run: the very same sequence of evaluated points.
      model.recordInputs = true;
      model.calls = [];
      await createAttack('apgd-ce', opts).run(model, xj, y.subarray(j, j + 1), 1);
      model.recordInputs = false;
      const seq = model.calls.filter((c) => c.fn === 'lossGrad').map((c) => c.x!);
      expect(seq).toEqual(ref.trace);
    }
    // The comparison exercised the interesting parts.
    expect(robustSeen).toBeGreaterThan(3);
    expect(totalHalvings).toBeGreaterThan(robustSeen);
  });
}
