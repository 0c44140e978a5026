// A thin typed layer over Graph.addNode: one method per common op, constants, and opset-aware reductions.
// Models, losses, optimizers and VJP rules all emit nodes through it.

import { Graph, type AttrInput, type NodeMeta } from './graph.js';
import { makeTensor, ONNX_DTYPE_CODE, type DType, type Tensor } from './tensor.js';

export class Builder {
  private constCache = new Map<string, string>();

  constructor(readonly graph: Graph) {}

  /** Emit one node with a single output. */
  op(op: string, inputs: string[], attrs: Record<string, AttrInput | undefined> = {}, meta?: NodeMeta): string {
    return this.graph.addNode(op, inputs, attrs, { meta })[0]!;
  }

  /** Emit one node with `n` outputs. */
  opN(op: string, inputs: string[], n: number, attrs: Record<string, AttrInput | undefined> = {}): string[] {
    return this.graph.addNode(op, inputs, attrs, { outputs: n });
  }

  shape(name: string) { return this.graph.shape(name); }
  dtype(name: string): DType { return this.graph.type(name).dtype; }
  rank(name: string): number { return this.graph.shape(name).length; }

  /** A Constant node (cached per value), so that initializers stay reserved for real parameters. */
  constant(t: Tensor): string {
    const key = t.data.length <= 16 ? `${t.dtype}|${t.dims}|${Array.from(t.data as ArrayLike<number | bigint>).join(',')}` : undefined;
    const hit = key && this.constCache.get(key);
    if (hit && this.graph.types.has(hit)) return hit;
    const out = this.graph.addNode('Constant', [], { value: t }, { outputs: [this.graph.fresh('const')] })[0]!;
    if (key) this.constCache.set(key, out);
    return out;
  }
  scalar(v: number, dtype: DType = 'float32'): string { return this.constant(makeTensor(dtype, [], [v])); }
  /** A scalar of the same float dtype as `like` (float32 or float64 graphs). */
  scalarLike(v: number, like: string): string { return this.scalar(v, this.dtype(like)); }
  ints(values: number[]): string { return this.constant(makeTensor('int64', [values.length], values)); }

  add(a: string, b: string) { return this.op('Add', [a, b]); }
  sub(a: string, b: string) { return this.op('Sub', [a, b]); }
  mul(a: string, b: string) { return this.op('Mul', [a, b]); }
  div(a: string, b: string) { return this.op('Div', [a, b]); }
  neg(a: string) { return this.op('Neg', [a]); }
  exp(a: string) { return this.op('Exp', [a]); }
  log(a: string) { return this.op('Log', [a]); }
  sqrt(a: string) { return this.op('Sqrt', [a]); }
  abs(a: string) { return this.op('Abs', [a]); }
  sigmoid(a: string) { return this.op('Sigmoid', [a]); }
  tanh(a: string) { return this.op('Tanh', [a]); }
  relu(a: string) { return this.op('Relu', [a]); }
  sign(a: string) { return this.op('Sign', [a]); }
  identity(a: string, meta?: NodeMeta) { return this.op('Identity', [a], {}, meta); }
  where(c: string, a: string, b: string) { return this.op('Where', [c, a, b]); }
  matmul(a: string, b: string) { return this.op('MatMul', [a, b]); }
  cast(a: string, to: DType) { return this.dtype(a) === to ? a : this.op('Cast', [a], { to: ONNX_DTYPE_CODE[to] }); }
  greater(a: string, b: string) { return this.op('Greater', [a, b]); }
  less(a: string, b: string) { return this.op('Less', [a, b]); }
  equal(a: string, b: string) { return this.op('Equal', [a, b]); }
  /** a * s for a JS number s, in a's dtype. */
  scale(a: string, s: number) { return s === 1 ? a : this.mul(a, this.scalarLike(s, a)); }
  /** Sum of several values (one Sum node; a single value passes through). */
  sum(values: string[]) { return values.length === 1 ? values[0]! : this.op('Sum', values); }

  transpose(a: string, perm: number[]) { return this.op('Transpose', [a], { perm }); }
  reshape(a: string, shape: number[]) { return this.op('Reshape', [a, this.ints(shape)]); }
  flatten(a: string, axis = 1) { return this.op('Flatten', [a], { axis }); }
  // Squeeze/Unsqueeze took axes as an attribute before opset 13 (imported older models keep their opset).
  unsqueeze(a: string, axes: number[]) { return this.graph.opset >= 13 ? this.op('Unsqueeze', [a, this.ints(axes)]) : this.op('Unsqueeze', [a], { axes }); }
  squeeze(a: string, axes: number[]) { return this.graph.opset >= 13 ? this.op('Squeeze', [a, this.ints(axes)]) : this.op('Squeeze', [a], { axes }); }
  concat(values: string[], axis: number) { return values.length === 1 ? values[0]! : this.op('Concat', values, { axis }); }
  shapeOf(a: string) { return this.op('Shape', [a]); }
  slice(a: string, starts: number[], ends: number[], axes: number[], steps?: number[]) {
    const inputs = [a, this.ints(starts), this.ints(ends), this.ints(axes)];
    if (steps) inputs.push(this.ints(steps));
    return this.op('Slice', inputs);
  }
  /** zeros with the (run-time) shape and dtype of `like`. */
  zerosLike(like: string) {
    return this.op('ConstantOfShape', [this.shapeOf(like)], { value: makeTensor(this.dtype(like), [1], [0]) });
  }

  /** Reductions: axes go in an attribute or an input depending on op and opset (ReduceSum moved at 13, the rest at 18). */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceMin' | 'ReduceSumSquare' | 'ReduceL2', a: string, axes: number[], keepdims = true): string {
    const axesAsInput = op === 'ReduceSum' ? this.graph.opset >= 13 : this.graph.opset >= 18;
    if (axesAsInput) return this.op(op, [a, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
    return this.op(op, [a], { axes, keepdims: keepdims ? 1 : 0 });
  }
  reduceSum(a: string, axes: number[], keepdims = true) { return this.reduce('ReduceSum', a, axes, keepdims); }
  reduceMean(a: string, axes: number[], keepdims = true) { return this.reduce('ReduceMean', a, axes, keepdims); }
  /** Sum of every element, as a scalar. */
  sumAll(a: string) { return this.reduceSum(a, this.shape(a).map((_, i) => i), false); }
  meanAll(a: string) { return this.reduceMean(a, this.shape(a).map((_, i) => i), false); }
}

export function newGraph(name = 'advrun', opset = 17): { graph: Graph; b: Builder } {
  const graph = new Graph(name, opset);
  return { graph, b: new Builder(graph) };
}
