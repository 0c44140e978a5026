// APGD-CE and APGD-T (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
// ensemble of diverse parameter-free attacks"), written from the paper and the semantics of the
// reference implementation (fra31/auto-attack, autoattack/autopgd_base.py), for L∞ and L2.
//
// One run on a set of examples (all per example, vectorised over the set):
// - start: L∞ x + eps·t/||t||_∞ with t uniform in [-1,1]^d; L2 x + eps·t/||t||_2 with t ~ N(0, I);
//   then clipped to [0,1] (AutoAttack always uses this random start; randomStart: false starts at x);
// - step size η = 2·eps initially (stepSize overrides the initial value);
// - iteration i: z = Π(x_i + η·dir(g_i)), x_{i+1} = Π(x_i + a·(z - x_i) + (1 - a)·(x_i - x_{i-1}))
//   with momentum a = 0.75 (a = 1 at i = 0), dir = sign for L∞ and g/||g||_2 for L2, Π the projection
//   onto B(x, eps) ∩ [0,1]^d; one lossGrad call per iteration for the examples still unbroken;
// - checkpoints after w_1 = ⌊0.22·N⌋ iterations, then at intervals shrinking by ⌊0.03·N⌋ down to a
//   minimum of ⌊0.06·N⌋ (each at least 1) — i.e. p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
//   p_0 = 0, p_1 = 0.22. At a checkpoint η is halved, and the iterate and its gradient reset to the
//   best-loss point, for the examples where (1) the loss increased in at most ρ·(interval length)
//   of the iterations since the previous checkpoint, or (2) the step size was not reduced at the
//   previous checkpoint and the best loss has not improved since it. ρ = 0.75.
//   (The first interval's first comparison is against the loss at the start point; the reference
//   code compares with a zero-initialised buffer there.)
// - An example counts as broken as soon as any evaluated point (start included) is misclassified;
//   that point is its xAdv and it leaves the active set (the reference keeps iterating on it, which
//   cannot change its verdict). Unbroken examples get their highest-loss point.
//
// APGD-CE: CE loss, `restarts` runs (default 1, AutoAttack "standard"), each only on the examples
// still robust. APGD-T: targeted DLR loss, for each of the top nTargetClasses (default 9, capped at
// numClasses - 1) classes by the clean logits in decreasing order (2nd largest first), `restarts`
// runs (default 1) on the examples still robust. Both attack only the clean-correct examples (one
// logits call); clean-misclassified ones are returned unchanged with robust = 0, as in AutoAttack.
// Default steps (N) 100, AutoAttack's n_iter.

import { UserError } from '../util/errors.js';
import type { Rng } from '../util/random.js';
import {
  ascentDirection,
  attackCleanCorrect,
  checkBatch,
  classesByLogit,
  copyRow,
  CountingModel,
  exampleRngs,
  gatherInts,
  gatherRows,
  indicesWhere,
  isCorrect,
  projectRow,
  requirePositiveInt,
  SALT,
  validateBaseOptions,
  type BaseAttackOptions,
  type MaskedState,
} from './common.js';
import type { Attack, AttackLoss, AttackModel, AttackResult, Norm } from './types.js';

export interface ApgdOptions extends BaseAttackOptions {
  /** Step-size reduction threshold ρ, default 0.75. */
  rho?: number;
}

export interface ApgdTOptions extends ApgdOptions {
  /** Number of target classes, default 9 (capped at numClasses - 1). */
  nTargetClasses?: number;
}

export interface ApgdParams {
  eps: number;
  norm: Norm;
  nIter: number;
  rho: number;
  restarts: number;
  randomStart: boolean;
  /** Initial step size (2·eps by default). */
  initialStepSize: number;
  seed: number;
}

