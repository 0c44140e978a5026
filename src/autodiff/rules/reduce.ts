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
