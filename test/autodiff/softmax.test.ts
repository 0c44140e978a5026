import { describe, expect, test } from 'vitest';
import { makeTensor } from '../../src/ir/tensor.js';
import { gradcheck } from '../helpers/gradcheck.js';

describe('softmax and loss VJP rules', () => {
  for (const op of ['Softmax', 'LogSoftmax']) {
    test(`${op}: default axis, axis 0 and axis 1 of a rank-3 input`, async () => {
      await gradcheck({
        inputs: [{ name: 'x', shape: [3, 4] }, { name: 'z', shape: [2, 3, 4] }],
        build: (b, [x, z]) => [b.op(op, [x!]), b.op(op, [x!], { axis: 0 }), b.op(op, [z!], { axis: 1 })],
      });
    });
    // Before opset 13 the input is coerced to 2-D: normalisation over all axes from `axis` on.
    test(`${op} with opset-11 semantics (coerced to 2-D)`, async () => {
      await gradcheck({
        opset: 11,
        inputs: [{ name: 'z', shape: [2, 3, 4] }],
        build: (b, [z]) => [b.op(op, [z!]), b.op(op, [z!], { axis: 2 })],
      });
    });
  }

  const labels2 = [1, 4, 0, 4];
  const labels3 = [0, 2, 2, 1, 1, 0, 2, 2];
  for (const reduction of ['mean', 'sum', 'none']) {
    test(`SoftmaxCrossEntropyLoss reduction=${reduction}, [N, C] and [N, C, d]`, async () => {
      await gradcheck({
        inputs: [
          { name: 'x', shape: [4, 5] }, { name: 't', shape: [4], init: labels2, int64: true },
          { name: 'z', shape: [2, 3, 4] }, { name: 'u', shape: [2, 4], init: labels3, int64: true },
        ],
        build: (b, [x, t, z, u]) => [b.op('SoftmaxCrossEntropyLoss', [x!, t!], { reduction }), b.op('SoftmaxCrossEntropyLoss', [z!, u!], { reduction })],
      });
    });
    test(`NegativeLogLikelihoodLoss reduction=${reduction}, [N, C] and [N, C, d]`, async () => {
      await gradcheck({
        inputs: [
          { name: 'x', shape: [4, 5] }, { name: 't', shape: [4], init: labels2, int64: true },
          { name: 'z', shape: [2, 3, 4] }, { name: 'u', shape: [2, 4], init: labels3, int64: true },
        ],
        build: (b, [x, t, z, u]) => [b.op('NegativeLogLikelihoodLoss', [x!, t!], { reduction }), b.op('NegativeLogLikelihoodLoss', [z!, u!], { reduction })],
      });
    });
  }

  for (const reduction of ['mean', 'none']) {
    test(`SoftmaxCrossEntropyLoss with ignore_index (in and out of range), reduction=${reduction}`, async () => {
      await gradcheck({
        inputs: [{ name: 'x', shape: [5, 3] }, { name: 't', shape: [5], init: [2, 1, 2, 0, 1], int64: true }, { name: 'v', shape: [5], init: [2, -100, 0, -100, 1], int64: true }],
        build: (b, [x, t, v]) => [
          b.op('SoftmaxCrossEntropyLoss', [x!, t!], { reduction, ignore_index: 2 }),
          b.op('SoftmaxCrossEntropyLoss', [x!, v!], { reduction, ignore_index: -100 }),
        ],
      });
    });

    test(`class weights with ignore_index, reduction=${reduction} (both losses)`, async () => {
      await gradcheck({
        inputs: [{ name: 'x', shape: [3, 4, 2] }, { name: 't', shape: [3, 2], init: [3, 0, 1, 3, -1, 2], int64: true }],
        build: (b, [x, t]) => {
          const w = b.constant(makeTensor(b.dtype(x!), [4], [0.5, 2, 1.5, 0.25]));
          return [
            b.op('SoftmaxCrossEntropyLoss', [x!, t!, w], { reduction, ignore_index: -1 }),
            b.op('NegativeLogLikelihoodLoss', [x!, t!, w], { reduction, ignore_index: -1 }),
          ];
        },
      });
    });
  }

  test('SoftmaxCrossEntropyLoss with its log_prob output, used alone and with the loss', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3, 2] }, { name: 't', shape: [2, 2], init: [0, 2, 1, 1], int64: true }],
      build: (b, [x, t]) => {
        const [loss, logp] = b.opN('SoftmaxCrossEntropyLoss', [x!, t!], 2, { reduction: 'mean' });
        const [, logpOnly] = b.opN('SoftmaxCrossEntropyLoss', [x!, t!], 2, { reduction: 'sum' });
        return [loss!, logp!, b.mul(logpOnly!, logpOnly!)];
      },
    });
  });

  test('SoftmaxCrossEntropyLoss at opset 12 on a rank-3 input', async () => {
    await gradcheck({
      opset: 12,
      inputs: [{ name: 'x', shape: [2, 3, 2] }, { name: 't', shape: [2, 2], init: [0, 2, 1, 1], int64: true }],
      build: (b, [x, t]) => b.op('SoftmaxCrossEntropyLoss', [x!, t!], { reduction: 'none' }),
    });
  });

  test('Dropout is the identity in inference mode', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (b, [x]) => [
        b.op('Dropout', [x!]),
        b.op('Dropout', [x!, b.scalarLike(0.3, x!), b.constant(makeTensor('bool', [], [0]))]),
        b.graph.addNode('Dropout', [x!], {}, { outputs: 2 })[0]!,
      ],
    });
    await gradcheck({ opset: 10, inputs: [{ name: 'x', shape: [2, 3] }], build: (b, [x]) => b.op('Dropout', [x!], { ratio: 0.5 }) });
  });

  test('Dropout in training mode is refused with a clear error', async () => {
    await expect(gradcheck({
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (b, [x]) => b.op('Dropout', [x!, b.scalarLike(0.3, x!), b.constant(makeTensor('bool', [], [1]))]),
    })).rejects.toThrow(/Dropout in training mode .* is not differentiable in advrun/);
  });
});