/** Iteration counts after which APGD checks the step size, for nIter iterations (the schedule apgdRun follows). */
export function apgdCheckpoints(nIter: number): number[] {
  let k = Math.max(Math.floor(0.22 * nIter), 1);
  const kMin = Math.max(Math.floor(0.06 * nIter), 1);
  const decr = Math.max(Math.floor(0.03 * nIter), 1);
  const out: number[] = [];
  for (let at = k; at <= nIter; at += k) {
    out.push(at);
    k = Math.max(k - decr, kMin);
  }
  return out;
}

/** The per-example step-size decision at a checkpoint (exported for tests). */
export function apgdReduceStep(
  increases: number,
  interval: number,
  rho: number,
  reducedAtLastCheck: boolean,
  bestLossAtLastCheck: number,
  bestLoss: number,
): boolean {
  const oscillating = increases <= interval * rho;
  const stalled = !reducedAtLastCheck && bestLossAtLastCheck >= bestLoss;
  return oscillating || stalled;
}

interface RunResult {
  broken: Uint8Array;
  xBestAdv: Float32Array;
  xBest: Float32Array;
  lossBest: Float64Array;
}

/** The losses of one run, for a subset of the run's examples. */
type LossFor = (rows: number[]) => AttackLoss;

/** One APGD run on examples idx of the batch. */
async function apgdRun(
  cm: CountingModel,
  x: Float32Array,
  y: Int32Array,
  idx: number[],
  d: number,
  p: ApgdParams,
  rngs: Rng[],
  lossFor: LossFor,
): Promise<RunResult> {
  const k = cm.numClasses;
  const m = idx.length;
  const { eps, norm } = p;
  const cand = new Float64Array(d);
  const dir = new Float64Array(d);
  const zRow = new Float32Array(d);

  const xa = new Float32Array(m * d);
  for (let j = 0; j < m; j++) {
    const i = idx[j]!;
    const rng = rngs[i]!;
    const o = i * d;
    if (!p.randomStart) {
      for (let t = 0; t < d; t++) cand[t] = x[o + t]!;
    } else if (norm === 'linf') {
      let mx = 0;
      for (let t = 0; t < d; t++) {
        cand[t] = rng.uniform(-1, 1);
        mx = Math.max(mx, Math.abs(cand[t]!));
      }
      for (let t = 0; t < d; t++) cand[t] = x[o + t]! + (eps * cand[t]!) / (mx + 1e-12);
    } else {
      let sq = 0;
      for (let t = 0; t < d; t++) {
        cand[t] = rng.normal();
        sq += cand[t]! * cand[t]!;
      }
      const nrm = Math.sqrt(sq) + 1e-12;
      for (let t = 0; t < d; t++) cand[t] = x[o + t]! + (eps * cand[t]!) / nrm;
    }
    projectRow(norm, eps, cand, x, i, xa, j, d);
  }

  const all = Array.from({ length: m }, (_, j) => j);
  const first = await cm.lossGrad(xa, m, lossFor(all));
  const grad = Float32Array.from(first.grad);
  const broken = new Uint8Array(m);
  for (let j = 0; j < m; j++) if (!isCorrect(first.logits, j, k, y[idx[j]!]!)) broken[j] = 1;
  const xBestAdv = xa.slice();
  const xBest = xa.slice();
  const gradBest = grad.slice();
  const lossBest = Float64Array.from(first.loss);
  const prevLoss = Float64Array.from(first.loss);
  const xOld = xa.slice();
  const step = new Float64Array(m).fill(p.initialStepSize);
  const increases = new Int32Array(m);
  const lossBestLastCheck = lossBest.slice();
  const reducedLastCheck = new Uint8Array(m).fill(1);

  const checkpoints = apgdCheckpoints(p.nIter);
  let nextCheck = 0;
  let active = all.filter((j) => !broken[j]);

  for (let it = 0; it < p.nIter && active.length > 0; it++) {
    const a = it > 0 ? 0.75 : 1.0;
    for (const j of active) {
      const i = idx[j]!;
      const o = j * d;
      ascentDirection(norm, grad, j, d, dir);
      for (let t = 0; t < d; t++) cand[t] = xa[o + t]! + step[j]! * dir[t]!;
      projectRow(norm, eps, cand, x, i, zRow, 0, d);
      for (let t = 0; t < d; t++) {
        const cur = xa[o + t]!;
        cand[t] = cur + a * (zRow[t]! - cur) + (1 - a) * (cur - xOld[o + t]!);
        xOld[o + t] = cur;
      }
      projectRow(norm, eps, cand, x, i, xa, j, d);
    }

    const batch = active.length === m ? xa : gatherRows(xa, active, d);
    const res = await cm.lossGrad(batch, active.length, lossFor(active));
    for (let q = 0; q < active.length; q++) {
      const j = active[q]!;
      grad.set(res.grad.subarray(q * d, q * d + d), j * d);
      if (!isCorrect(res.logits, q, k, y[idx[j]!]!)) {
        broken[j] = 1;
        copyRow(xBestAdv, j, xa, j, d);
      }
      const l = res.loss[q]!;
      if (l > prevLoss[j]!) increases[j]!++;
      prevLoss[j] = l;
      if (l > lossBest[j]!) {
        lossBest[j] = l;
        copyRow(xBest, j, xa, j, d);
        copyRow(gradBest, j, grad, j, d);
      }
    }

    if (it + 1 === checkpoints[nextCheck]) {
      const interval = checkpoints[nextCheck]! - (checkpoints[nextCheck - 1] ?? 0);
      nextCheck++;
      for (const j of active) {
        const reduce = apgdReduceStep(increases[j]!, interval, p.rho, reducedLastCheck[j] === 1, lossBestLastCheck[j]!, lossBest[j]!);
        reducedLastCheck[j] = reduce ? 1 : 0;
        lossBestLastCheck[j] = lossBest[j]!;
        increases[j] = 0;
        if (reduce) {
          step[j] = step[j]! / 2;
          copyRow(xa, j, xBest, j, d);
          copyRow(grad, j, gradBest, j, d);
        }
      }
    }
    active = active.filter((j) => !broken[j]);
  }
  return { broken, xBestAdv, xBest, lossBest };
}

