// PGD and its relatives (FGSM, FGSM-RS, BIM, MI-FGSM): known optima on linear models, restarts,
// losses, starts, defaults and determinism.

import { describe, expect, test } from 'vitest';
import { createAttack } from '../../src/attacks/index.js';
import { Pgd } from '../../src/attacks/pgd.js';
import type { AttackLoss } from '../../src/attacks/types.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { correctMask, count, perturbationStats, predictedLabels, randomImages, ToyModel } from './toy-model.js';

/** A 2-class linear model on [1,4,4] images with no zero weight difference. */
function binaryModel(): ToyModel {
  const rng = new Rng(21);
  const d = 16;
  const w0: number[] = [];
  const w1: number[] = [];
  for (let i = 0; i < d; i++) {
    const a = rng.normal();
    const diff = (rng.next() < 0.5 ? -1 : 1) * (0.5 + rng.next());
    w0.push(a);
    w1.push(a - diff);
  }
  return ToyModel.linear([w0, w1], [0, 0], [1, 4, 4]);
}

/** The L∞ worst case of a 2-class linear model: x - eps·sign(w_y - w_other), clipped to [0,1]. */
function linfCorner(m: ToyModel, x: Float32Array, y: Int32Array, n: number, eps: number): Float64Array {
  const d = m.d;
  const out = new Float64Array(x.length);
  for (let j = 0; j < n; j++) {
    const yy = y[j]!;
    for (let i = 0; i < d; i++) {
      const s = Math.sign(m.w1[yy * d + i]! - m.w1[(1 - yy) * d + i]!);
      out[j * d + i] = Math.min(1, Math.max(0, x[j * d + i]! - eps * s));
    }
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('known optimum on a linear model', () => {
  const model = binaryModel();
  const n = 12;
  // Pixels all over [0,1], including exact 0s and 1s, so the box clips part of the corner.
  const x = randomImages(n, model.d, 22);
  const y = Int32Array.from({ length: n }, (_, i) => i % 2);
  const eps = 0.1;
  const corner = linfCorner(model, x, y, n, eps);

  test('the corner is not the clean point (the test has teeth)', () => {
    expect(maxAbsDiff(corner, x)).toBeCloseTo(eps, 6);
  });

  for (const [name, extra] of [
    ['pgd', { randomStart: true }],
    ['pgd', { randomStart: true, restarts: 3 }],
    ['pgd', { randomStart: false }],
    ['bim', {}],
    ['mifgsm', {}],
    ['fgsm', {}],
  ] as const) {
    test(`${name} ${JSON.stringify(extra)} reaches x - eps·sign(w_y - w_other) (clipped)`, async () => {
      const r = await createAttack(name, { eps, norm: 'linf', steps: 10, seed: 5, ...extra }).run(model, x, y, n);
      expect(maxAbsDiff(r.xAdv, corner)).toBeLessThan(1e-6);
    });
  }

  test('fgsm-rs stays in the ball and lands on the corner wherever the step can reach it', async () => {
    model.recordInputs = true;
    model.calls = [];
    const r = await createAttack('fgsm-rs', { eps, norm: 'linf', steps: 1, seed: 5 }).run(model, x, y, n);
    const start = model.calls.find((c) => c.fn === 'lossGrad')!.x!;
    model.recordInputs = false;
    // The start is uniform in the ball: spread out, not at x, not at the corner.
    expect(perturbationStats(start, x, n, model.d).linf).toBeGreaterThan(0.09);
    expect(maxAbsDiff(start, corner)).toBeGreaterThan(0.01);
    // One step of 1.25·eps from δ0 reaches the corner unless δ0 was more than 0.25·eps the other way.
    let reachable = 0;
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < model.d; i++) {
        const t = j * model.d + i;
        const s = Math.sign(corner[t]! - x[t]!);
        if (s !== 0 && (start[t]! - x[t]!) * s >= -0.25 * eps + 1e-6) {
          reachable++;
          expect(Math.abs(r.xAdv[t]! - corner[t]!)).toBeLessThan(1e-6);
        }
      }
    }
    expect(reachable).toBeGreaterThan(n * model.d * 0.4);
  });

  test('pgd L2 without random start reaches x - eps·(w_y - w_other)/||w_y - w_other||', async () => {
    const xm = randomImages(n, model.d, 23).map((v) => 0.3 + 0.4 * v);
    const e2 = 0.2;
    const r = await createAttack('pgd', { eps: e2, norm: 'l2', steps: 10, seed: 5, randomStart: false }).run(model, xm, y, n);
    const d = model.d;
    for (let j = 0; j < n; j++) {
      const yy = y[j]!;
      const u = Array.from({ length: d }, (_, i) => model.w1[yy * d + i]! - model.w1[(1 - yy) * d + i]!);
      const nu = Math.hypot(...u);
      for (let i = 0; i < d; i++) expect(r.xAdv[j * d + i]!).toBeCloseTo(xm[j * d + i]! - (e2 * u[i]!) / nu, 5);
    }
  });
});

