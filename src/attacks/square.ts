// Square attack (Andriushchenko et al. 2020), score-based: forward passes (model.logits) only,
// never a gradient. Written from the paper and the semantics of AutoAttack's version
// (fra31/auto-attack, autoattack/square.py), margin loss, L∞ and L2.
//
// Loss: the margin z_y - max_{j!=y} z_j, minimised; an example is broken when it is <= 0.
// L∞: initialisation with vertical stripes x + eps·s (one random sign s per example, channel and
// column), clipped to [0,1]. Each iteration, per still-robust example: a random square window of
// side s = max(round(sqrt(p·H·W)), 1) and, per channel, a random sign σ; inside the window the
// candidate is x_best + 2·eps·σ projected onto B∞(x, eps) ∩ [0,1] (i.e. the window's pixels jump to
// x ± eps). The candidate replaces x_best if its margin is lower.
// L2: AutoAttack's version (grid of "eta" bumps as initialisation; each iteration moves the mass of
// one window into another random window and renormalises the perturbation to ||δ||_2 = eps).
// Schedule of p (AutoAttack's, rescaled to the budget): p_init = 0.8 halved at 10, 50, 200, 500,
// 1000, 2000, 4000, 6000 and 8000 of 10000 (iteration / nQueries · 10000).
//
// Budget: nQueries (default 5000, AutoAttack's) is the number of loss evaluations per example and
// restart, the initialisation included (so at most nQueries - 1 iterations; AutoAttack's reference
// spends one more). Plus one clean logits call: only clean-correct examples are attacked.
// `queries` reports model passes (each pass covers every example still being attacked), so it is at
// most 1 + restarts·nQueries. `steps` is ignored (use nQueries).
// Randomness is drawn per example (the reference draws one window and sign vector for the whole
// batch), and window positions range over all valid positions 0..H-s (the reference's 0..H-s-1).

import { UserError } from '../util/errors.js';
import type { Rng } from '../util/random.js';
import {
  attackCleanCorrect,
  checkBatch,
  copyRow,
  CountingModel,
  exampleRngs,
  indicesWhere,
  margin,
  projectRow,
  clipLinf,
  requirePositiveInt,
  SALT,
  validateBaseOptions,
  type BaseAttackOptions,
  type MaskedState,
} from './common.js';
import type { Attack, AttackModel, AttackResult, Norm } from './types.js';

export interface SquareOptions extends BaseAttackOptions {
  /** Loss evaluations per example (and restart), initialisation included; default 5000. */
  nQueries?: number;
  /** Initial fraction of pixels in the square, default 0.8. */
  pInit?: number;
}

export interface SquareParams {
  eps: number;
  norm: Norm;
  nQueries: number;
  pInit: number;
  restarts: number;
  seed: number;
}

/** AutoAttack's schedule for p at iteration `it` (0-based) of a budget of nQueries. */
export function squarePSelection(it: number, nQueries: number, pInit: number): number {
  const t = Math.floor((it / nQueries) * 10000);
  if (t <= 10) return pInit;
  if (t <= 50) return pInit / 2;
  if (t <= 200) return pInit / 4;
  if (t <= 500) return pInit / 8;
  if (t <= 1000) return pInit / 16;
  if (t <= 2000) return pInit / 32;
  if (t <= 4000) return pInit / 64;
  if (t <= 6000) return pInit / 128;
  if (t <= 8000) return pInit / 256;
  return pInit / 512;
}

function sign(rng: Rng): number {
  return rng.next() < 0.5 ? -1 : 1;
}

/** AutoAttack's eta_rectangles: nested rectangles of weight 1/(c+1)^2, L2-normalised, [a, b]. */
function etaRectangles(a: number, b: number): Float64Array {
  const out = new Float64Array(a * b);
  const ac = Math.floor(a / 2) + 1;
  const bc = Math.floor(b / 2) + 1;
  let r0 = ac - 1;
  let c0 = bc - 1;
  for (let c = 0; c < Math.max(ac, bc); c++) {
    const w = 1 / ((c + 1) * (c + 1));
    for (let r = Math.max(r0, 0); r < Math.min(r0 + 2 * c + 1, a); r++) {
      for (let q = Math.max(c0, 0); q < Math.min(c0 + 2 * c + 1, b); q++) out[r * b + q]! += w;
    }
    r0--;
    c0--;
  }
  normalise(out);
  return out;
}

