// Sharpness of a trained model (RFN, Gubri et al. 2022): the largest Hessian eigenvalue (power
// iteration on Hessian-vector products) and the Hessian trace (Hutchinson's estimator with
// Rademacher vectors) of the mean cross-entropy over a FIXED set of training images, BN in eval mode
// (running statistics, so the loss is a deterministic function of the parameters), with respect to
// every parameter (BN running statistics are buffers: fixed inputs, never differentiated).
//
// Graphs (generated here from the eval-mode model; artifacts.ts is not involved):
//   - "sharpness_grad": inputs images, labels, parameters, buffers -> `loss` (SUM of per-example CE
//     over the batch) and `grad.<param>` = d loss / d param.
//   - "sharpness_hvp" (--hvp exact): the same inputs plus a direction `v.<param>` per parameter ->
//     `hv.<param>` = d( sum_p <grad_p, v_p> ) / d param = H·v, by running addGradients twice
//     (Pearlmutter's trick as double backward: every op the first backward pass emits must itself
//     have a VJP rule).
// Batches are summed in JS and divided by the subset size, so the quantities are those of the mean
// CE over the whole subset, whatever the batch size.
//
// --hvp fd: H·v ≈ (g(w + r·v) − g(w − r·v)) / 2r (central difference of the gradient, error O(r²)).
// r is chosen relative to the weights: r = δ · max(‖w‖₂, 1) / ‖v‖₂ with δ = 1e-3 by default
// (--fd-rel), i.e. the perturbation r·v has norm δ·‖w‖ (0.1 % of the weight norm), so the step scales
// with the model instead of being an absolute number. In float32 the gradient carries a relative
// rounding error of ~1e-6..1e-5, which the difference divides by r; δ = 1e-3 keeps that term
// ~1e-3 of |H·v| while the O(r²) truncation term stays small for smooth models (tested: rel. err.
// < 1e-2 against exact). For piecewise-linear networks (ReLU, max-pool) the gradient jumps where an
// activation or a pooling argmax switches inside the ±r·v segment, and fd measures a smoothed
// curvature: on small-cnn it can differ from the exact H·v by tens of percent for a generic direction
// (λ_max typically comes out larger). Exact is the default and works for every built-in architecture.
//
// Power iteration converges to the eigenvalue of largest MAGNITUDE; for a trained network that is the
// largest positive eigenvalue (negative curvature is much smaller in magnitude), as in PyHessian.
// `lambda_history` (the Rayleigh quotient after each iteration) lets one judge convergence.

import ort from 'onnxruntime-node';
import { addGradients } from '../autodiff/grad.js';
import { Builder } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import { makeTensor, numel, type Tensor } from '../ir/tensor.js';
import type { BuiltModel } from '../models/index.js';
import { CompiledGraph, toOrt, type RuntimeOptions } from '../runtime/session.js';
import { crossEntropy } from '../train/losses.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/random.js';

export type HvpMode = 'exact' | 'fd';
export const HVP_MODES: readonly HvpMode[] = ['exact', 'fd'];
/** Default relative finite-difference step δ (see the header). */
export const FD_REL_DEFAULT = 1e-3;

export const gradName = (p: string) => `grad.${p}`;
export const dirName = (p: string) => `v.${p}`;
export const hvName = (p: string) => `hv.${p}`;

/** Make every parameter and buffer a graph input (their values are fed at run time). */
function promoteState(model: BuiltModel): void {
  for (const p of model.params) model.graph.promoteToInput(p.name);
  for (const b of model.buffers) model.graph.promoteToInput(b);
}

function markOutput(b: Builder, value: string, name: string): string {
  b.graph.addNode('Identity', [value], {}, { outputs: [name] });
  b.graph.markOutput(name);
  return name;
}