function mergeRun(state: MaskedState, idx: number[], run: RunResult, bestSoFar: Float64Array, d: number): void {
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j]!;
    if (run.broken[j]) {
      state.robust[i] = 0;
      copyRow(state.xAdv, i, run.xBestAdv, j, d);
    } else if (run.lossBest[j]! > bestSoFar[i]!) {
      bestSoFar[i] = run.lossBest[j]!;
      copyRow(state.xAdv, i, run.xBest, j, d);
    }
  }
}

/** APGD-CE on the examples with state.robust set; updates the state in place. */
export async function apgdCeMasked(cm: CountingModel, x: Float32Array, y: Int32Array, n: number, d: number, p: ApgdParams, state: MaskedState): Promise<void> {
  const rngs = exampleRngs(p.seed, SALT.apgdCe, n, state.ids);
  const bestSoFar = new Float64Array(n).fill(-Infinity);
  for (let r = 0; r < p.restarts; r++) {
    const idx = indicesWhere(state.robust);
    if (idx.length === 0) return;
    const labels = gatherInts(y, idx);
    const run = await apgdRun(cm, x, y, idx, d, p, rngs, (rows) => ({ kind: 'ce', labels: gatherInts(labels, rows) }));
    mergeRun(state, idx, run, bestSoFar, d);
  }
}

/** Effective number of target classes. */
export function apgdTargetCount(nTargetClasses: number, numClasses: number): number {
  return Math.min(nTargetClasses, numClasses - 1);
}

