// VJP rules for reductions. The cotangent is re-expanded to the input's shape.

import type { Builder } from '../../ir/builder.js';
import { attrInt, type Node } from '../../ir/graph.js';
import { toNumbers } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';

/** The reduced axes of a Reduce* node, normalised to non-negative (attribute or constant input). */
export function reducedAxes(b: Builder, node: Node): number[] {
  const rank = b.rank(node.inputs[0]!);
  const fromAttr = node.attrs.axes?.value as number[] | undefined;
  const c = node.inputs[1] ? b.graph.constantValue(node.inputs[1]) : undefined;
  if (node.inputs[1] && !c) throw new Error('axes must be a constant to differentiate');
  const axes = fromAttr ?? (c ? toNumbers(c) : []);
  if (axes.length === 0) return attrInt(node, 'noop_with_empty_axes', 0) ? [] : [...Array(rank).keys()];
  return axes.map((a) => (a < 0 ? a + rank : a));
}

/** Cotangent of a reduction, broadcast back over the input: unsqueeze dropped axes, then Expand. */
export function expandToInput(b: Builder, node: Node, gy: string): string {
  const axes = reducedAxes(b, node);
  const keep = attrInt(node, 'keepdims', 1) === 1;
  const g = keep || axes.length === 0 ? gy : b.unsqueeze(gy, axes);
  return b.op('Expand', [g, b.shapeOf(node.inputs[0]!)]);
}

registerVjp('ReduceSum', ({ b, node, gradOutputs: [gy] }) => [expandToInput(b, node, gy!)]);

/** The node's output re-shaped to broadcast against its input (keepdims form). */
function keptDims(b: Builder, node: Node, y: string): string {
  const axes = reducedAxes(b, node);
  return attrInt(node, 'keepdims', 1) === 1 || axes.length === 0 ? y : b.unsqueeze(y, axes);
}

/** Number of input elements reduced into each output element (a constant when the reduced axes are static). */
function reducedCount(b: Builder, node: Node): string {
  const x = node.inputs[0]!, xs = b.shape(x);
  const dims = reducedAxes(b, node).map((a) => xs[a]!);
  if (dims.every((d) => typeof d === 'number')) return b.scalarLike(dims.reduce<number>((p, d) => p * (d as number), 1), x);
  const size = (v: string) => b.cast(b.op('Size', [v]), b.dtype(x));
  return b.div(size(x), size(node.outputs[0]!));
}

registerVjp('ReduceMean', ({ b, node, gradOutputs: [gy] }) => [b.div(expandToInput(b, node, gy!), reducedCount(b, node))]);

// Max/Min send the cotangent to the elements equal to the result. Ties share it evenly, like
// torch.amax/amin: this is also what central differences measure for a two-way tie, and it keeps
// the total cotangent of each output element unchanged.
function extremumVjp(op: 'ReduceMax' | 'ReduceMin') {
  registerVjp(op, ({ b, node, gradOutputs: [gy] }) => {
    const x = node.inputs[0]!, axes = reducedAxes(b, node);
    if (axes.length === 0) return [gy];
    const hits = b.cast(b.equal(x, keptDims(b, node, node.outputs[0]!)), b.dtype(x));
    const share = b.div(keptDims(b, node, gy!), b.reduceSum(hits, axes, true));
    return [b.mul(hits, share)];
  });
}
extremumVjp('ReduceMax');
extremumVjp('ReduceMin');

// d sum(x^2) = 2 x
registerVjp('ReduceSumSquare', ({ b, node, gradOutputs: [gy] }) => [b.mul(b.scale(node.inputs[0]!, 2), expandToInput(b, node, gy!))]);

// d ||x|| = x / ||x||. A zero norm gives a zero cotangent instead of NaN (PyTorch's choice too):
// dividing by 1 there is enough, since that slice of x is all zeros.
registerVjp('ReduceL2', ({ b, node, gradOutputs: [gy] }) => {
  const x = node.inputs[0]!, y = keptDims(b, node, node.outputs[0]!);
  const safeNorm = b.where(b.equal(y, b.scalarLike(0, x)), b.scalarLike(1, x), y);
  return [b.mul(x, b.div(keptDims(b, node, gy!), safeNorm))];
});

// d logsumexp(x) = softmax(x) = exp(x - y), which is stable because y >= max(x).
registerVjp('ReduceLogSumExp', ({ b, node, gradOutputs: [gy] }) => {
  const x = node.inputs[0]!;
  return [b.mul(b.exp(b.sub(x, keptDims(b, node, node.outputs[0]!))), keptDims(b, node, gy!))];
});