function normalise(v: Float64Array): void {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const nrm = Math.sqrt(s);
  if (nrm > 0) for (let i = 0; i < v.length; i++) v[i] = v[i]! / nrm;
}

const etaCache = new Map<number, Float64Array>();
/** AutoAttack's eta(s): a positive bump over the top half and a negative one over the bottom, unit L2. */
export function squareEta(s: number): Float64Array {
  let e = etaCache.get(s);
  if (!e) {
    e = new Float64Array(s * s);
    const h1 = Math.floor(s / 2);
    const top = etaRectangles(h1, s);
    const bottom = etaRectangles(s - h1, s);
    for (let i = 0; i < h1 * s; i++) e[i] = top[i]!;
    for (let i = 0; i < (s - h1) * s; i++) e[h1 * s + i] = -bottom[i]!;
    normalise(e);
    etaCache.set(s, e);
  }
  return e;
}

interface Geometry {
  c: number;
  h: number;
  w: number;
  d: number;
}

/** One Square run (L∞) on examples idx; returns the best points and their margins. */
async function squareRunLinf(cm: CountingModel, x: Float32Array, y: Int32Array, idx: number[], g: Geometry, p: SquareParams, rngs: Rng[]) {
  const { c, h, w, d } = g;
  const k = cm.numClasses;
  const m = idx.length;
  const eps = p.eps;
  const xBest = new Float32Array(m * d);
  const cand = new Float64Array(d);
  for (let j = 0; j < m; j++) {
    const i = idx[j]!;
    const rng = rngs[i]!;
    for (let ch = 0; ch < c; ch++) {
      for (let col = 0; col < w; col++) {
        const s = eps * sign(rng);
        for (let r = 0; r < h; r++) {
          const t = ch * h * w + r * w + col;
          cand[t] = x[i * d + t]! + s;
        }
      }
    }
    projectRow('linf', eps, cand, x, i, xBest, j, d);
  }
  const z0 = await cm.logits(xBest, m);
  const marginMin = new Float64Array(m);
  for (let j = 0; j < m; j++) marginMin[j] = margin(z0, j, k, y[idx[j]!]!);

  for (let it = 0; it < p.nQueries - 1; it++) {
    const active: number[] = [];
    for (let j = 0; j < m; j++) if (marginMin[j]! > 0) active.push(j);
    if (active.length === 0) break;
    const pp = squarePSelection(it, p.nQueries, p.pInit);
    const s = Math.min(Math.max(Math.round(Math.sqrt(pp * h * w)), 1), h, w);
    const batch = new Float32Array(active.length * d);
    for (let q = 0; q < active.length; q++) {
      const j = active[q]!;
      const i = idx[j]!;
      const rng = rngs[i]!;
      copyRow(batch, q, xBest, j, d);
      const vh = rng.int(h - s + 1);
      const vw = rng.int(w - s + 1);
      for (let ch = 0; ch < c; ch++) {
        const jump = 2 * eps * sign(rng);
        for (let r = vh; r < vh + s; r++) {
          for (let col = vw; col < vw + s; col++) {
            const t = ch * h * w + r * w + col;
            batch[q * d + t] = clipLinf(x[i * d + t]!, eps, batch[q * d + t]! + jump);
          }
        }
      }
    }
    await keepImprovements(cm, batch, active, (j) => y[idx[j]!]!, k, d, marginMin, xBest);
  }
  return { xBest, marginMin };
}

/** Score the candidates (one logits call) and keep each one that lowers its example's margin. */
async function keepImprovements(cm: CountingModel, batch: Float32Array, active: number[], label: (j: number) => number, k: number, d: number, marginMin: Float64Array | Float32Array | number[], xBest: Float32Array): Promise<void> {
  const z = await cm.logits(batch, active.length);
  for (let q = 0; q < active.length; q++) {
    const j = active[q]!;
    const mg = margin(z, q, k, label(j));
    if (mg < marginMin[j]!) {
      marginMin[j] = mg;
      copyRow(xBest, j, batch, q, d);
    }
  }
}

