// Graph rewriting by copying: the ONNX importer's canonicalisation and the CPU NCHWc lowering
// (runtime/nchwc.ts) are both a copy of a graph with some nodes replaced.

import { Builder } from './builder.js';
import { Graph, type Node } from './graph.js';

/**
 * Copy `src` into a new graph node by node. `rewrite` may emit replacement nodes for a node and
 * return the values standing for its outputs (or undefined to copy the node unchanged). Copied nodes
 * have their shapes inferred again, unless `keepTypes` (the rewrite replaces nodes by equivalents, so
 * the source's types, including any a shape rule could not re-derive, stay valid).
 */
export function rebuildGraph(src: Graph, rewrite?: (node: Node, g: Graph, b: Builder, map: (n: string) => string) => string[] | undefined, opts: { keepTypes?: boolean } = {}): Graph {
  const g = new Graph(src.name, src.opset);
  // Nodes that `rewrite` emits get fresh names; they must not take the name of a source value that
  // is copied in after them (e.g. the importer's folded Reshape target "const").
  g.reserve(src.valueNames());
  const b = new Builder(g);
  const alias = new Map<string, string>();
  const map = (n: string) => (n === '' ? '' : alias.get(n) ?? n);
  for (const i of src.inputs) g.addInput(i, src.type(i).dtype, src.shape(i));
  for (const [n, t] of src.initializers) if (!src.inputs.includes(n)) g.addInitializer(n, t);
  for (const node of src.nodes) {
    const replaced = rewrite?.(node, g, b, map);
    if (replaced) {
      node.outputs.forEach((o, i) => { if (o && replaced[i]) alias.set(o, replaced[i]!); });
      continue;
    }
    // The new graph numbers its own nodes from 0: keep copied builder-style names ("Constant_0") apart.
    const name = /^[A-Za-z]+_\d+$/.test(node.name) ? `base/${node.name}` : node.name;
    const copy = { ...node, name, inputs: node.inputs.map(map), outputs: [...node.outputs], attrs: { ...node.attrs }, meta: node.meta ? { ...node.meta } : undefined };
    g.insertNode(copy, opts.keepTypes ? node.outputs.map((o) => (o ? src.type(o) : { dtype: 'float32', shape: null })) : undefined);
  }
  g.outputs = src.outputs.map(map);
  return g;
}
