// Pure-TypeScript AttackModels for the attack tests: a linear softmax classifier z = W·x + b and a
// one-hidden-layer tanh MLP, with exact analytic gradients of every AttackLoss (CE, DLR, targeted
// DLR, KL) written out by hand. Everything is computed in float64 from the float32 inputs, one
// example at a time (so results do not depend on the batch composition), and every call is
// recorded so tests can spy on what the attacks asked for.

import type { AttackLoss, AttackModel, LossGradResult } from '../../src/attacks/types.js';
import { Rng } from '../../src/util/random.js';

export interface ToyModelOptions {
  numClasses: number;
  /** [C, H, W] */
  shape: [number, number, number];
  /** Hidden units of the tanh layer; 0 (default) makes the model linear. */
  hidden?: number;
  seed?: number;
  /** Std of the first layer's weights (default 1/sqrt(d)·3). */
  weightScale?: number;
}

export interface CallRecord {
  fn: 'logits' | 'lossGrad';
  n: number;
  loss?: AttackLoss;
  /** A copy of the input, when recordInputs is set. */
  x?: Float32Array;
}

export class ToyModel implements AttackModel {
  readonly numClasses: number;
  readonly inputShape: readonly number[];
  readonly d: number;
  readonly hidden: number;
  /** First layer [H or K, d] and bias. */
  readonly w1: Float64Array;
  readonly b1: Float64Array;
  /** Second layer [K, H] and bias (MLP only). */
  readonly w2: Float64Array;
  readonly b2: Float64Array;
  calls: CallRecord[] = [];
  private readonly scratch: Float64Array;
  /** Keep a copy of every input in `calls`. */
  recordInputs = false;

  constructor(o: ToyModelOptions) {
    this.numClasses = o.numClasses;
    this.inputShape = o.shape;
    this.d = o.shape[0] * o.shape[1] * o.shape[2];
    this.hidden = o.hidden ?? 0;
    this.scratch = new Float64Array(this.d);
    const rng = new Rng(o.seed ?? 1);
    const out1 = this.hidden > 0 ? this.hidden : this.numClasses;
    const s1 = o.weightScale ?? 3 / Math.sqrt(this.d);
    this.w1 = rng.fillNormal(new Float64Array(out1 * this.d), s1);
    this.b1 = rng.fillNormal(new Float64Array(out1), 0.1);
    this.w2 = rng.fillNormal(new Float64Array(this.hidden * this.numClasses), this.hidden > 0 ? 3 / Math.sqrt(this.hidden) : 0);
    this.b2 = rng.fillNormal(new Float64Array(this.hidden > 0 ? this.numClasses : 0), 0.1);
  }

  /** A linear model with explicit weights W [K, d] and bias b [K]. */
  static linear(w: number[][], b: number[], shape: [number, number, number]): ToyModel {
    const m = new ToyModel({ numClasses: w.length, shape, hidden: 0 });
    m.w1.set(w.flat());
    m.b1.set(b);
    return m;
  }

  get lossGradCalls(): number {
    return this.calls.filter((c) => c.fn === 'lossGrad').length;
  }

  /** Logits of one example (float64) plus the hidden activations. */
  forward(x: Float32Array, off: number): { z: Float64Array; a: Float64Array } {
    const { d, hidden: hd, numClasses: k, w1, b1, w2, b2 } = this;
    const out1 = hd > 0 ? hd : k;
    const a = new Float64Array(out1);
    for (let u = 0; u < out1; u++) {
      let s = b1[u]!;
      const wo = u * d;
      for (let i = 0; i < d; i++) s += w1[wo + i]! * x[off + i]!;
      a[u] = hd > 0 ? Math.tanh(s) : s;
    }
    if (hd === 0) return { z: a, a };
    const z = new Float64Array(k);
    for (let c = 0; c < k; c++) {
      let s = b2[c]!;
      for (let u = 0; u < hd; u++) s += w2[c * hd + u]! * a[u]!;
      z[c] = s;
    }
    return { z, a };
  }

  /** dL/dx for one example given dL/dz, written into out at off. */
  backward(a: Float64Array, dz: Float64Array, out: Float32Array, off: number): void {
    const { d, hidden: hd, numClasses: k, w1, w2 } = this;
    let da: Float64Array;
    if (hd === 0) {
      da = dz;
    } else {
      da = new Float64Array(hd);
      for (let u = 0; u < hd; u++) {
        let s = 0;
        for (let c = 0; c < k; c++) s += w2[c * hd + u]! * dz[c]!;
        da[u] = s * (1 - a[u]! * a[u]!);
      }
    }
    const g = this.scratch;
    g.fill(0);
    for (let u = 0; u < da.length; u++) {
      const v = da[u]!;
      if (v === 0) continue;
      const wo = u * d;
      for (let i = 0; i < d; i++) g[i] = g[i]! + v * w1[wo + i]!;
    }
    for (let i = 0; i < d; i++) out[off + i] = g[i]!;
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    this.calls.push({ fn: 'logits', n, ...(this.recordInputs ? { x: x.slice() } : {}) });
    if (x.length !== n * this.d) throw new Error(`toy model: ${x.length} values for n=${n}`);
    const k = this.numClasses;
    const out = new Float32Array(n * k);
    for (let j = 0; j < n; j++) out.set(this.forward(x, j * this.d).z, j * k);
    return out;
  }