/** One Square run (L2) on examples idx. */
async function squareRunL2(cm: CountingModel, x: Float32Array, y: Int32Array, idx: number[], g: Geometry, p: SquareParams, rngs: Rng[]) {
  const { c, h, w, d } = g;
  const hw = h * w;
  const k = cm.numClasses;
  const m = idx.length;
  const eps = p.eps;
  const xBest = new Float32Array(m * d);
  const delta = new Float64Array(d);
  const cand = new Float64Array(d);

  const toImage = (i: number, out: Float32Array, row: number) => {
    // x + eps·δ/||δ||_2, then [0,1] (projectRow also guards the ball against rounding).
    let sq = 0;
    for (let t = 0; t < d; t++) sq += delta[t]! * delta[t]!;
    const f = eps / (Math.sqrt(sq) + 1e-12);
    for (let t = 0; t < d; t++) cand[t] = x[i * d + t]! + f * delta[t]!;
    projectRow('l2', eps, cand, x, i, out, row, d);
  };
  const etaAt = (s: number, transpose: boolean, a: number, b: number) => {
    const e = squareEta(s);
    return transpose ? e[b * s + a]! : e[a * s + b]!;
  };

  // Initialisation: a centred grid of windows of side max(1, ⌊min(H, W)/5⌋), each an eta bump
  // with a random sign per channel.
  const s0 = Math.max(1, Math.floor(Math.min(h, w) / 5));
  const nh = Math.floor(h / s0);
  const nw = Math.floor(w / s0);
  const sh = Math.floor((h - nh * s0) / 2);
  const sw = Math.floor((w - nw * s0) / 2);
  for (let j = 0; j < m; j++) {
    const i = idx[j]!;
    const rng = rngs[i]!;
    delta.fill(0);
    for (let bh = 0; bh < nh; bh++) {
      for (let bw = 0; bw < nw; bw++) {
        const transpose = rng.next() > 0.5;
        for (let ch = 0; ch < c; ch++) {
          const sg = sign(rng);
          for (let a = 0; a < s0; a++) {
            for (let b = 0; b < s0; b++) delta[ch * hw + (sh + bh * s0 + a) * w + sw + bw * s0 + b]! += sg * etaAt(s0, transpose, a, b);
          }
        }
      }
    }
    toImage(i, xBest, j);
  }
  const z0 = await cm.logits(xBest, m);
  const marginMin = new Float64Array(m);
  for (let j = 0; j < m; j++) marginMin[j] = margin(z0, j, k, y[idx[j]!]!);

  const normsW1 = new Float64Array(c);
  for (let it = 0; it < p.nQueries - 1; it++) {
    const active: number[] = [];
    for (let j = 0; j < m; j++) if (marginMin[j]! > 0) active.push(j);
    if (active.length === 0) break;
    const pp = squarePSelection(it, p.nQueries, p.pInit);
    let s = Math.max(Math.round(Math.sqrt(pp * h * w)), 3);
    if (s % 2 === 0) s++;
    s = Math.min(s, h, w);
    const batch = new Float32Array(active.length * d);
    for (let q = 0; q < active.length; q++) {
      const j = active[q]!;
      const i = idx[j]!;
      const rng = rngs[i]!;
      for (let t = 0; t < d; t++) delta[t] = xBest[j * d + t]! - x[i * d + t]!;
      const vh = rng.int(h - s + 1);
      const vw = rng.int(w - s + 1);
      const vh2 = rng.int(h - s + 1);
      const vw2 = rng.int(w - s + 1);
      const in1 = (r: number, col: number) => r >= vh && r < vh + s && col >= vw && col < vw + s;
      const in2 = (r: number, col: number) => r >= vh2 && r < vh2 + s && col >= vw2 && col < vw2 + s;
      let normImage = 0;
      let normWindows = 0;
      normsW1.fill(0);
      for (let ch = 0; ch < c; ch++) {
        for (let r = 0; r < h; r++) {
          for (let col = 0; col < w; col++) {
            const v = delta[ch * hw + r * w + col]!;
            const v2 = v * v;
            normImage += v2;
            const a1 = in1(r, col);
            if (a1) normsW1[ch]! += v2;
            if (a1 || in2(r, col)) normWindows += v2;
          }
        }
      }
      normImage = Math.sqrt(normImage);
      normWindows = Math.sqrt(normWindows);
      const transpose = rng.next() > 0.5;
      const target = Math.sqrt(Math.max(eps * eps - normImage * normImage, 0) / c + normWindows * normWindows);
      const nd = new Float64Array(c * s * s);
      for (let ch = 0; ch < c; ch++) {
        const sg = sign(rng);
        const nw1 = Math.sqrt(normsW1[ch]!) + 1e-12;
        let sq = 0;
        for (let a = 0; a < s; a++) {
          for (let b = 0; b < s; b++) {
            const v = sg * etaAt(s, transpose, a, b) + delta[ch * hw + (vh + a) * w + vw + b]! / nw1;
            nd[ch * s * s + a * s + b] = v;
            sq += v * v;
          }
        }
        const f = target / (Math.sqrt(sq) + 1e-12);
        for (let t = 0; t < s * s; t++) nd[ch * s * s + t] = nd[ch * s * s + t]! * f;
      }
      for (let ch = 0; ch < c; ch++) {
        for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) delta[ch * hw + (vh2 + a) * w + vw2 + b] = 0;
      }
      for (let ch = 0; ch < c; ch++) {
        for (let a = 0; a < s; a++) for (let b = 0; b < s; b++) delta[ch * hw + (vh + a) * w + vw + b] = nd[ch * s * s + a * s + b]!;
      }
      toImage(i, batch, q);
    }
    await keepImprovements(cm, batch, active, (j) => y[idx[j]!]!, k, d, marginMin, xBest);
  }
  return { xBest, marginMin };
}

