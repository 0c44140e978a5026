import { describe, test } from 'vitest';
import { gradcheck, type GradInput } from '../helpers/gradcheck.js';

function bnInputs(x: number[], wrtStats: boolean): GradInput[] {
  const c = [x[1]!];
  return [
    { name: 'x', shape: x },
    { name: 'scale', shape: c, init: 'awayFromZero' },
    { name: 'bias', shape: c },
    { name: 'mean', shape: c, wrt: wrtStats },
    { name: 'var', shape: c, init: 'positive', wrt: wrtStats },
  ];
}

describe('BatchNormalization VJP, inference mode (fixed statistics)', () => {
  for (const shape of [[2, 3, 4, 5], [5, 4], [3, 2, 6]]) {
    test(`[${shape}], gradients for x, scale, B, mean and var`, async () => {
      await gradcheck({
        inputs: bnInputs(shape, true),
        build: (b, [x, s, bias, m, v]) => b.op('BatchNormalization', [x!, s!, bias!, m!, v!], { epsilon: 1e-3 }),
      });
    });
  }
  test('symbolic batch dim', async () => {
    await gradcheck({
      inputs: bnInputs([3, 2, 3, 3], true).map((i) => (i.name === 'x' ? { ...i, graphShape: ['N', 2, 3, 3] } : i)),
      build: (b, [x, s, bias, m, v]) => b.op('BatchNormalization', [x!, s!, bias!, m!, v!]),
    });
  });
  test('only the input needs a gradient (training_mode 0 spelled out)', async () => {
    await gradcheck({
      inputs: bnInputs([2, 3, 3, 3], false).map((i) => (i.name === 'x' ? i : { ...i, wrt: false })),
      build: (b, [x, s, bias, m, v]) => b.op('BatchNormalization', [x!, s!, bias!, m!, v!], { training_mode: 0 }),
    });
  });
});

describe('BatchNormalization VJP, training mode (batch statistics)', () => {
  for (const shape of [[3, 3, 4, 4], [6, 4], [2, 3, 5]]) {
    test(`[${shape}], gradients for x, scale and B; running statistics are outputs too`, async () => {
      await gradcheck({
        inputs: bnInputs(shape, false),
        build: (b, [x, s, bias, m, v]) => b.opN('BatchNormalization', [x!, s!, bias!, m!, v!], 3, { training_mode: 1, epsilon: 1e-3, momentum: 0.9 })[0]!,
      });
    });
  }
  test('input_mean and input_var get zero gradients (they only feed the running statistics)', async () => {
    await gradcheck({
      inputs: bnInputs([4, 2, 3, 3], true),
      build: (b, [x, s, bias, m, v]) => b.opN('BatchNormalization', [x!, s!, bias!, m!, v!], 3, { training_mode: 1 })[0]!,
    });
  });

  test('symbolic batch dim (the batch statistics are means over a run-time count)', async () => {
    await gradcheck({
      inputs: bnInputs([5, 3, 2, 2], false).map((i) => (i.name === 'x' ? { ...i, graphShape: ['N', 3, 2, 2] } : i)),
      build: (b, [x, s, bias, m, v]) => b.opN('BatchNormalization', [x!, s!, bias!, m!, v!], 3, { training_mode: 1 })[0]!,
    });
  });
});
