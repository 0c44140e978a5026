// Shared machinery for the attacks: option validation, query counting, per-example random
// streams, row gather/scatter, the exact projection onto B_p(x, eps) ∩ [0,1]^d, and the
// attack losses evaluated from logits in JS (for choosing between restarts).
//
// Conventions used by every attack in this folder:
// - "correct" means the true-class logit is strictly larger than every other logit
//   (margin z_y - max_{j!=y} z_j > 0); a tie counts as broken.
// - Randomness is drawn from one Rng stream per example, derived from the seed, the attack part
//   and the example's id (its dataset index when the caller passes `ids` to run(), as evaluation
//   does; else its index in the batch), so an example's attack does not depend on the batch size or
//   on which other examples are in the batch or still active. This is what makes aa-lite's robust
//   set exactly the intersection of its parts' robust sets, and robust accuracy independent of
//   --batch-size.
// - `queries` counts model passes (one `logits` or `lossGrad` call, whatever its batch size).

import { UserError } from '../util/errors.js';
import { deriveRng } from '../data/seeds.js';
import { Rng } from '../util/random.js';
import type { AttackLoss, AttackModel, AttackOptions, AttackResult, Norm } from './types.js';

/** AttackOptions with `steps` optional (each attack documents its default). */
export type BaseAttackOptions = Omit<AttackOptions, 'steps'> & { steps?: number };

export const NORMS: readonly Norm[] = ['linf', 'l2'];

export function validateBaseOptions(attack: string, o: BaseAttackOptions, norms: readonly Norm[] = NORMS): void {
  if (!norms.includes(o.norm)) {
    throw new UserError(`${attack}: norm must be one of ${norms.join(', ')}, got "${String(o.norm)}"`);
  }
  if (typeof o.eps !== 'number' || !Number.isFinite(o.eps) || o.eps < 0) {
    throw new UserError(`${attack}: eps must be a finite number >= 0, got ${String(o.eps)}`);
  }
  if (o.norm === 'linf' && o.eps > 1) {
    throw new UserError(`${attack}: eps must be in [0, 1] for linf (images are in [0, 1] pixel space), got ${o.eps}`);
  }
  if (o.steps !== undefined) requirePositiveInt(attack, 'steps', o.steps);
  if (o.stepSize !== undefined && (typeof o.stepSize !== 'number' || !Number.isFinite(o.stepSize) || o.stepSize < 0)) {
    throw new UserError(`${attack}: stepSize must be a finite number >= 0, got ${String(o.stepSize)}`);
  }
  if (o.restarts !== undefined) requirePositiveInt(attack, 'restarts', o.restarts);
  if (typeof o.seed !== 'number' || !Number.isFinite(o.seed)) {
    throw new UserError(`${attack}: seed must be a finite number, got ${String(o.seed)}`);
  }
}

export function requirePositiveInt(attack: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new UserError(`${attack}: ${what} must be an integer >= 1, got ${String(v)}`);
}

/** Checks the batch against the model; returns the number of input elements per example. */
export function checkBatch(attack: string, model: AttackModel, x: Float32Array, y: Int32Array, n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new UserError(`${attack}: batch size must be an integer >= 0, got ${n}`);
  const d = model.inputShape.reduce((a, b) => a * b, 1);
  if (x.length !== n * d) {
    throw new UserError(`${attack}: input has ${x.length} values, expected ${n} x [${model.inputShape.join(', ')}] = ${n * d}`);
  }
  if (y.length !== n) throw new UserError(`${attack}: ${y.length} labels for a batch of ${n}`);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= model.numClasses) {
      throw new UserError(`${attack}: label ${c} of example ${i} is outside [0, ${model.numClasses})`);
    }
  }
  return d;
}

/** Wraps a model and counts its passes. */
export class CountingModel {
  queries = 0;
  constructor(readonly model: AttackModel) {}
  get numClasses(): number {
    return this.model.numClasses;
  }
  logits(x: Float32Array, n: number): Promise<Float32Array> {
    this.queries++;
    return this.model.logits(x, n);
  }
  lossGrad(x: Float32Array, n: number, loss: AttackLoss) {
    this.queries++;
    return this.model.lossGrad(x, n, loss);
  }
}

// ---------------------------------------------------------------------------------------------
// Randomness

/** Salts for the attack parts, so two parts with the same seed draw independent streams. */
export const SALT = { pgd: 11, apgdCe: 21, apgdT: 22, square: 31 } as const;

/**
 * One stream per example: example i's stream is a function of (seed, salt, its id: ids[i], or i) alone
 * (hashed, not forked in sequence, so it does not depend on which ids come before it).
 */
export function exampleRngs(seed: number, salt: number, n: number, ids?: ArrayLike<number>): Rng[] {
  if (ids && ids.length !== n) throw new Error(`exampleRngs: ${ids.length} ids for ${n} examples`);
  return Array.from({ length: n }, (_, i) => deriveRng(seed, salt, ids ? ids[i]! : i));
}

