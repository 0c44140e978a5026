// Numerical gradient checking: the analytic gradient from autodiff (run in ONNX Runtime) against
// central finite differences of the same forward graph (also run in ONNX Runtime).
//
// The scalar checked is loss = sum(y * r) for a fixed random r, so every output element matters.
// float64 is used when ONNX Runtime's CPU provider has float64 kernels for every op in the graph
// (tight tolerances); otherwise float32 with a larger step and looser tolerances.

import { expect } from 'vitest';
import { addGradients, type GradOptions } from '../../src/autodiff/grad.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph } from '../../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';

export interface GradInput {
  name: string;
  shape: number[];
  /** Explicit values, or a generator: 'normal' (default), 'positive' (0.5..2), 'unit' (uniform -1..1), 'awayFromZero'. */
  init?: number[] | 'normal' | 'positive' | 'unit' | 'awayFromZero';
  /** Differentiate with respect to this input (default true). */
  wrt?: boolean;
  /** Integer inputs (labels, indices) are passed as int64 and never differentiated. */
  int64?: boolean;
  /** Shape declared in the graph when it differs from `shape`: symbolic dims (e.g. 'N') exercise run-time shape paths. */
  graphShape?: (number | string)[];
}

export interface GradCheckOptions {
  inputs: GradInput[];
  /** Build the op(s) under test; returns the output value(s) to check. */
  build: (b: Builder, inputs: string[]) => string | string[];
  seed?: number;
  dtype?: 'float32' | 'float64' | 'auto';
  gradOptions?: GradOptions;
  /** Max elements per input checked one by one; larger inputs also get random directional checks. */
  maxElements?: number;
  rtol?: number;
  atol?: number;
  opset?: number;
}

export interface GradCheckReport {
  dtype: 'float32' | 'float64';
  checked: number;
  maxAbsErr: number;
}

function initValues(inp: GradInput, rng: Rng): number[] {
  const n = numel(inp.shape);
  if (Array.isArray(inp.init)) return inp.init;
  const gen = inp.init ?? 'normal';
  return Array.from({ length: n }, () => {
    switch (gen) {
      case 'positive': return rng.uniform(0.5, 2);
      case 'unit': return rng.uniform(-1, 1);
      case 'awayFromZero': { const v = rng.uniform(0.2, 1.5); return rng.next() < 0.5 ? -v : v; }
      default: return rng.normal();
    }
  });
}

function buildGraphs(opts: GradCheckOptions, dtype: 'float32' | 'float64', rng: Rng) {
  const g = new Graph('gradcheck', opts.opset ?? 17);
  const b = new Builder(g);
  const names = opts.inputs.map((i) => g.addInput(i.name, i.int64 ? 'int64' : dtype, i.graphShape ?? i.shape));
  const built = opts.build(b, names);
  const outs = Array.isArray(built) ? built : [built];
  // loss = sum_k sum(y_k * r_k)
  const terms = outs.map((y) => {
    const shape = g.shape(y).map((d) => (typeof d === 'number' ? d : 1));
    const r = makeTensor(dtype, shape, Array.from({ length: numel(shape) }, () => rng.uniform(-1, 1)));
    return b.sumAll(b.mul(y, b.constant(r)));
  });
  const loss = terms.length === 1 ? terms[0]! : b.sum(terms);
  const forward = g.clone();
  forward.outputs = [loss];
  forward.prune();
  const wrt = opts.inputs.filter((i) => !i.int64 && i.wrt !== false).map((i) => i.name);
  const grads = addGradients(g, loss, wrt, opts.gradOptions);
  g.outputs = [loss];
  for (const w of wrt) g.markOutput(grads[w]!);
  return { forward, backward: g, loss, grads, wrt };
}

async function compileBoth(opts: GradCheckOptions, dtype: 'float32' | 'float64', rng: Rng) {
  const built = buildGraphs(opts, dtype, rng);
  const fwd = await CompiledGraph.create(built.forward);
  const bwd = await CompiledGraph.create(built.backward);
  return { ...built, fwd, bwd };
}

