// FGSM (Goodfellow et al. 2015) and FGSM-RS, the "fast adversarial training" variant (Wong et al.
// 2020, "Fast is better than free").
//
// FGSM: one step x + eps·sign(∇_x CE) (L2: the fast gradient method x + eps·∇/||∇||_2), projected
// onto B(x, eps) ∩ [0,1]^d. No randomness. `steps` is ignored (always 1); stepSize defaults to eps.
// FGSM-RS: start at x + δ with δ uniform in [-eps, eps]^d (L2: PGD's L2 random start), projected;
// then one step of size alpha = stepSize, default 1.25·eps (Wong et al.'s recommended α), projected
// again (their code clamps δ to [-eps, eps] and x + δ to [0, 1], which is what the projection does).
// `restarts` (default 1) re-draws the start for the examples no earlier restart broke.
// Both: one lossGrad call per restart plus one logits call to evaluate the result.

import { UserError } from '../util/errors.js';
import { validateBaseOptions, type BaseAttackOptions } from './common.js';
import { iterativeSettings, runIterative, type IterativeParams } from './pgd.js';
import type { Attack, AttackModel, AttackResult } from './types.js';

export type FgsmOptions = BaseAttackOptions;

export class Fgsm implements Attack {
  readonly name = 'fgsm';
  readonly params: IterativeParams;

  constructor(o: FgsmOptions) {
    validateBaseOptions(this.name, o);
    if (o.randomStart) throw new UserError('fgsm: has no random start; use fgsm-rs for FGSM with a uniform random start');
    if ((o.restarts ?? 1) > 1) throw new UserError('fgsm: is deterministic, restarts > 1 would repeat the same step; use fgsm-rs');
    this.params = { eps: o.eps, norm: o.norm, steps: 1, stepSize: o.stepSize ?? o.eps, start: 'none', restarts: 1, seed: o.seed, loss: 'ce' };
  }

  settings(): Record<string, unknown> {
    return iterativeSettings(this.name, this.params);
  }

  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    return runIterative(this.name, model, x, y, n, this.params, ids);
  }
}

export class FgsmRs implements Attack {
  readonly name = 'fgsm-rs';
  readonly params: IterativeParams;

  constructor(o: FgsmOptions) {
    validateBaseOptions(this.name, o);
    if (o.randomStart === false) throw new UserError('fgsm-rs: the random start is what defines FGSM-RS; use fgsm without it');
    this.params = {
      eps: o.eps,
      norm: o.norm,
      steps: 1,
      stepSize: o.stepSize ?? 1.25 * o.eps,
      start: 'uniform',
      restarts: o.restarts ?? 1,
      seed: o.seed,
      loss: 'ce',
    };
  }

  settings(): Record<string, unknown> {
    return iterativeSettings(this.name, this.params);
  }

  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    return runIterative(this.name, model, x, y, n, this.params, ids);
  }
}
