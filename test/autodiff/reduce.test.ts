import { describe, expect, test } from 'vitest';
import type { Builder } from '../../src/ir/builder.js';
import { gradcheck, gradientAt } from '../helpers/gradcheck.js';

type ReduceOp = 'ReduceSum' | 'ReduceMean' | 'ReduceMax' | 'ReduceMin' | 'ReduceSumSquare' | 'ReduceL2' | 'ReduceLogSumExp';

/** Emit a reduction with axes where the opset wants them (ReduceSum: input from 13; the rest: from 18). */
function reduce(b: Builder, op: ReduceOp, x: string, axes: number[] | undefined, keepdims: number): string {
  const asInput = op === 'ReduceSum' ? b.graph.opset >= 13 : b.graph.opset >= 18;
  if (!axes) return b.op(op, [x], { keepdims });
  return asInput ? b.op(op, [x, b.ints(axes)], { keepdims }) : b.op(op, [x], { axes, keepdims });
}

describe('reduction VJP rules', () => {
  const ops: ReduceOp[] = ['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp'];
  const axesCases: (number[] | undefined)[] = [[1], [0, -1], undefined];
  for (const op of ops) {
    for (const opset of [17, 18]) {
      test(`${op} over [1], [0,-1] and all axes, keepdims 0 and 1 (opset ${opset})`, async () => {
        await gradcheck({
          opset,
          inputs: [{ name: 'x', shape: [2, 3, 4] }],
          build: (b, [x]) => axesCases.flatMap((axes) => [0, 1].map((k) => reduce(b, op, x!, axes, k))),
        });
      });
    }
  }

  test('ReduceMean with a symbolic reduced dimension', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 4], graphShape: ['N', 4] }],
      build: (b, [x]) => { const m = reduce(b, 'ReduceMean', x!, [0], 0); return b.mul(m, m); },
    });
  });

  test('noop_with_empty_axes passes the cotangent through (opset 18)', async () => {
    await gradcheck({
      opset: 18,
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (b, [x]) => (['ReduceMean', 'ReduceMax'] as const).map((op) => b.op(op, [x!], { noop_with_empty_axes: 1 })),
    });
  });

  // Central differences see half the slope on each side of a two-way tie, as the rules give.
  for (const op of ['ReduceMax', 'ReduceMin'] as const) {
    test(`${op} splits a two-way tie`, async () => {
      await gradcheck({
        inputs: [{ name: 'x', shape: [2, 3], init: [0.5, 0.5, -0.5, 1, -2, -2] }],
        build: (b, [x]) => reduce(b, op, x!, [1], 0),
      });
    });
  }

  test('ReduceMax shares a three-way tie evenly', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'x', shape: [2, 3], init: [2, 2, 2, 1, 3, 0] }],
      build: (b, [x]) => reduce(b, 'ReduceMax', x!, [1], 1),
      cotangent: [3, 5],
    });
    expect(grads.x).toEqual([1, 1, 1, 0, 5, 0]);
  });

  test('ReduceL2 of a zero slice gives a zero gradient, not NaN', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'x', shape: [2, 2], init: [0, 0, 3, 4] }],
      build: (b, [x]) => reduce(b, 'ReduceL2', x!, [1], 0),
    });
    [0, 0, 0.6, 0.8].forEach((v, i) => expect(grads.x![i]).toBeCloseTo(v, 12));
  });
});

describe('TopK VJP', () => {
  // The cotangent of each selected value goes back to the position it came from (its index), and
  // unselected positions get none; the random inputs have no ties.
  test('largest and smallest k along the last axis, values weighted differently per rank', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 6] }],
      build: (b, [x]) => [
        b.opN('TopK', [x!, b.ints([3])], 2, { axis: -1, largest: 1, sorted: 1 })[0]!,
        b.opN('TopK', [x!, b.ints([2])], 2, { axis: 1, largest: 0, sorted: 1 })[0]!,
      ],
    });
  });
});
