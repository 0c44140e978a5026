// Value names in graphs copied node by node: Graph.fresh() must not hand out a name that a value
// copied in later already has. The ONNX importer folds Reshape targets to Constant nodes named
// "const"; the train-mode rebuild (rebuildGraph) used to emit its own "const" for a BatchNormalization
// ahead of that node, giving two values "const" that ONNX Runtime rejected ("Shape of initializer
// const does not match").

import { describe, expect, test } from 'vitest';
import { newGraph } from '../../src/ir/builder.js';
import { Graph, GraphError } from '../../src/ir/graph.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { rebuildGraph } from '../../src/ir/rebuild.js';
import { graphToModelProto } from '../../src/onnx/io.js';
import { CompiledGraph, toOrt } from '../../src/runtime/session.js';

function definedTwice(g: Graph): string[] {
  const seen = new Set<string>([...g.inputs, ...g.initializers.keys()]);
  const dups: string[] = [];
  for (const n of g.nodes) for (const o of n.outputs) {
    if (!o) continue;
    if (seen.has(o)) dups.push(o);
    seen.add(o);
  }
  return dups;
}

/** x [N, 2] -> Relu -> Reshape(x, const [-1, 2]) -> logits, with the Constant "const" after the Relu. */
function sourceGraph(): Graph {
  const { graph, b } = newGraph('src');
  graph.addInput('x', 'float32', ['N', 2]);
  const r = b.relu('x');
  const target = b.ints([-1, 2]);
  expect(target).toBe('const');
  graph.addNode('Reshape', [r, target], {}, { outputs: ['logits'] });
  graph.markOutput('logits');
  return graph;
}

describe('value names of rebuilt graphs', () => {
  test('fresh() skips reserved names; clone keeps reservations and counters', () => {
    const g = new Graph();
    g.reserve(['const', 'const_1']);
    expect(g.fresh('const')).toBe('const_2');
    const c = g.clone();
    expect(c.fresh('const')).toBe('const_3');
    c.reserve(['relu_0']);
    expect(c.valueNames()).toEqual(new Set(['const', 'const_1', 'const_2', 'const_3', 'relu_0']));
    expect(g.fresh('relu')).toBe('relu');
  });

  test('insertNode refuses a second definition of a value instead of overwriting it', () => {
    const { graph, b } = newGraph();
    const c = b.scalar(1);
    expect(() => graph.insertNode({ name: 'again', op: 'Constant', domain: '', inputs: [], outputs: [c], attrs: { value: { type: 'tensor', value: makeTensor('float32', [2], [1, 2]) } } }))
      .toThrow(GraphError);
    expect(() => graph.insertNode({ name: 'again', op: 'Constant', domain: '', inputs: [], outputs: [c], attrs: { value: { type: 'tensor', value: makeTensor('float32', [2], [1, 2]) } } }))
      .toThrow(/output "const" is already defined by Constant node/);
  });

  test('a rewrite emitting constants before a copied Constant "const" does not take its name', async () => {
    const src = sourceGraph();
    const g = rebuildGraph(src, (node, _g, b, map) => (node.op === 'Relu' ? [b.mul(map(node.inputs[0]!), b.scalar(2))] : undefined));
    expect(definedTwice(g)).toEqual([]);
    const scale = g.nodes.find((n) => n.op === 'Mul')!.inputs[1]!;
    expect(scale).not.toBe('const');
    expect(g.shape('logits')).toEqual(['N', 2]);
    // ONNX Runtime accepts the graph and computes 2x, reshaped by the source's own "const" [-1, 2].
    const s = await CompiledGraph.create(graphToModelProto(g));
    const out = await s.run({ x: toOrt(makeTensor('float32', [2, 2], [1, -2, 3, 4])) });
    expect(Array.from(out.logits!.data as Float32Array)).toEqual([2, -4, 6, 8]);
    expect(toNumbers(g.constantValue('const')!)).toEqual([-1, 2]);
  });
});
