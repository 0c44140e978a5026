import { describe, expect, test } from 'vitest';
import type { Builder } from '../../src/ir/builder.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { gradcheck, gradientAt } from '../helpers/gradcheck.js';

describe('element-wise VJP rules', () => {
  const pairs: [number[], number[]][] = [[[2, 3], [2, 3]], [[2, 3, 4], [4]], [[3, 1], [1, 4]]];
  for (const [sa, sb] of pairs) {
    test(`Pow [${sa}] ^ [${sb}] (base and exponent)`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: sa, init: 'positive' }, { name: 'p', shape: sb, init: 'unit' }],
        build: (b, [a, p]) => b.op('Pow', [a!, p!]),
      });
    });
  }

  test('Pow with a constant exponent: negative bases, float and int64 exponents', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [2, 4] }],
      build: (b, [a]) => [b.op('Pow', [a!, b.scalarLike(3, a!)]), b.op('Pow', [a!, b.constant(makeTensor('int64', [], [2]))])],
    });
  });

  test('Pow exponent gradient is 0 where the base is 0 or negative', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'a', shape: [3], init: [0, -2, 2] }, { name: 'p', shape: [3], init: [2, 2, 2] }],
      build: (b, [a, p]) => b.op('Pow', [a!, p!]),
    });
    expect(grads.a).toEqual([0, -4, 4]);
    expect(grads.p![0]).toBe(0);
    expect(grads.p![1]).toBe(0);
    expect(grads.p![2]).toBeCloseTo(4 * Math.log(2), 12);
  });

  test('Pow with exponent 0: the base gradient is 0, also at base 0 (PyTorch: [0, 0, 0], not NaN)', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'a', shape: [3], init: [0, 2, -1] }, { name: 'p', shape: [3], init: [0, 0, 0] }],
      build: (b, [a, p]) => b.op('Pow', [a!, p!]),
    });
    expect(grads.a!.map((v) => v + 0)).toEqual([0, 0, 0]);
  });

  const unary: [string, 'normal' | 'positive' | 'awayFromZero'][] = [
    ['Sqrt', 'positive'], ['Exp', 'normal'], ['Log', 'positive'], ['Erf', 'normal'], ['Abs', 'awayFromZero'], ['Reciprocal', 'awayFromZero'],
  ];
  for (const [op, init] of unary) {
    for (const shape of [[7], [2, 3, 4]]) {
      test(`${op} [${shape}]`, async () => {
        await gradcheck({ inputs: [{ name: 'x', shape, init }], build: (b, [x]) => b.op(op, [x!]) });
      });
    }
  }

  for (const op of ['Max', 'Min']) {
    test(`${op} of three broadcast inputs`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3] }, { name: 'c', shape: [2, 1] }],
        build: (b, xs) => b.op(op, xs),
      });
    });
    test(`${op} of one input, and of two with one constant`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: [2, 3] }, { name: 'c', shape: [3], wrt: false }],
        build: (b, [a, c]) => [b.op(op, [a!]), b.op(op, [a!, c!])],
      });
    });
    // Central differences see half the slope on each side of a two-way tie, as the rule gives.
    test(`${op} splits the cotangent on two-way ties`, async () => {
      await gradcheck({
        inputs: [{ name: 'a', shape: [4], init: [0.5, -1, 2, 0.3] }, { name: 'b', shape: [4], init: [0.5, 1, 2, -0.7] }],
        build: (b, [x, y]) => b.op(op, [x!, y!]),
      });
    });
  }

  test('Max shares a three-way tie evenly', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'a', shape: [2], init: [1, 5] }, { name: 'b', shape: [2], init: [1, 0] }, { name: 'c', shape: [1], init: [1] }],
      build: (b, xs) => b.op('Max', xs),
      cotangent: [3, 2],
    });
    expect(grads.a).toEqual([1, 2]);
    expect(grads.b).toEqual([1, 0]);
    expect(grads.c).toEqual([1]);
  });

  test('Where: both branches with broadcasting, none to the condition', async () => {
    await gradcheck({
      inputs: [{ name: 'c', shape: [2, 3], wrt: false }, { name: 'a', shape: [3] }, { name: 'b', shape: [2, 1] }],
      build: (b, [c, x, y]) => b.where(b.greater(c!, b.scalarLike(0, c!)), x!, y!),
    });
  });

  const xs = [-2.1, -1.3, -0.4, 0.2, 0.7, 1.6, 2.5, -0.9];
  test('Clip with constant bounds, with only a max, and with no bounds', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 4], init: xs }],
      build: (b, [x]) => [
        b.op('Clip', [x!, b.scalarLike(-1, x!), b.scalarLike(1, x!)]),
        b.op('Clip', [x!, '', b.scalarLike(0.5, x!)]),
        b.op('Clip', [x!]),
      ],
    });
  });

  test('Clip with bounds that are graph values gets gradients for them too', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 4], init: xs }, { name: 'lo', shape: [], init: [-1] }, { name: 'hi', shape: [], init: [1] }],
      build: (b, [x, lo, hi]) => b.op('Clip', [x!, lo!, hi!]),
    });
  });

  test('Clip with attribute bounds (opset 10)', async () => {
    await gradcheck({
      opset: 10,
      inputs: [{ name: 'x', shape: [2, 4], init: xs }],
      build: (b, [x]) => b.op('Clip', [x!], { min: -1, max: 1 }),
    });
  });

  test('Clip passes the gradient at the bounds (inclusive, like torch.clamp), and to max when min > max', async () => {
    const inputs = (lo: number, hi: number) => [{ name: 'x', shape: [6], init: [-1, -0.5, 0, 0.5, 1, 2] }, { name: 'lo', shape: [], init: [lo] }, { name: 'hi', shape: [], init: [hi] }];
    const build = (b: Builder, [x, lo, hi]: string[]) => b.op('Clip', [x!, lo!, hi!]);
    const r = await gradientAt({ inputs: inputs(-0.5, 1), build });
    expect(r.grads).toEqual({ x: [0, 1, 1, 1, 1, 0], lo: [1], hi: [1] });
    const crossed = await gradientAt({ inputs: inputs(1, 0), build });
    expect(crossed.output).toEqual([0, 0, 0, 0, 0, 0]);
    expect(crossed.grads).toEqual({ x: [0, 0, 0, 0, 0, 0], lo: [0], hi: [6] });
  });

  test('Cast float32 -> float64 -> float32 passes the gradient through', async () => {
    await gradcheck({
      dtype: 'float32',
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (b, [x]) => b.cast(b.exp(b.cast(x!, 'float64')), 'float32'),
    });
  });

  test("through float16: the backward pass's own constants (seed, 0.5 of Sqrt, 1 of Sigmoid) are float16 values", async () => {
    const { grads } = await gradientAt({
      dtype: 'float32',
      inputs: [{ name: 'x', shape: [3], init: [0.25, 0.5, 1] }],
      build: (b, [x]) => b.cast(b.add(b.sqrt(b.cast(x!, 'float16')), b.sigmoid(b.cast(x!, 'float16'))), 'float32'),
      cotangent: [1, 1, 1],
    });
    const want = [0.25, 0.5, 1].map((v) => 0.5 / Math.sqrt(v) + Math.exp(-v) / (1 + Math.exp(-v)) ** 2);
    grads.x!.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThan(2e-3 * want[i]!));
  });

  test('Cast to an integer type carries no gradient', async () => {
    // y = x * float(int(x)): only the first factor is differentiable.
    const init = [-2.7, -0.4, 0.6, 1.3, 3.9];
    await gradcheck({ inputs: [{ name: 'x', shape: [5], init }], build: (b, [x]) => b.mul(x!, b.cast(b.cast(x!, 'int32'), 'float64')) });
    const { grads } = await gradientAt({ inputs: [{ name: 'x', shape: [5], init }], build: (b, [x]) => b.mul(x!, b.cast(b.cast(x!, 'int32'), 'float64')) });
    expect(grads.x).toEqual([-2, 0, 0, 1, 3]);
  });
});