export function squareGeometry(name: string, model: AttackModel): Geometry {
  const shape = model.inputShape;
  if (shape.length !== 3) throw new UserError(`${name}: needs [C, H, W] images, the model's input shape is [${shape.join(', ')}]`);
  const [c, h, w] = shape as [number, number, number];
  return { c, h, w, d: c * h * w };
}

/** Square on the examples with state.robust set; updates the state in place. */
export async function squareMasked(cm: CountingModel, x: Float32Array, y: Int32Array, n: number, g: Geometry, p: SquareParams, state: MaskedState): Promise<void> {
  const rngs = exampleRngs(p.seed, SALT.square, n, state.ids);
  for (let r = 0; r < p.restarts; r++) {
    const idx = indicesWhere(state.robust);
    if (idx.length === 0) return;
    const run = p.norm === 'linf' ? await squareRunLinf(cm, x, y, idx, g, p, rngs) : await squareRunL2(cm, x, y, idx, g, p, rngs);
    for (let j = 0; j < idx.length; j++) {
      const i = idx[j]!;
      copyRow(state.xAdv, i, run.xBest, j, g.d);
      if (!(run.marginMin[j]! > 0)) state.robust[i] = 0;
    }
  }
}

export function resolveSquare(name: string, o: SquareOptions): SquareParams {
  validateBaseOptions(name, o);
  const nQueries = o.nQueries ?? 5000;
  requirePositiveInt(name, 'nQueries', nQueries);
  const pInit = o.pInit ?? 0.8;
  if (typeof pInit !== 'number' || !(pInit > 0 && pInit <= 1)) throw new UserError(`${name}: pInit must be in (0, 1], got ${String(pInit)}`);
  return { eps: o.eps, norm: o.norm, nQueries, pInit, restarts: o.restarts ?? 1, seed: o.seed };
}

export function squareSettings(name: string, p: SquareParams): Record<string, unknown> {
  return { attack: name, norm: p.norm, eps: p.eps, nQueries: p.nQueries, pInit: p.pInit, loss: 'margin', restarts: p.restarts, seed: p.seed };
}

export class Square implements Attack {
  readonly name = 'square';
  readonly params: SquareParams;

  constructor(o: SquareOptions) {
    this.params = resolveSquare(this.name, o);
  }

  settings(): Record<string, unknown> {
    return squareSettings(this.name, this.params);
  }

  async run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult> {
    checkBatch(this.name, model, x, y, n);
    const g = squareGeometry(this.name, model);
    return attackCleanCorrect(model, x, y, n, (cm, state) => squareMasked(cm, x, y, n, g, this.params, state), ids);
  }
}