export async function gradcheck(opts: GradCheckOptions): Promise<GradCheckReport> {
  const seed = opts.seed ?? 1234;
  let dtype: 'float32' | 'float64' = opts.dtype === 'float32' ? 'float32' : 'float64';
  let compiled: Awaited<ReturnType<typeof compileBoth>>;
  try {
    compiled = await compileBoth(opts, dtype, new Rng(seed));
  } catch (e) {
    const msg = (e as Error).message;
    if (opts.dtype === 'float64' || dtype === 'float32' || !/Could not find an implementation|is invalid|Type Error/.test(msg)) throw e;
    dtype = 'float32';
    compiled = await compileBoth(opts, dtype, new Rng(seed));
  }
  const { fwd, bwd, loss, grads, wrt } = compiled;
  const rng = new Rng(seed + 1);
  const values: Record<string, Tensor> = {};
  for (const inp of opts.inputs) values[inp.name] = makeTensor(inp.int64 ? 'int64' : dtype, inp.shape, initValues(inp, rng));

  const analytic = await bwd.runTensors(values);
  const h = dtype === 'float64' ? 1e-6 : 1e-2;
  const rtol = opts.rtol ?? (dtype === 'float64' ? 1e-5 : 2e-2);
  const atol = opts.atol ?? (dtype === 'float64' ? 1e-7 : 2e-3);
  const f = async (vals: Record<string, Tensor>) => Number((await fwd.runTensors(vals))[loss]!.data[0]);

  let checked = 0, maxAbsErr = 0;
  const failures: string[] = [];
  const compare = (what: string, a: number, n: number) => {
    checked++;
    const err = Math.abs(a - n);
    maxAbsErr = Math.max(maxAbsErr, err);
    if (!(err <= atol + rtol * Math.max(Math.abs(a), Math.abs(n)))) failures.push(`${what}: analytic ${a.toPrecision(7)} vs numeric ${n.toPrecision(7)}`);
  };

  for (const w of wrt) {
    const x = values[w]!;
    const gA = analytic[grads[w]!]!;
    expect(gA.dims, `gradient shape of ${w}`).toEqual(x.dims);
    const n = x.data.length;
    const maxEl = opts.maxElements ?? 48;
    const idx = n <= maxEl ? [...Array(n).keys()] : Array.from({ length: maxEl }, () => rng.int(n));
    for (const i of idx) {
      const data = x.data as Float64Array;
      const orig = data[i]!;
      data[i] = orig + h; const fp = await f(values);
      data[i] = orig - h; const fm = await f(values);
      data[i] = orig;
      compare(`d/d ${w}[${i}]`, Number(gA.data[i]), (fp - fm) / (2 * h));
    }
    // A random direction exercises every element at once.
    const dir = Array.from({ length: n }, () => rng.uniform(-1, 1));
    const base = Float64Array.from(x.data as Float64Array);
    const shifted = (s: number) => { const d = x.data as Float64Array; for (let i = 0; i < n; i++) d[i] = base[i]! + s * dir[i]!; };
    shifted(h); const fp = await f(values);
    shifted(-h); const fm = await f(values);
    shifted(0);
    let dot = 0;
    for (let i = 0; i < n; i++) dot += Number(gA.data[i]) * dir[i]!;
    compare(`directional d/d ${w}`, dot, (fp - fm) / (2 * h));
  }
  await fwd.release();
  await bwd.release();
  expect(failures, `gradient check (${dtype}) failed:\n${failures.slice(0, 10).join('\n')}`).toEqual([]);
  return { dtype, checked, maxAbsErr };
}

export interface GradientAtOptions {
  inputs: GradInput[];
  /** Build the op(s) under test; returns the one output whose vector-Jacobian product is taken. */
  build: (b: Builder, inputs: string[]) => string;
  /** Cotangent of the output, row-major (default: ones). */
  cotangent?: number[];
  dtype?: 'float32' | 'float64';
  gradOptions?: GradOptions;
  opset?: number;
  seed?: number;
}

/**
 * The analytic gradient alone, at given input values: for tests that compare against values
 * computed by hand (conventions at kinks and ties, custom backward rules) rather than numerically.
 */
export async function gradientAt(opts: GradientAtOptions): Promise<{ output: number[]; grads: Record<string, number[]> }> {
  const dtype = opts.dtype ?? 'float64';
  const g = new Graph('gradientAt', opts.opset ?? 17);
  const b = new Builder(g);
  const names = opts.inputs.map((i) => g.addInput(i.name, i.int64 ? 'int64' : dtype, i.graphShape ?? i.shape));
  const y = opts.build(b, names);
  const shape = g.shape(y).map((d) => (typeof d === 'number' ? d : 1));
  const cot = opts.cotangent ?? new Array<number>(numel(shape)).fill(1);
  const loss = b.sumAll(b.mul(y, b.constant(makeTensor(dtype, shape, cot))));
  const wrt = opts.inputs.filter((i) => !i.int64 && i.wrt !== false).map((i) => i.name);
  const grads = addGradients(g, loss, wrt, opts.gradOptions);
  g.outputs = [y];
  for (const w of wrt) g.markOutput(grads[w]!);
  const compiled = await CompiledGraph.create(g);
  const rng = new Rng(opts.seed ?? 1234);
  const values: Record<string, Tensor> = {};
  for (const inp of opts.inputs) values[inp.name] = makeTensor(inp.int64 ? 'int64' : dtype, inp.shape, initValues(inp, rng));
  const out = await compiled.runTensors(values);
  await compiled.release();
  const nums = (t: Tensor) => Array.from(t.data as ArrayLike<number>, Number);
  return { output: nums(out[y]!), grads: Object.fromEntries(wrt.map((w) => [w, nums(out[grads[w]!]!)])) };
}