describe('restarts, losses and starts (MLP)', () => {
  const model = new ToyModel({ numClasses: 10, shape: [3, 6, 6], hidden: 24, seed: 31, weightScale: 1 });
  const n = 32;
  const x = randomImages(n, model.d, 32);
  const eps = 0.03;

  test('restarts never reduce success, and restart 0 is the same run', async () => {
    const y = await predictedLabels(model, x, n);
    // A weak inner attack so the random start matters.
    const opts = { eps, norm: 'linf' as const, steps: 2, stepSize: eps / 4, seed: 8 };
    const one = await createAttack('pgd', { ...opts, restarts: 1 }).run(model, x, y, n);
    const five = await createAttack('pgd', { ...opts, restarts: 5 }).run(model, x, y, n);
    for (let i = 0; i < n; i++) {
      if (!one.robust[i]) {
        expect(five.robust[i]).toBe(0);
        expect(five.xAdv.subarray(i * model.d, (i + 1) * model.d)).toEqual(one.xAdv.subarray(i * model.d, (i + 1) * model.d));
      }
    }
    expect(count(five.robust)).toBeLessThan(count(one.robust));
    // Points no restart breaks get the highest-loss final iterate over the restarts.
    const ce = { kind: 'ce' as const, labels: y };
    const l1 = (await model.lossGrad(one.xAdv, n, ce)).loss;
    const l5 = (await model.lossGrad(five.xAdv, n, ce)).loss;
    let higher = 0;
    for (let i = 0; i < n; i++) {
      if (five.robust[i]) {
        expect(l5[i]!).toBeGreaterThanOrEqual(l1[i]!);
        if (l5[i]! > l1[i]!) higher++;
      }
    }
    expect(higher).toBeGreaterThan(0);
  });

  test('same seed, same result; another seed, another result', async () => {
    const y = await predictedLabels(model, x, n);
    const run = (seed: number) => createAttack('pgd', { eps, norm: 'linf', steps: 5, seed, restarts: 2 }).run(model, x, y, n);
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(b.xAdv).toEqual(a.xAdv);
    expect(b.robust).toEqual(a.robust);
    expect(b.queries).toBe(a.queries);
    expect(c.xAdv).not.toEqual(a.xAdv);
  });

  test("an example's result does not depend on the rest of the batch", async () => {
    const y = await predictedLabels(model, x, n);
    const opts = { eps, norm: 'l2' as const, steps: 5, seed: 4, restarts: 2 };
    const full = await createAttack('pgd', { ...opts, eps: 0.4 }).run(model, x, y, n);
    const d = model.d;
    const half = 16;
    const part = await createAttack('pgd', { ...opts, eps: 0.4 }).run(model, x.subarray(0, half * d), y.subarray(0, half), half);
    expect(part.xAdv).toEqual(full.xAdv.subarray(0, half * d));
  });

  test("loss 'kl' is TRADES' inner maximisation: clean probabilities and a 0.001·N(0,1) start", async () => {
    const y = await predictedLabels(model, x, n);
    model.recordInputs = true;
    model.calls = [];
    const r = await createAttack('pgd', { eps, norm: 'linf', steps: 5, seed: 3, loss: 'kl' }).run(model, x, y, n);
    model.recordInputs = false;
    expect(model.calls[0]!.fn).toBe('logits');
    expect(model.calls[0]!.x).toEqual(x);
    const grads = model.calls.filter((c) => c.fn === 'lossGrad');
    expect(grads.length).toBe(5);
    const loss = grads[0]!.loss as Extract<AttackLoss, { kind: 'kl' }>;
    expect(loss.kind).toBe('kl');
    const z = await model.logits(x, n);
    for (let i = 0; i < n; i++) {
      const row = Array.from(z.subarray(i * 10, i * 10 + 10));
      const mx = Math.max(...row);
      const s = row.reduce((a, v) => a + Math.exp(v - mx), 0);
      for (let c = 0; c < 10; c++) expect(loss.cleanProbs[i * 10 + c]!).toBeCloseTo(Math.exp(row[c]! - mx) / s, 6);
    }
    // The start: tiny Gaussian noise, not a uniform eps-ball draw, and not clipped to [0,1] before the first
    // gradient (the authors' code clips only after each step).
    const start = grads[0]!.x!;
    const edge = Array.from(x.keys()).filter((i) => x[i] === 0 || x[i] === 1);
    expect(edge.length).toBeGreaterThan(0);
    expect(edge.some((i) => start[i]! < 0 || start[i]! > 1)).toBe(true);
    expect(Math.min(...r.xAdv)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...r.xAdv)).toBeLessThanOrEqual(1);
    let sum = 0;
    let cnt = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i]! > 0.01 && x[i]! < 0.99) {
        sum += Math.abs(start[i]! - x[i]!);
        cnt++;
      }
    }
    const meanAbs = sum / cnt;
    expect(meanAbs).toBeGreaterThan(0.0006);
    expect(meanAbs).toBeLessThan(0.001);
    // KL grows from ~0 at the start.
    const klStart = (await model.lossGrad(start, n, loss)).loss;
    const klEnd = (await model.lossGrad(r.xAdv, n, loss)).loss;
    expect(klEnd.reduce((a, b) => a + b, 0)).toBeGreaterThan(10 * klStart.reduce((a, b) => a + b, 0));
  });

  test("the 'ce' random start is uniform in the L∞ ball", async () => {
    const y = await predictedLabels(model, x, n);
    model.recordInputs = true;
    model.calls = [];
    await createAttack('pgd', { eps, norm: 'linf', steps: 1, seed: 3 }).run(model, x, y, n);
    model.recordInputs = false;
    const start = model.calls.find((c) => c.fn === 'lossGrad')!.x!;
    let sum = 0;
    let cnt = 0;
    for (let i = 0; i < x.length; i++) {
      if (x[i]! > eps && x[i]! < 1 - eps) {
        const t = start[i]! - x[i]!;
        expect(Math.abs(t)).toBeLessThanOrEqual(eps + 1e-6);
        sum += Math.abs(t);
        cnt++;
      }
    }
    expect(sum / cnt).toBeCloseTo(eps / 2, 2);
  });

  test("loss 'dlr' asks the model for DLR and needs 3 classes", async () => {
    const y = await predictedLabels(model, x, n);
    model.calls = [];
    const r = await createAttack('pgd', { eps, norm: 'linf', steps: 5, seed: 3, loss: 'dlr' }).run(model, x, y, n);
    expect(model.calls.filter((c) => c.fn === 'lossGrad').every((c) => c.loss!.kind === 'dlr')).toBe(true);
    expect(count(r.robust)).toBeLessThan(count(await correctMask(model, x, y, n)));
    const two = binaryModel();
    await expect(createAttack('pgd', { eps, norm: 'linf', steps: 2, seed: 1, loss: 'dlr' }).run(two, new Float32Array(16), new Int32Array(1), 1)).rejects.toThrow(UserError);
  });

  test('MI-FGSM with decay 0 is BIM; with decay 1 the momentum changes the path', async () => {
    const y = await predictedLabels(model, x, n);
    const bim = await createAttack('bim', { eps, norm: 'linf', steps: 10, seed: 1 }).run(model, x, y, n);
    const mi0 = await createAttack('mifgsm', { eps, norm: 'linf', steps: 10, seed: 1, decay: 0 }).run(model, x, y, n);
    const mi1 = await createAttack('mifgsm', { eps, norm: 'linf', steps: 10, seed: 1 }).run(model, x, y, n);
    expect(mi0.xAdv).toEqual(bim.xAdv);
    expect(mi1.xAdv).not.toEqual(bim.xAdv);
  });

  test('MI-FGSM matches a plain reference: L1-normalised gradient accumulated with decay, sign step', async () => {
    const y = await predictedLabels(model, x, n);
    const d = model.d;
    const steps = 6;
    const decay = 0.8;
    const alpha = 0.004;
    const r = await createAttack('mifgsm', { eps, norm: 'linf', steps, seed: 1, decay, stepSize: alpha }).run(model, x, y, n);
    for (let j = 0; j < 4; j++) {
      const x0 = x.slice(j * d, j * d + d);
      let cur = x0.slice();
      const g = new Float64Array(d);
      for (let t = 0; t < steps; t++) {
        const { grad } = await model.lossGrad(cur, 1, { kind: 'ce', labels: y.subarray(j, j + 1) });
        const l1 = grad.reduce((a, v) => a + Math.abs(v), 0);
        for (let i = 0; i < d; i++) g[i] = decay * g[i]! + grad[i]! / l1;
        cur = cur.map((v, i) => Math.min(Math.min(1, x0[i]! + eps), Math.max(Math.max(0, x0[i]! - eps), v + alpha * Math.sign(g[i]!))));
      }
      for (let i = 0; i < d; i++) expect(Math.abs(r.xAdv[j * d + i]! - cur[i]!)).toBeLessThan(1e-6);
    }
  });

  test('deterministic attacks ignore the seed and refuse random starts / restarts', async () => {
    const y = await predictedLabels(model, x, n);
    for (const name of ['fgsm', 'bim', 'mifgsm']) {
      const a = await createAttack(name, { eps, norm: 'linf', steps: 3, seed: 1 }).run(model, x, y, n);
      const b = await createAttack(name, { eps, norm: 'linf', steps: 3, seed: 2 }).run(model, x, y, n);
      expect(b.xAdv).toEqual(a.xAdv);
      expect(() => createAttack(name, { eps, norm: 'linf', steps: 3, seed: 1, randomStart: true })).toThrow(UserError);
      expect(() => createAttack(name, { eps, norm: 'linf', steps: 3, seed: 1, restarts: 2 })).toThrow(UserError);
    }
    expect(() => createAttack('fgsm-rs', { eps, norm: 'linf', steps: 1, seed: 1, randomStart: false })).toThrow(UserError);
  });
});

