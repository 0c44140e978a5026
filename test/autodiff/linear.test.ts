import { describe, expect, test } from 'vitest';
import { addGradients } from '../../src/autodiff/grad.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph } from '../../src/ir/graph.js';
import { gradcheck } from '../helpers/gradcheck.js';

describe('Gemm VJP', () => {
  const M = 3, K = 4, N = 5;
  for (const transA of [0, 1]) {
    for (const transB of [0, 1]) {
      test(`transA=${transA} transB=${transB}, alpha 1.5, beta 0.5, C [M, N]`, async () => {
        await gradcheck({
          inputs: [
            { name: 'a', shape: transA ? [K, M] : [M, K] },
            { name: 'b', shape: transB ? [N, K] : [K, N] },
            { name: 'c', shape: [M, N] },
          ],
          build: (b, [x, y, c]) => b.op('Gemm', [x!, y!, c!], { transA, transB, alpha: 1.5, beta: 0.5 }),
        });
      });
    }
  }
  const cShapes: number[][] = [[N], [1, N], [M, 1], [1], []];
  for (const cs of cShapes) {
    test(`C broadcast from [${cs}] (beta -2, transB=1)`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: [M, K] }, { name: 'b', shape: [N, K] }, { name: 'c', shape: cs }],
        build: (b, [x, y, c]) => b.op('Gemm', [x!, y!, c!], { transB: 1, beta: -2 }),
      });
    });
  }
  test('without C, defaults alpha = beta = 1', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [M, K] }, { name: 'b', shape: [K, N] }],
      build: (b, [x, y]) => b.op('Gemm', [x!, y!]),
    });
  });
  test('only the weight needs a gradient (a linear layer whose input is data)', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [M, K], wrt: false }, { name: 'b', shape: [N, K] }, { name: 'c', shape: [N] }],
      build: (b, [x, y, c]) => b.op('Gemm', [x!, y!, c!], { transB: 1, alpha: 0.5 }),
    });
  });
});

describe('MatMul VJP', () => {
  const cases: [number[], number[]][] = [
    [[3, 4], [4, 5]],
    [[4], [4]],
    [[4], [4, 5]],
    [[3, 4], [4]],
    [[2, 3, 4], [4, 5]],
    [[2, 3, 4], [4]],
    [[4], [2, 4, 5]],
    [[3, 4], [2, 4, 5]],
    [[2, 3, 4], [2, 4, 5]],
    [[2, 1, 3, 4], [3, 4, 2]],
    [[1, 3, 4], [2, 4, 5]],
    [[2, 2, 3, 4], [4, 5]],
  ];
  for (const [sa, sb] of cases) {
    test(`[${sa}] @ [${sb}]`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: sa }, { name: 'b', shape: sb }],
        build: (b, [x, y]) => b.matmul(x!, y!),
      });
    });
  }
  test('symbolic batch dim on A with a 2-D weight', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [3, 2, 4], graphShape: ['N', 2, 4] }, { name: 'b', shape: [4, 5] }],
      build: (b, [x, y]) => b.matmul(x!, y!),
    });
  });
  test('a shared 2-D weight under a batched input is one MatMul over folded rows, not a batch then a sum', () => {
    const g = new Graph('mm');
    const b = new Builder(g);
    const x = g.addInput('x', 'float32', ['N', 7, 4]);
    const w = g.addInput('w', 'float32', [4, 5]);
    const y = b.matmul(x, w);
    const n = g.nodes.length;
    const grads = addGradients(g, b.sumAll(y), ['w']);
    expect(g.shape(grads.w!)).toEqual([4, 5]);
    const backward = g.nodes.slice(n);
    expect(backward.filter((nd) => nd.op === 'ReduceSum' && nd.inputs[0] !== y)).toHaveLength(0);
  });
});
