// MI-FGSM (Dong et al. 2018, "Boosting adversarial attacks with momentum").
//
// g_0 = 0; g_{t+1} = μ·g_t + ∇_x CE(x_t) / ||∇_x CE(x_t)||_1 (L1 norm per example);
// x_{t+1} = Π(x_t + α·sign(g_{t+1})) (L2: α·g/||g||_2, the paper's L2 variant), Π the projection
// onto B(x, eps) ∩ [0,1]^d.
// Defaults (the paper's): decay μ = 1.0, steps 10, stepSize α = eps/steps, no random start
// (deterministic: seed unused, restarts refused). Cost: `steps` lossGrad calls + one logits call.

import { UserError } from '../util/errors.js';
import { validateBaseOptions, type BaseAttackOptions } from './common.js';
import { iterativeSettings, runIterative, type IterativeParams } from './pgd.js';
import type { Attack, AttackModel, AttackResult } from './types.js';

export interface MifgsmOptions extends BaseAttackOptions {
  /** Momentum decay μ, default 1.0. */
  decay?: number;
}

export class Mifgsm implements Attack {
  readonly name = 'mifgsm';
  readonly params: IterativeParams;

  constructor(o: MifgsmOptions) {
    validateBaseOptions(this.name, o);
    if (o.randomStart) throw new UserError('mifgsm: MI-FGSM has no random start');
    if ((o.restarts ?? 1) > 1) throw new UserError('mifgsm: MI-FGSM is deterministic, restarts > 1 would repeat the same run');
    const decay = o.decay ?? 1.0;
    if (typeof decay !== 'number' || !Number.isFinite(decay) || decay < 0) throw new UserError(`mifgsm: decay must be a finite number >= 0, got ${String(decay)}`);
    const steps = o.steps ?? 10;
    this.params = { eps: o.eps, norm: o.norm, steps, stepSize: o.stepSize ?? o.eps / steps, start: 'none', restarts: 1, seed: o.seed, loss: 'ce', decay };
  }

  settings(): Record<string, unknown> {
    return { ...iterativeSettings(this.name, this.params), decay: this.params.decay };
  }

  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    return runIterative(this.name, model, x, y, n, this.params, ids);
  }
}