// ---------------------------------------------------------------------------------------------
// Rows

export function gatherRows(src: Float32Array, idx: ArrayLike<number>, d: number): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let j = 0; j < idx.length; j++) out.set(src.subarray(idx[j]! * d, idx[j]! * d + d), j * d);
  return out;
}

export function gatherInts(src: Int32Array, idx: ArrayLike<number>): Int32Array {
  const out = new Int32Array(idx.length);
  for (let j = 0; j < idx.length; j++) out[j] = src[idx[j]!]!;
  return out;
}

export function copyRow(dst: Float32Array, dstRow: number, src: Float32Array, srcRow: number, d: number): void {
  dst.set(src.subarray(srcRow * d, srcRow * d + d), dstRow * d);
}

export function indicesWhere(mask: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Logits

/** z_y - max_{j != y} z_j for row j of a [m, K] logits array. */
export function margin(logits: ArrayLike<number>, row: number, k: number, label: number): number {
  const o = row * k;
  let other = -Infinity;
  for (let c = 0; c < k; c++) if (c !== label && logits[o + c]! > other) other = logits[o + c]!;
  return logits[o + label]! - other;
}

/**
 * Per example, whether the arg max of its logits is its label (a tie goes to the lower class index, as
 * argmax does): clean accuracy everywhere (training, evaluation, compare).
 */
export function argmaxCorrect(logits: Float32Array, y: Int32Array, k: number): Uint8Array {
  const out = new Uint8Array(y.length);
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j]! > logits[i * k + best]!) best = j;
    out[i] = best === y[i] ? 1 : 0;
  }
  return out;
}

/** The points `argmaxCorrect` keeps, gathered: what an attack is run on. */
export function gatherCorrect(x: Float32Array, y: Int32Array, correct: Uint8Array, per: number): { idx: number[]; x: Float32Array; y: Int32Array } {
  const idx = indicesWhere(correct);
  return { idx, x: gatherRows(x, idx, per), y: gatherInts(y, idx) };
}

export function isCorrect(logits: ArrayLike<number>, row: number, k: number, label: number): boolean {
  return margin(logits, row, k, label) > 0;
}

export function softmaxRows(logits: ArrayLike<number>, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) mx = Math.max(mx, logits[i * k + c]!);
    let s = 0;
    for (let c = 0; c < k; c++) s += Math.exp(logits[i * k + c]! - mx);
    for (let c = 0; c < k; c++) out[i * k + c] = Math.exp(logits[i * k + c]! - mx) / s;
  }
  return out;
}

/** Classes of row `row` sorted by decreasing logit (ties: lower index first). */
export function classesByLogit(logits: ArrayLike<number>, row: number, k: number): number[] {
  const cls = Array.from({ length: k }, (_, c) => c);
  return cls.sort((a, b) => logits[row * k + b]! - logits[row * k + a]! || a - b);
}

/**
 * The loss of AttackLoss semantics computed in JS from one row of logits (the model computes the
 * same thing in its graph; this copy is only used to rank candidate points).
 */
