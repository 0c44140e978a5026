// Square: logits only, query budget, schedule, stripe initialisation, strength, determinism.

import { describe, expect, test, vi } from 'vitest';
import { createAttack } from '../../src/attacks/index.js';
import { squareEta, squarePSelection } from '../../src/attacks/square.js';
import { correctMask, count, predictedLabels, randomImages, ToyModel } from './toy-model.js';

describe('square', () => {
  const model = new ToyModel({ numClasses: 10, shape: [3, 8, 8], seed: 3 });
  const n = 24;
  const x = randomImages(n, model.d, 7);

  for (const norm of ['linf', 'l2'] as const) {
    test(`${norm}: only logits, within the query budget, and it breaks points`, async () => {
      const y = await predictedLabels(model, x, n);
      const eps = norm === 'linf' ? 0.04 : 0.5;
      const spy = vi.spyOn(model, 'lossGrad');
      model.calls = [];
      const nQueries = 400;
      const r = await createAttack('square', { eps, norm, seed: 1, nQueries }).run(model, x, y, n);
      expect(spy).not.toHaveBeenCalled();
      spy.mockRestore();
      expect(model.calls.every((c) => c.fn === 'logits')).toBe(true);
      expect(r.queries).toBe(model.calls.length);
      // One clean pass, then at most nQueries evaluations of each example.
      expect(r.queries).toBeLessThanOrEqual(1 + nQueries);
      expect(model.calls.slice(1).reduce((a, c) => a + c.n, 0)).toBeLessThanOrEqual(n * nQueries);
      expect(count(r.robust)).toBeLessThan(count(await correctMask(model, x, y, n)) - 2);
    });
  }

  test('restarts multiply the budget and never reduce success', async () => {
    const y = await predictedLabels(model, x, n);
    const o = { eps: 0.02, norm: 'linf' as const, seed: 1, nQueries: 50 };
    const one = await createAttack('square', o).run(model, x, y, n);
    const three = await createAttack('square', { ...o, restarts: 3 }).run(model, x, y, n);
    expect(three.queries).toBeLessThanOrEqual(1 + 3 * 50);
    for (let i = 0; i < n; i++) if (!one.robust[i]) expect(three.robust[i]).toBe(0);
  });

  test("AutoAttack's p schedule (rescaled to the budget)", () => {
    expect(squarePSelection(0, 10000, 0.8)).toBe(0.8);
    expect(squarePSelection(10, 10000, 0.8)).toBe(0.8);
    expect(squarePSelection(11, 10000, 0.8)).toBe(0.4);
    expect(squarePSelection(51, 10000, 0.8)).toBe(0.2);
    expect(squarePSelection(201, 10000, 0.8)).toBe(0.1);
    expect(squarePSelection(501, 10000, 0.8)).toBe(0.05);
    expect(squarePSelection(1001, 10000, 0.8)).toBe(0.025);
    expect(squarePSelection(2001, 10000, 0.8)).toBe(0.0125);
    expect(squarePSelection(4001, 10000, 0.8)).toBe(0.00625);
    expect(squarePSelection(6001, 10000, 0.8)).toBe(0.003125);
    expect(squarePSelection(8001, 10000, 0.8)).toBe(0.0015625);
    // 5000 queries: the same schedule at half the iterations.
    expect(squarePSelection(6, 5000, 0.8)).toBe(0.4);
    expect(squarePSelection(2500, 5000, 0.8)).toBe(0.8 / 128);
  });

  test('eta windows have unit L2 norm, a positive top half and a negative bottom half', () => {
    for (const s of [1, 3, 5, 8]) {
      const e = squareEta(s);
      expect(Math.hypot(...e)).toBeCloseTo(1, 10);
      const h1 = Math.floor(s / 2);
      for (let i = 0; i < h1 * s; i++) expect(e[i]!).toBeGreaterThan(0);
      for (let i = h1 * s; i < s * s; i++) expect(e[i]!).toBeLessThan(0);
    }
  });

  test('L∞ initialisation: vertical stripes of ±eps (one query per example)', async () => {
    const y = await predictedLabels(model, x, n);
    const eps = 0.05;
    const r = await createAttack('square', { eps, norm: 'linf', seed: 4, nQueries: 1 }).run(model, x, y, n);
    expect(r.queries).toBe(2);
    const [c, h, w] = [3, 8, 8];
    let plus = 0;
    let minus = 0;
    for (let j = 0; j < n; j++) {
      for (let ch = 0; ch < c; ch++) {
        for (let col = 0; col < w; col++) {
          let colSign = 0;
          for (let row = 0; row < h; row++) {
            const t = j * model.d + ch * h * w + row * w + col;
            const xi = x[t]!;
            if (xi - eps < 0 || xi + eps > 1) continue; // clipped by the box
            const delta = r.xAdv[t]! - xi;
            expect(Math.abs(Math.abs(delta) - eps)).toBeLessThan(1e-6);
            const s = Math.sign(delta);
            if (colSign === 0) colSign = s;
            expect(s).toBe(colSign);
          }
          if (colSign > 0) plus++;
          if (colSign < 0) minus++;
        }
      }
    }
    expect(plus).toBeGreaterThan(100);
    expect(minus).toBeGreaterThan(100);
  });

  test('the margin never gets worse than at the initialisation', async () => {
    const y = await predictedLabels(model, x, n);
    const o = { eps: 0.02, norm: 'linf' as const, seed: 6 };
    const init = await createAttack('square', { ...o, nQueries: 1 }).run(model, x, y, n);
    const full = await createAttack('square', { ...o, nQueries: 200 }).run(model, x, y, n);
    const margins = async (xa: Float32Array) => {
      const z = await model.logits(xa, n);
      return Array.from({ length: n }, (_, i) => z[i * 10 + y[i]!]! - Math.max(...Array.from(z.subarray(i * 10, i * 10 + 10)).filter((_, c) => c !== y[i])));
    };
    const m0 = await margins(init.xAdv);
    const m1 = await margins(full.xAdv);
    let better = 0;
    for (let i = 0; i < n; i++) {
      expect(m1[i]!).toBeLessThanOrEqual(m0[i]!);
      if (m1[i]! < m0[i]!) better++;
    }
    expect(better).toBeGreaterThan(n / 2);
  });

  test('each candidate changes one square whose side follows the p schedule', async () => {
    // One example, a budget it survives, every candidate recorded.
    const x1 = x.slice(0, model.d);
    const y1 = (await predictedLabels(model, x1, 1));
    const nQueries = 300;
    model.recordInputs = true;
    model.calls = [];
    const r = await createAttack('square', { eps: 0.002, norm: 'linf', seed: 2, nQueries }).run(model, x1, y1, 1);
    model.recordInputs = false;
    expect(r.robust[0]).toBe(1);
    const cands = model.calls.map((c) => c.x!);
    expect(cands.length).toBe(1 + nQueries);
    const [c, h, w] = [3, 8, 8];
    let best = cands[1]!;
    let bestMargin = Infinity;
    const marginOf = async (xa: Float32Array) => {
      const z = await model.logits(xa, 1);
      return z[y1[0]!]! - Math.max(...Array.from(z).filter((_, k) => k !== y1[0]));
    };
    bestMargin = await marginOf(best);
    let exact = 0;
    for (let it = 0; it < nQueries - 1; it++) {
      const cand = cands[2 + it]!;
      const side = Math.max(Math.round(Math.sqrt(squarePSelection(it, nQueries, 0.8) * h * w)), 1);
      let r0 = h, r1 = -1, c0 = w, c1 = -1;
      for (let ch = 0; ch < c; ch++) {
        for (let row = 0; row < h; row++) {
          for (let col = 0; col < w; col++) {
            const t = ch * h * w + row * w + col;
            if (cand[t] !== best[t]) {
              r0 = Math.min(r0, row); r1 = Math.max(r1, row); c0 = Math.min(c0, col); c1 = Math.max(c1, col);
            }
          }
        }
      }
      if (r1 >= 0) {
        expect(r1 - r0 + 1).toBeLessThanOrEqual(side);
        expect(c1 - c0 + 1).toBeLessThanOrEqual(side);
        if (r1 - r0 + 1 === side && c1 - c0 + 1 === side) exact++;
      }
      const m = await marginOf(cand);
      if (m < bestMargin) {
        bestMargin = m;
        best = cand;
      }
    }
    expect(exact).toBeGreaterThan(nQueries / 4);
    // The returned point is the best candidate.
    expect(r.xAdv).toEqual(best);
  });

  test('same seed, same result; another seed, another result', async () => {
    const y = await predictedLabels(model, x, n);
    const run = (seed: number) => createAttack('square', { eps: 0.03, norm: 'linf', seed, nQueries: 100 }).run(model, x, y, n);
    const a = await run(1);
    const b = await run(1);
    const c = await run(2);
    expect(b.xAdv).toEqual(a.xAdv);
    expect(b.robust).toEqual(a.robust);
    expect(c.xAdv).not.toEqual(a.xAdv);
  });
});
