// FLOP counts behind `advrun bench`'s fraction of peak: 2 FLOPs per multiply-add of Conv, ConvTranspose,
// MatMul and Gemm, with the batch taken from the symbolic dimension.
import { describe, expect, test } from 'vitest';
import { newGraph } from '../../src/ir/builder.js';
import { graphFlops } from '../../src/ir/flops.js';
import '../../src/ir/shapes/index.js';
import { buildModel } from '../../src/models/index.js';

describe('graphFlops', () => {
  test('Conv (strided, grouped), ConvTranspose, MatMul and Gemm, per batch size', () => {
    const { graph: g, b } = newGraph('flops');
    const x = g.addInput('x', 'float32', ['N', 4, 8, 8]);
    const w = g.addInput('w', 'float32', [6, 2, 3, 3]);
    const y = b.op('Conv', [x, w], { strides: [2, 2], pads: [1, 1, 1, 1], group: 2 }); // [N, 6, 4, 4]
    const wt = g.addInput('wt', 'float32', [6, 3, 2, 2]);
    const t = b.op('ConvTranspose', [y, wt], { strides: [2, 2] });                       // [N, 3, 8, 8]
    const f = b.flatten(t);                                                             // [N, 192]
    const m = b.matmul(f, g.addInput('m', 'float32', [192, 10]));                       // [N, 10]
    g.markOutput(b.op('Gemm', [m, g.addInput('gw', 'float32', [5, 10])], { transB: 1 })); // [N, 5]
    const perImage = 2 * (6 * 4 * 4) * (2 * 9) + 2 * (6 * 4 * 4) * (3 * 4) + 2 * 10 * 192 + 2 * 5 * 10;
    expect(graphFlops(g, { N: 1 })).toBe(perImage);
    expect(graphFlops(g, { N: 7 })).toBe(7 * perImage);
  });

  test('a small CNN forward matches its layer-by-layer count', () => {
    const model = buildModel({ arch: 'small-cnn', width: 4, inChannels: 1, imageSize: 28, numClasses: 10, activation: { kind: 'relu' }, mean: [0], std: [1] }, { bnMode: 'eval', seed: 0 });
    const convs = model.graph.nodes.filter((n) => n.op === 'Conv');
    const expected = model.graph.nodes.reduce((acc, n) => {
      if (n.op === 'Conv') return acc + 2 * (model.graph.shape(n.outputs[0]!) as (number | string)[]).slice(1).reduce<number>((a, d) => a * (d as number), 1) * (model.graph.shape(n.inputs[1]!) as number[]).slice(1).reduce((a, d) => a * d, 1);
      if (n.op === 'Gemm' || n.op === 'MatMul') {
        const wShape = model.graph.shape(n.inputs[1]!) as number[];
        return acc + 2 * wShape[0]! * wShape[1]!;
      }
      return acc;
    }, 0);
    expect(convs.length).toBeGreaterThan(0);
    expect(graphFlops(model.graph, { N: 1 })).toBe(expected);
  });
});
