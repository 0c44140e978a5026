import { describe, expect, test } from 'vitest';
import type { Builder } from '../../src/ir/builder.js';
import { smoothReluBackward } from '../../src/autodiff/rules/activations.js';
import { gradcheck, gradientAt } from '../helpers/gradcheck.js';

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

describe('activation VJP rules', () => {
  const cases: [string, Record<string, number | string>][] = [
    ['Relu', {}], ['LeakyRelu', {}], ['LeakyRelu', { alpha: 0.2 }], ['Sigmoid', {}], ['Tanh', {}], ['Softplus', {}],
    ['Elu', {}], ['Elu', { alpha: 0.7 }], ['Celu', {}], ['Celu', { alpha: 1.5 }], ['Selu', {}], ['Selu', { alpha: 1.2, gamma: 0.8 }], ['Softsign', {}],
  ];
  for (const [op, attrs] of cases) {
    for (const shape of [[6], [3, 4]]) {
      test(`${op} ${JSON.stringify(attrs)} [${shape}]`, async () => {
        // awayFromZero keeps every input off the kink at 0.
        await gradcheck({ inputs: [{ name: 'x', shape, init: 'awayFromZero' }], build: (b, [x]) => b.op(op, [x!], attrs) });
      });
    }
  }

  // At x = 0 exactly, PyTorch takes the x <= 0 branch (torch.autograd on Debian's torch 1.13, float64:
  // relu 0, leaky_relu(0.2) 0.2, elu(0.7) 0.7, celu(1.5) 1.0, selu 1.7580993408473766).
  const atZero: [string, Record<string, number>, number][] = [
    ['Relu', {}, 0], ['LeakyRelu', { alpha: 0.2 }, 0.2], ['Elu', { alpha: 0.7 }, 0.7], ['Celu', { alpha: 1.5 }, 1], ['Selu', {}, 1.7580993408473766],
  ];
  for (const [op, attrs, want] of atZero) {
    test(`${op} ${JSON.stringify(attrs)} at the kink x = 0 follows PyTorch (${want})`, async () => {
      const { grads } = await gradientAt({ dtype: 'float32', inputs: [{ name: 'x', shape: [2], init: [0, 0] }], build: (b, [x]) => b.op(op, [x!], attrs), cotangent: [1, 3] });
      expect(grads.x![0]).toBeCloseTo(want, 6);
      expect(grads.x![1]).toBeCloseTo(3 * want, 6);
    });
  }

  // Inputs in every linear piece, away from the kinks (HardSigmoid's at z = 0 and 1, HardSwish's at +-3).
  const spread = [-4, -2.8, -1.6, -0.3, 0.4, 1.2, 2.3, 2.7, 3.5, 5];
  test('HardSigmoid, default and custom alpha/beta', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [10], init: spread }],
      build: (b, [x]) => [b.op('HardSigmoid', [x!]), b.op('HardSigmoid', [x!], { alpha: 0.3, beta: 0.4 })],
    });
  });
  test('HardSwish', async () => {
    await gradcheck({ inputs: [{ name: 'x', shape: [10], init: spread }], build: (b, [x]) => b.op('HardSwish', [x!]) });
  });

  for (const approximate of ['none', 'tanh']) {
    test(`Gelu approximate=${approximate} (opset 20)`, async () => {
      await gradcheck({ opset: 20, inputs: [{ name: 'x', shape: [2, 5] }], build: (b, [x]) => b.op('Gelu', [x!], { approximate }) });
    });
  }

  // Opset-17 exporters decompose Gelu; those graphs differentiate through the primitive rules.
  const geluErf = (b: Builder, x: string) => b.mul(b.mul(x, b.scalarLike(0.5, x)), b.add(b.scalarLike(1, x), b.op('Erf', [b.div(x, b.scalarLike(Math.SQRT2, x))])));
  const geluTanh = (b: Builder, x: string) => {
    const inner = b.mul(b.scalarLike(Math.sqrt(2 / Math.PI), x), b.add(x, b.mul(b.scalarLike(0.044715, x), b.op('Pow', [x, b.scalarLike(3, x)]))));
    return b.mul(b.mul(b.scalarLike(0.5, x), x), b.add(b.scalarLike(1, x), b.tanh(inner)));
  };
  test('decomposed Gelu (erf form and tanh form) at opset 17', async () => {
    await gradcheck({ inputs: [{ name: 'x', shape: [2, 5] }], build: (b, [x]) => [geluErf(b, x!), geluTanh(b, x!)] });
  });

  test('the Gelu rule agrees with the decomposed graphs', async () => {
    const x = [-2.5, -1, -0.2, 0.3, 1.7, 3];
    for (const [approximate, decomposed] of [['none', geluErf], ['tanh', geluTanh]] as const) {
      const fused = await gradientAt({ opset: 20, dtype: 'float32', inputs: [{ name: 'x', shape: [6], init: x }], build: (b, [v]) => b.op('Gelu', [v!], { approximate }) });
      const prim = await gradientAt({ opset: 17, dtype: 'float32', inputs: [{ name: 'x', shape: [6], init: x }], build: (b, [v]) => decomposed(b, v!) });
      fused.grads.x!.forEach((g, i) => expect(g).toBeCloseTo(prim.grads.x![i]!, 5));
    }
  });

  describe('SAT smooth ReLU backward', () => {
    const x = [-2, -0.5, -0.05, 0.05, 0.3, 1.5];
    const gy = [0.7, -1.2, 2, 0.4, -0.9, 1.1];
    const input = [{ name: 'x', shape: [6], init: x }];

    test('the override gives gy * sigmoid(alpha x) with the Relu forward unchanged', async () => {
      for (const alpha of [10, 2.5]) {
        const r = await gradientAt({ inputs: input, cotangent: gy, build: (b, [v]) => b.relu(v!), gradOptions: { overrides: { Relu: smoothReluBackward(alpha) } } });
        expect(r.output).toEqual(x.map((v) => Math.max(v, 0)));
        r.grads.x!.forEach((g, i) => expect(g).toBeCloseTo(gy[i]! * sigmoid(alpha * x[i]!), 12));
      }
    });

    test('without the override the gradient is the ReLU one', async () => {
      const r = await gradientAt({ inputs: input, cotangent: gy, build: (b, [v]) => b.relu(v!) });
      // + 0 turns the -0 of (negative cotangent) * 0 into 0: the rule multiplies by the mask.
      expect(r.grads.x!.map((v) => v + 0)).toEqual(x.map((v, i) => (v > 0 ? gy[i]! : 0)));
    });

    test('the named custom rule uses alpha = 10 on the nodes that ask for it', async () => {
      const r = await gradientAt({
        inputs: input,
        cotangent: gy,
        build: (b, [v]) => b.add(b.op('Relu', [v!], {}, { customVjp: 'relu-psoftplus-backward' }), b.relu(v!)),
      });
      r.grads.x!.forEach((g, i) => expect(g).toBeCloseTo(gy[i]! * (sigmoid(10 * x[i]!) + (x[i]! > 0 ? 1 : 0)), 12));
    });

    test('the smooth backward refuses non-Relu nodes and non-positive alpha', async () => {
      await expect(gradientAt({ inputs: input, build: (b, [v]) => b.op('Tanh', [v!], {}, { customVjp: 'relu-psoftplus-backward' }) })).rejects.toThrow(/applies to Relu nodes/);
      expect(() => smoothReluBackward(0)).toThrow(/alpha must be positive/);
    });
  });
});
