import { describe, expect, test } from 'vitest';
import { addGradients } from '../../src/autodiff/grad.js';
import { BATCH_STATISTICS_BN_VJP } from '../../src/autodiff/rules/batchnorm.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph } from '../../src/ir/graph.js';
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

describe('train-mode BN over its own batch statistics, closed-form VJP (batchnorm-batch-statistics)', () => {
  // The graph advrun's models build: statistics by ReduceMean, then an inference-mode BatchNormalization.
  const build = (custom: boolean) => (b: Builder, [x, s, bias]: string[]) => {
    const axes = [0, ...b.shape(x!).slice(2).map((_, i) => i + 2)];
    const meanKeep = b.reduceMean(x!, axes, true);
    const centred = b.sub(x!, meanKeep);
    const variance = b.reduceMean(b.mul(centred, centred), axes, false);
    return b.op('BatchNormalization', [x!, s!, bias!, b.reshape(meanKeep, [-1]), variance], { epsilon: 1e-3 }, custom ? { customVjp: BATCH_STATISTICS_BN_VJP } : undefined);
  };
  const inputs = (x: (number)[], graphShape?: (number | string)[]): GradInput[] => [
    { name: 'x', shape: x, graphShape },
    { name: 'scale', shape: [x[1]!], init: 'awayFromZero' },
    { name: 'bias', shape: [x[1]!] },
  ];
  for (const shape of [[3, 3, 4, 4], [6, 4], [2, 3, 5]]) {
    test(`[${shape}]: gradients for x (through the statistics), scale and B`, async () => {
      await gradcheck({ inputs: inputs(shape), build: build(true) });
    });
  }
  test('symbolic batch dim', async () => {
    await gradcheck({ inputs: inputs([4, 2, 3, 3], ['N', 2, 3, 3]), build: build(true) });
  });
  test('the statistics nodes get no cotangent: only the loss\'s own broadcast is materialised, and fewer nodes than the chain rule through them', () => {
    const backwardOps = (custom: boolean) => {
      const g = new Graph('bn');
      const b = new Builder(g);
      const ins = [g.addInput('x', 'float32', ['N', 4, 5, 5]), g.addInput('scale', 'float32', [4]), g.addInput('bias', 'float32', [4])];
      const y = build(custom)(b, ins);
      const before = g.nodes.length;
      addGradients(g, b.sumAll(b.mul(y, y)), ins);
      return g.nodes.slice(before).map((n) => n.op);
    };
    const closed = backwardOps(true), chain = backwardOps(false);
    expect(closed.filter((o) => o === 'Expand')).toHaveLength(1); // the seed of sum(y*y)
    expect(chain.filter((o) => o === 'Expand').length).toBeGreaterThan(1);
    expect(closed.length).toBeLessThan(chain.length);
  });
});
