// PGD (Madry et al. 2018) for L∞ and L2, and the iterative-gradient core shared with FGSM,
// FGSM-RS, BIM and MI-FGSM.
//
// One iteration: g = ∇_x loss (one lossGrad call for every example of the restart), step
// x <- Π(x + α·dir(g)) with dir = sign(g) for L∞ and g/||g||_2 for L2, and Π the projection onto
// B(x_clean, eps) ∩ [0,1]^d (ball first, then box; see common.ts). After the last step one logits
// call evaluates the final iterate: the returned point of a restart is its LAST iterate (classic
// PGD as in Madry et al. / torchattacks, no early stopping).
//
// Restarts: restart r > 0 runs only on the examples no earlier restart broke, so an example is
// broken if any restart breaks it (per-example worst case). For an example no restart breaks, xAdv
// is the final iterate with the highest loss over the restarts.
//
// Defaults (PGD):
// - steps 10 (torchattacks' PGD default),
// - stepSize 2.5·eps/steps for both norms. With 10 steps this is eps/4, torchattacks' PGD default
//   (alpha 2/255 at eps 8/255); scaling it as 2.5·eps/steps is the rule of thumb associated with
//   Madry et al.'s `robustness` library, and it lets a straight path cross the whole ball
//   (2.5·eps ≥ 2·eps) even from a random start. Madry et al.'s own CIFAR-10 setting (7 steps of
//   2/255 at 8/255) is a caller choice,
// - randomStart true: L∞ uniform in [-eps, eps]^d (Madry et al.); L2 a Gaussian direction scaled
//   to a radius drawn uniformly from [0, eps] (torchattacks' PGDL2, i.e. uniform radius, not
//   uniform volume); then projected onto [0,1],
// - restarts 1, loss 'ce'.
// Loss 'kl' is TRADES' inner maximisation (Zhang et al. 2019): KL(p_clean || softmax(z)) with
// p_clean = softmax of the clean logits (one extra logits call); its random start is TRADES'
// x + 0.001·N(0, 1) (the KL gradient vanishes at x itself), taken as it is, not clipped to [0,1] before
// the first gradient, as in the authors' code (every step after it is projected). Loss 'dlr' is AutoAttack's DLR.

import { UserError } from '../util/errors.js';
import type { Rng } from '../util/random.js';
import {
  ascentDirection,
  checkBatch,
  copyRow,
  CountingModel,
  exampleRngs,
  gatherInts,
  gatherRows,
  indicesWhere,
  isCorrect,
  lossFromLogits,
  projectRow,
  rowL1,
  SALT,
  softmaxRows,
  validateBaseOptions,
  type BaseAttackOptions,
} from './common.js';
import type { Attack, AttackLoss, AttackModel, AttackResult, Norm } from './types.js';

export type PgdLoss = 'ce' | 'kl' | 'dlr';
export const PGD_LOSSES: readonly PgdLoss[] = ['ce', 'kl', 'dlr'];

export interface PgdOptions extends BaseAttackOptions {
  /** 'ce' (default), 'kl' (TRADES' inner maximisation) or 'dlr' (AutoAttack's DLR). */
  loss?: PgdLoss;
  /** With a random start, the probability that an example gets it (else it starts at x); SAT uses 0.8. */
  randomStartProb?: number;
}

/** How the first iterate is drawn. */
export type StartKind = 'none' | 'uniform' | 'trades';

/** Fully resolved parameters of the iterative-gradient core. */
export interface IterativeParams {
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  start: StartKind;
  restarts: number;
  seed: number;
  loss: PgdLoss;
  /** Momentum decay μ (MI-FGSM): g <- μ·g + ∇/||∇||_1 and the step follows g. Undefined: plain PGD. */
  decay?: number;
  /** Probability of the random start per example (undefined: always); the others start at x. */
  startProb?: number;
}

function drawStart(p: IterativeParams, rng: Rng, x: Float32Array, row: number, d: number, cand: Float64Array): void {
  const o = row * d;
  // The coin is drawn only when it can fail, so runs without startProb see the same random numbers.
  const fromClean = p.startProb !== undefined && p.startProb < 1 && rng.next() >= p.startProb;
  if (p.start === 'none' || fromClean) {
    for (let i = 0; i < d; i++) cand[i] = x[o + i]!;
  } else if (p.start === 'trades') {
    for (let i = 0; i < d; i++) cand[i] = x[o + i]! + 0.001 * rng.normal();
  } else if (p.norm === 'linf') {
    for (let i = 0; i < d; i++) cand[i] = x[o + i]! + rng.uniform(-p.eps, p.eps);
  } else {
    let sq = 0;
    for (let i = 0; i < d; i++) {
      cand[i] = rng.normal();
      sq += cand[i]! * cand[i]!;
    }
    const r = (p.eps * rng.next()) / (Math.sqrt(sq) + 1e-12);
    for (let i = 0; i < d; i++) cand[i] = x[o + i]! + r * cand[i]!;
  }
}