describe('defaults', () => {
  const base = { eps: 0.03, norm: 'linf' as const, seed: 0 };
  test('step sizes and budgets', () => {
    expect(new Pgd({ ...base, steps: 10 }).settings()).toMatchObject({ steps: 10, stepSize: (2.5 * 0.03) / 10, randomStart: true, restarts: 1, loss: 'ce' });
    expect(new Pgd(base).settings()).toMatchObject({ steps: 10 });
    expect(createAttack('bim', { ...base, steps: 20 }).settings()).toMatchObject({ steps: 20, stepSize: 0.03 / 20, randomStart: false });
    expect(createAttack('mifgsm', base).settings()).toMatchObject({ steps: 10, stepSize: 0.003, decay: 1 });
    expect(createAttack('fgsm', { ...base, steps: 7 }).settings()).toMatchObject({ steps: 1, stepSize: 0.03, randomStart: false });
    expect(createAttack('fgsm-rs', base).settings().stepSize).toBeCloseTo(1.25 * 0.03, 12);
    expect(createAttack('apgd-ce', base).settings()).toMatchObject({ steps: 100, initialStepSize: 0.06, rho: 0.75, momentum: 0.75, restarts: 1, randomStart: true });
    expect(createAttack('apgd-t', base).settings()).toMatchObject({ steps: 100, nTargetClasses: 9, loss: 'dlr-targeted' });
    expect(createAttack('square', base).settings()).toMatchObject({ nQueries: 5000, pInit: 0.8, loss: 'margin' });
    expect(createAttack('pgd', { ...base, loss: 'kl' }).settings()).toMatchObject({ start: 'trades' });
  });
});