export function lossFromLogits(loss: AttackLoss, logits: ArrayLike<number>, row: number, k: number): number {
  const z = (c: number) => logits[row * k + c]!;
  switch (loss.kind) {
    case 'ce': {
      let mx = -Infinity;
      for (let c = 0; c < k; c++) mx = Math.max(mx, z(c));
      let s = 0;
      for (let c = 0; c < k; c++) s += Math.exp(z(c) - mx);
      return mx + Math.log(s) - z(loss.labels[row]!);
    }
    case 'dlr': {
      const order = classesByLogit(logits, row, k);
      const y = loss.labels[row]!;
      const other = order[0] === y ? order[1]! : order[0]!;
      return -(z(y) - z(other)) / (z(order[0]!) - z(order[2]!) + 1e-12);
    }
    case 'dlr-targeted': {
      const order = classesByLogit(logits, row, k);
      const y = loss.labels[row]!;
      const t = loss.targets[row]!;
      return -(z(y) - z(t)) / (z(order[0]!) - 0.5 * (z(order[2]!) + z(order[3]!)) + 1e-12);
    }
    case 'kl': {
      let mx = -Infinity;
      for (let c = 0; c < k; c++) mx = Math.max(mx, z(c));
      let s = 0;
      for (let c = 0; c < k; c++) s += Math.exp(z(c) - mx);
      const lse = mx + Math.log(s);
      let kl = 0;
      for (let c = 0; c < k; c++) {
        const p = loss.cleanProbs[row * k + c]!;
        if (p > 0) kl += p * (Math.log(p) - (z(c) - lse));
      }
      return kl;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Projection

/**
 * Projects the candidate `cand` (length d, float64) for clean row `xRow` of `x` onto
 * B_norm(x, eps) ∩ [0,1]^d and writes the result to row `outRow` of `out`.
 *
 * L∞: coordinate-wise clip to [max(0, x - eps), min(1, x + eps)] — the exact Euclidean projection
 * onto the intersection (ball first, then box, gives the same point).
 * L2: radial projection onto the ball, then clip to [0,1]. Because x is inside [0,1], clipping only
 * moves coordinates towards x, so the result stays in the ball: both constraints hold (this is the
 * order used by AutoAttack, torchattacks and the robustness library; it is not the exact Euclidean
 * projection onto the intersection when the box is active).
 */
export function projectRow(
  norm: Norm,
  eps: number,
  cand: Float64Array,
  x: Float32Array,
  xRow: number,
  out: Float32Array,
  outRow: number,
  d: number,
): void {
  const xo = xRow * d;
  const oo = outRow * d;
  if (norm === 'linf') {
    for (let i = 0; i < d; i++) out[oo + i] = clipLinf(x[xo + i]!, eps, cand[i]!);
    return;
  }
  let sq = 0;
  for (let i = 0; i < d; i++) {
    const t = cand[i]! - x[xo + i]!;
    sq += t * t;
  }
  const nrm = Math.sqrt(sq);
  // Project onto a radius smaller by a relative 1e-7 so float32 rounding cannot leave the ball.
  const r = eps * (1 - 1e-7);
  const f = nrm > r ? r / nrm : 1;
  for (let i = 0; i < d; i++) {
    const xi = x[xo + i]!;
    const v = xi + (cand[i]! - xi) * f;
    out[oo + i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

/**
 * v clipped to [max(0, xi - eps), min(1, xi + eps)], returned as a float32 value that still
 * satisfies |v - xi| <= eps (rounding to float32 can otherwise move it half an ulp outside).
 */
export function clipLinf(xi: number, eps: number, v: number): number {
  const lo = Math.max(0, xi - eps);
  const hi = Math.min(1, xi + eps);
  let f = Math.fround(v < lo ? lo : v > hi ? hi : v);
  if (f - xi > eps) f = nextDown32(f);
  else if (xi - f > eps) f = nextUp32(f);
  return f;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function nextDown32(v: number): number {
  f32[0] = v;
  if (v > 0) u32[0] = u32[0]! - 1;
  else if (v < 0) u32[0] = u32[0]! + 1;
  else return v;
  return f32[0]!;
}
function nextUp32(v: number): number {
  f32[0] = v;
  if (v > 0) u32[0] = u32[0]! + 1;
  else if (v < 0) u32[0] = u32[0]! - 1;
  else return v;
  return f32[0]!;
}

/** L2 norm of row `row` of `a`. */
export function rowL2(a: ArrayLike<number>, row: number, d: number): number {
  let s = 0;
  for (let i = row * d, e = row * d + d; i < e; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export function rowL1(a: ArrayLike<number>, row: number, d: number): number {
  let s = 0;
  for (let i = row * d, e = row * d + d; i < e; i++) s += Math.abs(a[i]!);
  return s;
}

/** Steepest-ascent direction of a gradient row under the norm: sign(g) for L∞, g/||g||_2 for L2. */
export function ascentDirection(norm: Norm, g: ArrayLike<number>, row: number, d: number, out: Float64Array): void {
  const o = row * d;
  if (norm === 'linf') {
    for (let i = 0; i < d; i++) out[i] = Math.sign(g[o + i]!);
  } else {
    const nrm = rowL2(g, row, d) + 1e-12;
    for (let i = 0; i < d; i++) out[i] = g[o + i]! / nrm;
  }
}

/** The attack state threaded through APGD, Square and aa-lite's parts (updated in place). */
export interface MaskedState {
  xAdv: Float32Array;
  robust: Uint8Array;
  /** Clean logits [n, K]. */
  cleanLogits: Float32Array;
  /** The examples' ids for their random streams (exampleRngs), when the caller gave them. */
  ids?: ArrayLike<number>;
}

/**
 * The frame shared by APGD, Square and aa-lite: a clean pass marks the clean-correct examples as robust
 * (only those are attacked), `attack` updates the state in place, and the result counts every query.
 * What `attack` returns (aa-lite's per-stage counts) is added to the result; the images, the robust
 * flags and the query count come from the state and the counter only.
 */
export async function attackCleanCorrect(
  model: AttackModel, x: Float32Array, y: Int32Array, n: number,
  attack: (cm: CountingModel, state: MaskedState) => Promise<Pick<AttackResult, 'stages'> | void>,
  ids?: ArrayLike<number>,
): Promise<AttackResult> {
  if (n === 0) return { xAdv: x.slice(), robust: new Uint8Array(0), queries: 0 };
  const cm = new CountingModel(model);
  const k = cm.numClasses;
  const cleanLogits = Float32Array.from(await cm.logits(x, n));
  const robust = new Uint8Array(n);
  for (let i = 0; i < n; i++) robust[i] = isCorrect(cleanLogits, i, k, y[i]!) ? 1 : 0;
  const state: MaskedState = { xAdv: x.slice(), robust, cleanLogits, ids };
  const extra = await attack(cm, state);
  return { ...extra, xAdv: state.xAdv, robust: state.robust, queries: cm.queries };
}