  async lossGrad(x: Float32Array, n: number, loss: AttackLoss): Promise<LossGradResult> {
    this.calls.push({ fn: 'lossGrad', n, loss, ...(this.recordInputs ? { x: x.slice() } : {}) });
    if (x.length !== n * this.d) throw new Error(`toy model: ${x.length} values for n=${n}`);
    const rows = loss.kind === 'kl' ? loss.cleanProbs.length / this.numClasses : loss.labels.length;
    if (rows !== n) throw new Error(`toy model: loss has ${rows} rows for n=${n}`);
    const k = this.numClasses;
    const lossOut = new Float32Array(n);
    const grad = new Float32Array(n * this.d);
    const logits = new Float32Array(n * k);
    for (let j = 0; j < n; j++) {
      const { z, a } = this.forward(x, j * this.d);
      logits.set(z, j * k);
      const { value, dz } = lossAndGrad(loss, z, j);
      lossOut[j] = value;
      this.backward(a, dz, grad, j * this.d);
    }
    return { loss: lossOut, grad, logits };
  }
}

function sortedDesc(z: Float64Array): number[] {
  return Array.from(z.keys()).sort((a, b) => z[b]! - z[a]! || a - b);
}

/** One example's loss value and dL/dz. */
export function lossAndGrad(loss: AttackLoss, z: Float64Array, j: number): { value: number; dz: Float64Array } {
  const k = z.length;
  const dz = new Float64Array(k);
  const softmax = () => {
    const mx = Math.max(...z);
    const e = Array.from(z, (v) => Math.exp(v - mx));
    const s = e.reduce((p, q) => p + q, 0);
    return { q: e.map((v) => v / s), lse: mx + Math.log(s) };
  };
  switch (loss.kind) {
    case 'ce': {
      const y = loss.labels[j]!;
      const { q, lse } = softmax();
      for (let c = 0; c < k; c++) dz[c] = q[c]! - (c === y ? 1 : 0);
      return { value: lse - z[y]!, dz };
    }
    case 'kl': {
      const { q, lse } = softmax();
      let v = 0;
      for (let c = 0; c < k; c++) {
        const p = loss.cleanProbs[j * k + c]!;
        if (p > 0) v += p * (Math.log(p) - (z[c]! - lse));
        dz[c] = q[c]! - p;
      }
      return { value: v, dz };
    }
    case 'dlr':
    case 'dlr-targeted': {
      const y = loss.labels[j]!;
      const o = sortedDesc(z);
      // L = -N/D; dL = -(dN·D - N·dD)/D².
      const dN = new Float64Array(k);
      const dD = new Float64Array(k);
      let num: number;
      let den: number;
      if (loss.kind === 'dlr') {
        const other = o[0] === y ? o[1]! : o[0]!;
        num = z[y]! - z[other]!;
        dN[y] = dN[y]! + 1;
        dN[other] = dN[other]! - 1;
        den = z[o[0]!]! - z[o[2]!]! + 1e-12;
        dD[o[0]!] = dD[o[0]!]! + 1;
        dD[o[2]!] = dD[o[2]!]! - 1;
      } else {
        const t = loss.targets[j]!;
        num = z[y]! - z[t]!;
        dN[y] = dN[y]! + 1;
        dN[t] = dN[t]! - 1;
        den = z[o[0]!]! - 0.5 * (z[o[2]!]! + z[o[3]!]!) + 1e-12;
        dD[o[0]!] = dD[o[0]!]! + 1;
        dD[o[2]!] = dD[o[2]!]! - 0.5;
        dD[o[3]!] = dD[o[3]!]! - 0.5;
      }
      for (let c = 0; c < k; c++) dz[c] = -(dN[c]! * den - num * dD[c]!) / (den * den);
      return { value: -num / den, dz };
    }
  }
}

/** Random images in [0,1] with some pixels exactly at 0 and 1 (to exercise the box constraint). */
export function randomImages(n: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const x = new Float32Array(n * d);
  for (let i = 0; i < x.length; i++) {
    const u = rng.next();
    x[i] = u < 0.1 ? 0 : u > 0.9 ? 1 : rng.next();
  }
  return x;
}

/** The model's own predictions as labels (clean accuracy 100%), optionally with some flipped. */
export async function predictedLabels(model: AttackModel, x: Float32Array, n: number): Promise<Int32Array> {
  const z = await model.logits(x, n);
  const k = model.numClasses;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (z[i * k + c]! > z[i * k + best]!) best = c;
    y[i] = best;
  }
  return y;
}

/** Max over examples of the L∞ / L2 distance to x, and the smallest / largest value. */
export function perturbationStats(xAdv: Float32Array, x: Float32Array, n: number, d: number) {
  let linf = 0;
  let l2 = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    let sq = 0;
    for (let i = j * d; i < j * d + d; i++) {
      const t = xAdv[i]! - x[i]!;
      linf = Math.max(linf, Math.abs(t));
      sq += t * t;
      min = Math.min(min, xAdv[i]!);
      max = Math.max(max, xAdv[i]!);
    }
    l2 = Math.max(l2, Math.sqrt(sq));
  }
  return { linf, l2, min, max };
}

/** Per-example correctness (strict margin) of a model on a batch. */
export async function correctMask(model: AttackModel, x: Float32Array, y: Int32Array, n: number): Promise<Uint8Array> {
  const z = await model.logits(x, n);
  const k = model.numClasses;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let other = -Infinity;
    for (let c = 0; c < k; c++) if (c !== y[i]) other = Math.max(other, z[i * k + c]!);
    out[i] = z[i * k + y[i]!]! > other ? 1 : 0;
  }
  return out;
}

export function count(mask: Uint8Array): number {
  return mask.reduce((a, b) => a + b, 0);
}
