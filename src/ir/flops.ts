// Multiply-add work of a graph, for "fraction of the machine's peak" in benchmarks. Only the ops that
// dominate convolutional networks are counted (Conv, ConvTranspose, MatMul, Gemm); one multiply-add is
// 2 FLOPs. Symbolic dimensions (the batch "N") take the value given.

import { attrInt, type Graph, type Node } from './graph.js';
import { numel } from './tensor.js';

function dims(g: Graph, name: string, symbols: Record<string, number>): number[] {
  return g.shape(name).map((d) => (typeof d === 'number' ? d : symbols[d] ?? NaN));
}

const FLOPS: Record<string, (g: Graph, n: Node, s: Record<string, number>) => number> = {
  // Each output element of a Conv takes (Cin/group)·kh·kw multiply-adds.
  Conv: (g, n, s) => 2 * numel(dims(g, n.outputs[0]!, s)) * numel(dims(g, n.inputs[1]!, s).slice(1)),
  // ConvTranspose is the adjoint: each input element scatters (Cout/group)·kh·kw multiply-adds.
  ConvTranspose: (g, n, s) => 2 * numel(dims(g, n.inputs[0]!, s)) * numel(dims(g, n.inputs[1]!, s).slice(1)),
  MatMul: (g, n, s) => 2 * numel(dims(g, n.outputs[0]!, s)) * dims(g, n.inputs[0]!, s).at(-1)!,
  Gemm: (g, n, s) => {
    const a = dims(g, n.inputs[0]!, s);
    return 2 * numel(dims(g, n.outputs[0]!, s)) * (attrInt(n, 'transA', 0) ? a[0]! : a[1]!);
  },
};

/** FLOPs of one run of `g` with the symbolic dimensions set (e.g. { N: 128 }). */
export function graphFlops(g: Graph, symbols: Record<string, number>): number {
  let total = 0;
  for (const n of g.nodes) total += FLOPS[n.op]?.(g, n, symbols) ?? 0;
  return total;
}