/** Adds labels, the summed CE loss and the parameter gradients to an eval-mode model graph (in place). */
function addLossAndGrad(model: BuiltModel): { g: Graph; b: Builder; loss: string; grads: Record<string, string> } {
  const g = model.graph;
  const b = new Builder(g);
  promoteState(model);
  const labels = g.addInput('labels', 'int64', ['N']);
  const loss = markOutput(b, crossEntropy(b, model.logits, labels, { reduction: 'sum' }), 'loss');
  g.outputs = [loss];
  const grads = addGradients(g, loss, model.params.map((p) => p.name));
  for (const p of model.params) markOutput(b, grads[p.name]!, gradName(p.name));
  return { g, b, loss, grads };
}

/**
 * The gradient graph. `model` must be an eval-mode BuiltModel (parameters and buffers as initializers);
 * it is modified in place and returned as the graph.
 */
export function generateSharpnessGrad(model: BuiltModel): Graph {
  const { g } = addLossAndGrad(model);
  g.name = 'sharpness_grad';
  g.prune();
  return g;
}

/**
 * The exact Hessian-vector-product graph (double backward). Throws a UserError naming the op whose VJP
 * rule is missing (and suggesting --hvp fd) if the first backward pass emits an op advrun cannot
 * differentiate.
 */
export function generateSharpnessHvp(model: BuiltModel): Graph {
  const { g, b, grads } = addLossAndGrad(model);
  g.name = 'sharpness_hvp';
  const dots = model.params.map((p) => {
    const v = g.addInput(dirName(p.name), 'float32', g.shape(p.name));
    return b.sumAll(b.mul(grads[p.name]!, v));
  });
  const gv = b.sum(dots);
  let hv: Record<string, string>;
  try {
    hv = addGradients(g, gv, model.params.map((p) => p.name));
  } catch (e) {
    const msg = (e as Error).message;
    const op = /no VJP rule for op (\S+)/.exec(msg)?.[1] ?? /VJP of (\S+) node/.exec(msg)?.[1];
    throw new UserError(`--hvp exact: cannot differentiate the gradient graph a second time${op ? ` (op ${op})` : ''}: ${msg}; use --hvp fd (finite differences of gradients)`);
  }
  g.outputs = [];
  for (const p of model.params) markOutput(b, hv[p.name]!, hvName(p.name));
  g.prune();
  return g;
}

// ---------- flat parameter vectors ----------

/** Layout of the flat parameter vector: each parameter's offset and shape, in manifest order. */
export interface ParamLayout {
  names: string[];
  dims: number[][];
  offsets: number[];
  size: number;
}