/** APGD-T on the examples with state.robust set; updates the state in place. */
export async function apgdTMasked(
  cm: CountingModel,
  x: Float32Array,
  y: Int32Array,
  n: number,
  d: number,
  p: ApgdParams,
  nTargetClasses: number,
  state: MaskedState,
): Promise<void> {
  const k = cm.numClasses;
  const rngs = exampleRngs(p.seed, SALT.apgdT, n, state.ids);
  const bestSoFar = new Float64Array(n).fill(-Infinity);
  const nT = apgdTargetCount(nTargetClasses, k);
  for (let tc = 1; tc <= nT; tc++) {
    for (let r = 0; r < p.restarts; r++) {
      const idx = indicesWhere(state.robust);
      if (idx.length === 0) return;
      const labels = gatherInts(y, idx);
      // The tc-th largest clean logit besides the top one (examples here are clean-correct, so the
      // top class is the label).
      const targets = Int32Array.from(idx, (i) => classesByLogit(state.cleanLogits, i, k)[tc]!);
      const run = await apgdRun(cm, x, y, idx, d, p, rngs, (rows) => ({
        kind: 'dlr-targeted',
        labels: gatherInts(labels, rows),
        targets: gatherInts(targets, rows),
      }));
      mergeRun(state, idx, run, bestSoFar, d);
    }
  }
}

/** Validated APGD parameters with AutoAttack's defaults (also aa-lite's APGD parts). */
export function resolveApgd(name: string, o: ApgdOptions): ApgdParams {
  validateBaseOptions(name, o);
  const rho = o.rho ?? 0.75;
  if (typeof rho !== 'number' || !(rho >= 0 && rho <= 1)) throw new UserError(`${name}: rho must be in [0, 1], got ${String(rho)}`);
  return {
    eps: o.eps,
    norm: o.norm,
    nIter: o.steps ?? 100,
    rho,
    restarts: o.restarts ?? 1,
    randomStart: o.randomStart ?? true,
    initialStepSize: o.stepSize ?? 2 * o.eps,
    seed: o.seed,
  };
}

export function apgdSettings(name: string, p: ApgdParams, loss: string): Record<string, unknown> {
  return {
    attack: name,
    norm: p.norm,
    eps: p.eps,
    steps: p.nIter,
    initialStepSize: p.initialStepSize,
    rho: p.rho,
    momentum: 0.75,
    restarts: p.restarts,
    randomStart: p.randomStart,
    loss,
    seed: p.seed,
  };
}

export class ApgdCe implements Attack {
  readonly name = 'apgd-ce';
  readonly params: ApgdParams;

  constructor(o: ApgdOptions) {
    this.params = resolveApgd(this.name, o);
  }

  settings(): Record<string, unknown> {
    return apgdSettings(this.name, this.params, 'ce');
  }

  async run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    const d = checkBatch(this.name, model, x, y, n);
    return attackCleanCorrect(model, x, y, n, (cm, state) => apgdCeMasked(cm, x, y, n, d, this.params, state), ids);
  }
}

export class ApgdT implements Attack {
  readonly name = 'apgd-t';
  readonly params: ApgdParams;
  readonly nTargetClasses: number;

  constructor(o: ApgdTOptions) {
    this.params = resolveApgd(this.name, o);
    this.nTargetClasses = o.nTargetClasses ?? 9;
    requirePositiveInt(this.name, 'nTargetClasses', this.nTargetClasses);
  }

  settings(): Record<string, unknown> {
    return { ...apgdSettings(this.name, this.params, 'dlr-targeted'), nTargetClasses: this.nTargetClasses };
  }

  async run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    const d = checkBatch(this.name, model, x, y, n);
    requireTargetedClasses(this.name, model.numClasses);
    return attackCleanCorrect(model, x, y, n, (cm, state) => apgdTMasked(cm, x, y, n, d, this.params, this.nTargetClasses, state), ids);
  }
}

/** The targeted DLR loss uses the 4th largest logit. */
export function requireTargetedClasses(name: string, numClasses: number): void {
  if (numClasses < 4) throw new UserError(`${name}: the targeted DLR loss needs at least 4 classes, the model has ${numClasses}`);
}
