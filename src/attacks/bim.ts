// BIM / I-FGSM (Kurakin et al. 2017): PGD without a random start, CE loss.
//
// Defaults: steps 10; stepSize eps/steps, so that `steps` sign steps can just reach the boundary
// (with 10 steps this is the eps/10 used in transfer studies; Kurakin et al.'s own schedule,
// α = 1/255 with min(255·eps + 4, 1.25·255·eps) steps, is a caller choice). L2 is accepted too
// (iterative fast gradient method: steps of α·∇/||∇||_2). The attack is deterministic, so the seed
// is unused and restarts are refused. Cost: `steps` lossGrad calls plus one logits call.

import { UserError } from '../util/errors.js';
import { validateBaseOptions, type BaseAttackOptions } from './common.js';
import { iterativeSettings, runIterative, type IterativeParams } from './pgd.js';
import type { Attack, AttackModel, AttackResult } from './types.js';

export type BimOptions = BaseAttackOptions;

export class Bim implements Attack {
  readonly name = 'bim';
  readonly params: IterativeParams;

  constructor(o: BimOptions) {
    validateBaseOptions(this.name, o);
    if (o.randomStart) throw new UserError('bim: BIM has no random start; use pgd for a random start');
    if ((o.restarts ?? 1) > 1) throw new UserError('bim: BIM is deterministic, restarts > 1 would repeat the same run; use pgd');
    const steps = o.steps ?? 10;
    this.params = { eps: o.eps, norm: o.norm, steps, stepSize: o.stepSize ?? o.eps / steps, start: 'none', restarts: 1, seed: o.seed, loss: 'ce' };
  }

  settings(): Record<string, unknown> {
    return iterativeSettings(this.name, this.params);
  }

  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    return runIterative(this.name, model, x, y, n, this.params, ids);
  }
}