export function paramLayout(params: { name: string }[], state: Map<string, Tensor>): ParamLayout {
  const names = params.map((p) => p.name);
  const dims: number[][] = [], offsets: number[] = [];
  let size = 0;
  for (const n of names) {
    const t = state.get(n);
    if (!t) throw new UserError(`model state has no parameter "${n}"`);
    dims.push([...t.dims]);
    offsets.push(size);
    size += numel(t.dims);
  }
  return { names, dims, offsets, size };
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function norm2(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/** A fixed labelled image set (already in memory, in order). */
export interface FixedSubset {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  /** [C, H, W] */
  shape: readonly number[];
}

export interface HessianOptions extends RuntimeOptions {
  hvp: HvpMode;
  batchSize: number;
  /** fd only: relative step δ (r = δ·max(‖w‖,1)/‖v‖). */
  fdRel?: number;
}

/**
 * Loss, gradient and Hessian-vector products of the mean CE over a fixed subset, as flat Float64Array
 * vectors over all parameters (layout: `layout`). Each call is a full pass over the subset.
 */
export class HessianOracle {
  readonly layout: ParamLayout;
  /** Counts of full passes, for the report. */
  hvpCalls = 0;
  private readonly w: Float64Array;
  private readonly wNorm: number;
  private readonly fixedFeeds: Record<string, ort.Tensor> = {};
  private readonly batchFeeds: { images: ort.Tensor; labels: ort.Tensor; n: number }[] = [];

  private constructor(
    private readonly gradSession: CompiledGraph,
    private readonly hvpSession: CompiledGraph | null,
    readonly params: string[],
    readonly state: Map<string, Tensor>,
    readonly data: FixedSubset,
    readonly opts: HessianOptions,
  ) {
    this.layout = paramLayout(params.map((name) => ({ name })), state);
    this.w = this.flatten(params.map((p) => state.get(p)!.data as ArrayLike<number>));
    this.wNorm = norm2(this.w);
    for (const [k, t] of state) this.fixedFeeds[k] = toOrt(t);
    const per = data.shape.reduce((a, c) => a * c, 1);
    for (let s = 0; s < data.n; s += opts.batchSize) {
      const m = Math.min(opts.batchSize, data.n - s);
      this.batchFeeds.push({
        images: toOrt(makeTensor('float32', [m, ...data.shape], data.images.subarray(s * per, (s + m) * per))),
        labels: toOrt(makeTensor('int64', [m], BigInt64Array.from(data.labels.subarray(s, s + m), (v) => BigInt(v)))),
        n: m,
      });
    }
  }

  /**
   * Build the graphs for `model` (an eval-mode BuiltModel with parameters as initializers; it is consumed)
   * and open the sessions. `makeModel` is called once per graph since generation mutates the model.
   */
  static async create(makeModel: () => BuiltModel, state: Map<string, Tensor>, data: FixedSubset, opts: HessianOptions): Promise<HessianOracle> {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new UserError(`--batch-size must be a positive integer, got ${opts.batchSize}`);
    if (data.n < 1) throw new UserError('the sharpness subset is empty');
    const gm = makeModel();
    const params = gm.params.map((p) => p.name);
    const needed = [...params, ...gm.buffers];
    for (const k of needed) if (!state.has(k)) throw new UserError(`model state is missing tensor "${k}"`);
    const ro: RuntimeOptions = { ep: opts.ep, threads: opts.threads, log: opts.log };
    const grad = await CompiledGraph.create(generateSharpnessGrad(gm), { ...ro, label: 'sharpness_grad' });
    const hvp = opts.hvp === 'exact' ? await CompiledGraph.create(generateSharpnessHvp(makeModel()), { ...ro, label: 'sharpness_hvp' }) : null;
    const own = new Map(needed.map((k) => [k, state.get(k)!]));
    return new HessianOracle(grad, hvp, params, own, data, opts);
  }

  get weightNorm(): number {
    return this.wNorm;
  }

  private flatten(parts: ArrayLike<number>[]): Float64Array {
    const out = new Float64Array(this.layout.size);
    parts.forEach((p, i) => {
      const o = this.layout.offsets[i]!;
      for (let j = 0; j < p.length; j++) out[o + j] = p[j]!;
    });
    return out;
  }

  /** Per-parameter float32 tensors from a flat vector. */
  private unflatten(v: ArrayLike<number>, name: (p: string) => string): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    this.layout.names.forEach((p, i) => {
      const o = this.layout.offsets[i]!;
      const dims = this.layout.dims[i]!;
      const a = new Float32Array(numel(dims));
      for (let j = 0; j < a.length; j++) a[j] = v[o + j]!;
      feeds[name(p)] = new ort.Tensor('float32', a, dims);
    });
    return feeds;
  }

  private accumulate(acc: Float64Array, out: Record<string, ort.Tensor>, name: (p: string) => string): void {
    this.layout.names.forEach((p, i) => {
      const o = this.layout.offsets[i]!;
      const d = out[name(p)]!.data as Float32Array;
      for (let j = 0; j < d.length; j++) acc[o + j] += d[j]!;
    });
  }

  /** Mean loss and its gradient at weights `w` (default: the model's). */
  async lossGrad(w?: ArrayLike<number>): Promise<{ loss: number; grad: Float64Array }> {
    const paramFeeds = w ? this.unflatten(w, (p) => p) : {};
    const grad = new Float64Array(this.layout.size);
    let loss = 0;
    for (const bf of this.batchFeeds) {
      const out = await this.gradSession.run({ ...this.fixedFeeds, ...paramFeeds, input: bf.images, labels: bf.labels });
      loss += Number(out.loss!.data[0]);
      this.accumulate(grad, out, gradName);
    }
    const s = 1 / this.data.n;
    for (let i = 0; i < grad.length; i++) grad[i]! *= s;
    return { loss: loss * s, grad };
  }

  /** H·v of the mean loss at the model's weights. */
  async hvp(v: ArrayLike<number>): Promise<Float64Array> {
    if (v.length !== this.layout.size) throw new Error(`hvp: direction has ${v.length} values, the model ${this.layout.size}`);
    this.hvpCalls++;
    if (this.opts.hvp === 'fd') return this.hvpFd(v);
    const dirFeeds = this.unflatten(v, dirName);
    const hv = new Float64Array(this.layout.size);
    for (const bf of this.batchFeeds) {
      const out = await this.hvpSession!.run({ ...this.fixedFeeds, ...dirFeeds, input: bf.images, labels: bf.labels });
      this.accumulate(hv, out, hvName);
    }
    const s = 1 / this.data.n;
    for (let i = 0; i < hv.length; i++) hv[i]! *= s;
    return hv;
  }

  /** The finite-difference step r for direction v (see the header). */
  fdStep(v: ArrayLike<number>): number {
    const vn = norm2(v);
    return vn === 0 ? 0 : ((this.opts.fdRel ?? FD_REL_DEFAULT) * Math.max(this.wNorm, 1)) / vn;
  }

  private async hvpFd(v: ArrayLike<number>): Promise<Float64Array> {
    const r = this.fdStep(v);
    if (r === 0) return new Float64Array(this.layout.size);
    const wp = new Float64Array(this.layout.size), wm = new Float64Array(this.layout.size);
    for (let i = 0; i < wp.length; i++) {
      wp[i] = this.w[i]! + r * v[i]!;
      wm[i] = this.w[i]! - r * v[i]!;
    }
    const gp = (await this.lossGrad(wp)).grad;
    const gm = (await this.lossGrad(wm)).grad;
    for (let i = 0; i < gp.length; i++) gp[i] = (gp[i]! - gm[i]!) / (2 * r);
    return gp;
  }

  async release(): Promise<void> {
    await this.gradSession.release();
    await this.hvpSession?.release();
  }
}

// ---------- estimators ----------

export interface PowerIterationResult {
  lambda_max: number;
  /** Rayleigh quotient after each iteration. */
  lambda_history: number[];
  iters_run: number;
  /** The final (unit) eigenvector estimate. */
  vector: Float64Array;
}

/**
 * Power iteration on H: v ← H v / ‖H v‖ from a seeded Gaussian start, λ = <v, H v> (v unit).
 * Stops after `iters` products, or earlier when |Δλ| ≤ tol·|λ| (tol 0: never early).
 */
export async function powerIteration(hvp: (v: Float64Array) => Promise<Float64Array>, size: number, o: { iters: number; seed: number; tol?: number }): Promise<PowerIterationResult> {
  if (!Number.isInteger(o.iters) || o.iters < 1) throw new UserError(`--iters must be a positive integer, got ${o.iters}`);
  const rng = new Rng(o.seed);
  let v: Float64Array = new Float64Array(size);
  for (let i = 0; i < size; i++) v[i] = rng.normal();
  scaleInPlace(v, 1 / norm2(v));
  const history: number[] = [];
  let lambda = 0;
  for (let t = 0; t < o.iters; t++) {
    const hv = await hvp(v);
    lambda = dot(v, hv);
    history.push(lambda);
    const n = norm2(hv);
    if (n === 0 || !Number.isFinite(n)) break;
    v = Float64Array.from(hv, (x) => x / n);
    const prev = history[history.length - 2];
    if (o.tol && prev !== undefined && Math.abs(lambda - prev) <= o.tol * Math.abs(lambda)) break;
  }
  return { lambda_max: lambda, lambda_history: history, iters_run: history.length, vector: v };
}

export interface HutchinsonResult {
  trace: number;
  /** Standard error of the mean over samples (sample std / sqrt(samples)); null for one sample. */
  trace_stderr: number | null;
  estimates: number[];
}

/** Hutchinson: tr(H) ≈ mean over `samples` Rademacher vectors z of zᵀ H z. */
export async function hutchinsonTrace(hvp: (v: Float64Array) => Promise<Float64Array>, size: number, o: { samples: number; seed: number }): Promise<HutchinsonResult> {
  if (!Number.isInteger(o.samples) || o.samples < 1) throw new UserError(`--samples must be a positive integer, got ${o.samples}`);
  const rng = new Rng(o.seed);
  const estimates: number[] = [];
  for (let s = 0; s < o.samples; s++) {
    const z = new Float64Array(size);
    for (let i = 0; i < size; i++) z[i] = rng.next() < 0.5 ? -1 : 1;
    estimates.push(dot(z, await hvp(z)));
  }
  const mean = estimates.reduce((a, c) => a + c, 0) / estimates.length;
  const variance = estimates.length > 1 ? estimates.reduce((a, c) => a + (c - mean) ** 2, 0) / (estimates.length - 1) : NaN;
  return { trace: mean, trace_stderr: estimates.length > 1 ? Math.sqrt(variance / estimates.length) : null, estimates };
}

function scaleInPlace(v: Float64Array, s: number): Float64Array {
  for (let i = 0; i < v.length; i++) v[i]! *= s;
  return v;
}

// ---------- the whole measurement ----------

export interface SharpnessOptions extends HessianOptions {
  iters: number;
  samples: number;
  seed: number;
  tol?: number;
}

export interface SharpnessResult {
  lambda_max: number;
  lambda_history: number[];
  iters: number;
  iters_run: number;
  trace: number;
  trace_stderr: number | null;
  samples: number;
  loss: number;
  grad_norm: number;
  weight_norm: number;
  num_params: number;
  n: number;
  hvp: HvpMode;
  fd_rel: number | null;
  hvp_calls: number;
  seed: number;
  seconds: number;
}

/**
 * λ_max and tr(H) of the mean CE over `data` (BN in eval mode) w.r.t. all parameters. The power
 * iteration start uses `seed`, the Rademacher vectors a stream derived from it.
 */
export async function measureSharpness(makeModel: () => BuiltModel, state: Map<string, Tensor>, data: FixedSubset, o: SharpnessOptions, progress?: (done: number, total: number) => void): Promise<SharpnessResult> {
  const t0 = Date.now();
  const oracle = await HessianOracle.create(makeModel, state, data, o);
  try {
    const total = o.iters + o.samples;
    let done = 0;
    const hvp = async (v: Float64Array) => {
      const r = await oracle.hvp(v);
      progress?.(++done, total);
      return r;
    };
    const { loss, grad } = await oracle.lossGrad();
    const power = await powerIteration(hvp, oracle.layout.size, { iters: o.iters, seed: o.seed, tol: o.tol });
    const hutch = await hutchinsonTrace(hvp, oracle.layout.size, { samples: o.samples, seed: (o.seed ^ 0x5bd1e995) >>> 0 });
    return {
      lambda_max: power.lambda_max, lambda_history: power.lambda_history, iters: o.iters, iters_run: power.iters_run,
      trace: hutch.trace, trace_stderr: hutch.trace_stderr, samples: o.samples,
      loss, grad_norm: norm2(grad), weight_norm: oracle.weightNorm, num_params: oracle.layout.size, n: data.n,
      hvp: o.hvp, fd_rel: o.hvp === 'fd' ? (o.fdRel ?? FD_REL_DEFAULT) : null, hvp_calls: oracle.hvpCalls, seed: o.seed,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await oracle.release();
  }
}
