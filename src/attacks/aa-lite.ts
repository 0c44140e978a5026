// aa-lite: AutoAttack's "standard" pipeline without FAB-T — APGD-CE, then APGD-T, then Square —
// each part run only on the points every earlier part left robust, so a point is robust only if
// every part fails on it (per-point worst case) and its xAdv is the first adversarial point found
// (a point that stays robust gets Square's lowest-margin point).
// It reports itself as 'aa-lite': without FAB-T this is NOT AutoAttack and its numbers must not be
// reported as AutoAttack numbers.
//
// Parts and defaults (AutoAttack's standard version): APGD-CE (steps 100, ρ 0.75, 1 restart),
// APGD-T (9 target classes, steps 100, 1 restart per target), Square (5000 queries, p_init 0.8,
// 1 restart); `restarts` applies to each part, `steps`/`stepSize`/`randomStart` to both APGD parts.
// Every part uses the same seed (as AutoAttack does) with its own per-example streams, so running the
// parts separately on the whole batch gives robust sets whose intersection is exactly aa-lite's.
// One clean logits call is shared: clean-misclassified points are not attacked (robust = 0).

import { apgdCeMasked, apgdSettings, apgdTMasked, requireTargetedClasses, resolveApgd, type ApgdParams } from './apgd.js';
import { attackCleanCorrect, checkBatch, requirePositiveInt, type BaseAttackOptions } from './common.js';
import { resolveSquare, squareGeometry, squareMasked, squareSettings, type SquareParams } from './square.js';
import type { Attack, AttackModel, AttackResult } from './types.js';

export interface AaLiteOptions extends BaseAttackOptions {
  /** APGD's ρ, default 0.75. */
  rho?: number;
  /** APGD-T's number of target classes, default 9. */
  nTargetClasses?: number;
  /** Square's queries per example, default 5000. */
  nQueries?: number;
  /** Square's p_init, default 0.8. */
  pInit?: number;
}

export class AaLite implements Attack {
  readonly name = 'aa-lite';
  readonly apgd: ApgdParams;
  readonly nTargetClasses: number;
  readonly square: SquareParams;

  constructor(o: AaLiteOptions) {
    this.apgd = resolveApgd(this.name, o);
    this.nTargetClasses = o.nTargetClasses ?? 9;
    requirePositiveInt(this.name, 'nTargetClasses', this.nTargetClasses);
    this.square = resolveSquare(this.name, { eps: o.eps, norm: o.norm, seed: o.seed, restarts: o.restarts, nQueries: o.nQueries, pInit: o.pInit });
  }

  settings(): Record<string, unknown> {
    return {
      attack: this.name,
      norm: this.apgd.norm,
      eps: this.apgd.eps,
      seed: this.apgd.seed,
      note: 'APGD-CE + APGD-T + Square (AutoAttack standard without FAB-T); not AutoAttack',
      parts: [
        apgdSettings('apgd-ce', this.apgd, 'ce'),
        { ...apgdSettings('apgd-t', this.apgd, 'dlr-targeted'), nTargetClasses: this.nTargetClasses },
        squareSettings('square', this.square),
      ],
    };
  }

  async run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    const d = checkBatch(this.name, model, x, y, n);
    requireTargetedClasses(this.name, model.numClasses);
    const g = squareGeometry(this.name, model);
    return attackCleanCorrect(model, x, y, n, async (cm, state) => {
      // Robust counts after each stage let the caller spot gradient masking (Square beating APGD).
      const stillRobust = () => state.robust.reduce((a, v) => a + v, 0);
      const stages: { name: string; robust: number }[] = [];
      await apgdCeMasked(cm, x, y, n, d, this.apgd, state);
      stages.push({ name: 'apgd-ce', robust: stillRobust() });
      await apgdTMasked(cm, x, y, n, d, this.apgd, this.nTargetClasses, state);
      stages.push({ name: 'apgd-t', robust: stillRobust() });
      await squareMasked(cm, x, y, n, g, this.square, state);
      stages.push({ name: 'square', robust: stillRobust() });
      return { stages };
    }, ids);
  }
}