/** The iterative-gradient core (PGD, BIM, MI-FGSM, FGSM, FGSM-RS). */
export async function runIterative(
  attack: string,
  model: AttackModel,
  x: Float32Array,
  y: Int32Array,
  n: number,
  p: IterativeParams,
  ids?: ArrayLike<number>,
): Promise<AttackResult> {
  const d = checkBatch(attack, model, x, y, n);
  const k = model.numClasses;
  if (p.loss === 'dlr' && k < 3) throw new UserError(`${attack}: the DLR loss needs at least 3 classes, the model has ${k}`);
  const cm = new CountingModel(model);
  const xAdv = x.slice();
  const robust = new Uint8Array(n).fill(1);
  if (n === 0) return { xAdv, robust, queries: 0 };

  let cleanProbs: Float32Array | undefined;
  if (p.loss === 'kl') cleanProbs = softmaxRows(await cm.logits(x, n), n, k);

  const rngs = exampleRngs(p.seed, SALT.pgd, n, ids);
  const bestLoss = new Float64Array(n).fill(-Infinity);
  const cand = new Float64Array(d);
  const dir = new Float64Array(d);

  for (let r = 0; r < p.restarts; r++) {
    const idx = indicesWhere(robust);
    if (idx.length === 0) break;
    const m = idx.length;
    const labels = gatherInts(y, idx);
    const loss: AttackLoss =
      p.loss === 'kl'
        ? { kind: 'kl', cleanProbs: gatherRows(cleanProbs!, idx, k) }
        : { kind: p.loss, labels };

    const cur = new Float32Array(m * d);
    for (let j = 0; j < m; j++) {
      drawStart(p, rngs[idx[j]!]!, x, idx[j]!, d, cand);
      if (p.start === 'trades') for (let i = 0; i < d; i++) cur[j * d + i] = cand[i]!;
      else projectRow(p.norm, p.eps, cand, x, idx[j]!, cur, j, d);
    }
    const mom = p.decay !== undefined ? new Float64Array(m * d) : undefined;

    for (let t = 0; t < p.steps; t++) {
      const { grad } = await cm.lossGrad(cur, m, loss);
      for (let j = 0; j < m; j++) {
        const o = j * d;
        if (mom) {
          const l1 = rowL1(grad, j, d) + 1e-12;
          for (let i = 0; i < d; i++) mom[o + i] = p.decay! * mom[o + i]! + grad[o + i]! / l1;
          ascentDirection(p.norm, mom, j, d, dir);
        } else {
          ascentDirection(p.norm, grad, j, d, dir);
        }
        for (let i = 0; i < d; i++) cand[i] = cur[o + i]! + p.stepSize * dir[i]!;
        projectRow(p.norm, p.eps, cand, x, idx[j]!, cur, j, d);
      }
    }

    const z = await cm.logits(cur, m);
    for (let j = 0; j < m; j++) {
      const i = idx[j]!;
      if (!isCorrect(z, j, k, y[i]!)) {
        robust[i] = 0;
        copyRow(xAdv, i, cur, j, d);
      } else {
        const l = lossFromLogits(loss, z, j, k);
        if (l > bestLoss[i]! || r === 0) {
          bestLoss[i] = l;
          copyRow(xAdv, i, cur, j, d);
        }
      }
    }
  }
  return { xAdv, robust, queries: cm.queries };
}

export function iterativeSettings(name: string, p: IterativeParams): Record<string, unknown> {
  return {
    attack: name,
    norm: p.norm,
    eps: p.eps,
    steps: p.steps,
    stepSize: p.stepSize,
    randomStart: p.start !== 'none',
    restarts: p.restarts,
    loss: p.loss,
    seed: p.seed,
  };
}

export function pgdDefaultStepSize(eps: number, steps: number): number {
  return (2.5 * eps) / steps;
}

export class Pgd implements Attack {
  readonly name = 'pgd';
  readonly params: IterativeParams;

  constructor(o: PgdOptions) {
    validateBaseOptions(this.name, o);
    const loss = o.loss ?? 'ce';
    if (!PGD_LOSSES.includes(loss)) throw new UserError(`pgd: loss must be one of ${PGD_LOSSES.join(', ')}, got "${String(loss)}"`);
    const steps = o.steps ?? 10;
    const randomStart = o.randomStart ?? true;
    const prob = o.randomStartProb;
    if (prob !== undefined && !(prob >= 0 && prob <= 1)) throw new UserError(`pgd: randomStartProb must be in [0, 1], got ${prob}`);
    this.params = {
      eps: o.eps,
      norm: o.norm,
      steps,
      stepSize: o.stepSize ?? pgdDefaultStepSize(o.eps, steps),
      start: !randomStart ? 'none' : loss === 'kl' ? 'trades' : 'uniform',
      restarts: o.restarts ?? 1,
      seed: o.seed,
      loss,
      ...(randomStart && prob !== undefined && prob < 1 ? { startProb: prob } : {}),
    };
  }

  settings(): Record<string, unknown> {
    return { ...iterativeSettings(this.name, this.params), start: this.params.start, ...(this.params.startProb !== undefined ? { startProb: this.params.startProb } : {}) };
  }

  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    return runIterative(this.name, model, x, y, n, this.params, ids);
  }
}
