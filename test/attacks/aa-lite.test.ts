// aa-lite: APGD-CE → APGD-T → Square on the points still robust; the robust set is the
// intersection of its parts' robust sets (per-point worst case).

import { describe, expect, test } from 'vitest';
import { createAttack } from '../../src/attacks/index.js';
import { correctMask, count, predictedLabels, randomImages, ToyModel } from './toy-model.js';

describe('aa-lite', () => {
  const model = new ToyModel({ numClasses: 10, shape: [3, 6, 6], hidden: 16, seed: 41, weightScale: 1 });
  const n = 32;
  const x = randomImages(n, model.d, 42);

  test("reports itself as 'aa-lite', not AutoAttack", () => {
    const a = createAttack('aa-lite', { eps: 0.03, norm: 'linf', seed: 0 });
    expect(a.name).toBe('aa-lite');
    const s = a.settings();
    expect(s.attack).toBe('aa-lite');
    expect(JSON.stringify(s)).toMatch(/not AutoAttack/);
    expect((s.parts as { attack: string }[]).map((p) => p.attack)).toEqual(['apgd-ce', 'apgd-t', 'square']);
  });

  for (const [norm, eps] of [
    ['linf', 0.025],
    ['l2', 0.35],
  ] as const) {
    test(`${norm}: robust set = intersection of APGD-CE, APGD-T and Square run separately`, async () => {
      const y = await predictedLabels(model, x, n);
      y[3] = (y[3]! + 1) % 10; // clean-misclassified: never robust, returned unchanged
      const opts = { eps, norm, seed: 7, steps: 15, nTargetClasses: 3, nQueries: 150 };
      const aa = await createAttack('aa-lite', opts).run(model, x, y, n);
      const ce = await createAttack('apgd-ce', opts).run(model, x, y, n);
      const t = await createAttack('apgd-t', opts).run(model, x, y, n);
      const sq = await createAttack('square', opts).run(model, x, y, n);
      const inter = ce.robust.map((v, i) => v & t.robust[i]! & sq.robust[i]!);
      expect(Array.from(aa.robust)).toEqual(Array.from(inter));
      // Each part contributes something beyond the previous ones on this batch, and the budget is shared.
      expect(count(aa.robust)).toBeLessThan(count(ce.robust));
      expect(count(aa.robust)).toBeGreaterThan(0);
      expect(aa.robust[3]).toBe(0);
      // Per-stage survivors (evaluate's gradient-masking check reads them by name): non-increasing, ending at the result.
      expect(aa.stages!.map((st) => st.name)).toEqual(['apgd-ce', 'apgd-t', 'square']);
      const survivors = aa.stages!.map((st) => st.robust);
      expect(survivors).toEqual([...survivors].sort((a, b) => b - a));
      expect(survivors[2]).toBe(count(aa.robust));
      expect(aa.xAdv.subarray(3 * model.d, 4 * model.d)).toEqual(x.subarray(3 * model.d, 4 * model.d));
      expect(aa.queries).toBeLessThan(ce.queries + t.queries + sq.queries);
      expect(Array.from(await correctMask(model, aa.xAdv, y, n))).toEqual(Array.from(aa.robust));
      const again = await createAttack('aa-lite', opts).run(model, x, y, n);
      expect(again.xAdv).toEqual(aa.xAdv);
    });
  }
});
