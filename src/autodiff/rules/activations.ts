// VJP rules for activation functions. Where the derivative is cheaper to get from the forward
// output than from the input (Sigmoid, Tanh, Elu, Selu) the rule reads the output.
//
// At kinks the subgradient follows PyTorch: Relu/LeakyRelu/Elu/Celu/Selu take the x <= 0 branch at 0,
// HardSigmoid passes the gradient only strictly inside its linear range.

import type { Builder } from '../../ir/builder.js';
import { attrFloat, attrString } from '../../ir/graph.js';
import { registerCustomVjp, registerVjp, type VjpRule } from '../registry.js';
import { maskGrad } from './elementwise.js';

const positive = (b: Builder, x: string) => b.greater(x, b.scalarLike(0, x));
const plus = (b: Builder, x: string, c: number) => b.add(x, b.scalarLike(c, x));

// The mask reads the output y = max(x, 0) (y > 0 exactly where x > 0), as PyTorch does: the next layer keeps y
// for its own gradient anyway, so x need not live until the backward pass.
registerVjp('Relu', ({ b, gradOutputs: [gy], output }) => [maskGrad(b, positive(b, output(0)), gy!)]);

/**
 * SAT's smooth backward for Relu ("Smooth Adversarial Training", Xie et al. 2020): the forward pass
 * stays Relu, the backward uses the derivative of the parametric softplus log(1 + exp(alpha x)) / alpha,
 * i.e. gx = gy * sigmoid(alpha x). Use it through GradOptions.overrides = { Relu: smoothReluBackward(10) }
 * so that only the attacker's gradient is smoothed.
 */
export function smoothReluBackward(alpha: number): VjpRule {
  if (!(alpha > 0)) throw new Error(`smoothReluBackward: alpha must be positive, got ${alpha}`);
  return ({ b, node, gradOutputs: [gy], input }) => {
    // As a named custom rule it can be attached to any node; the formula only means something for Relu.
    if (node.op !== 'Relu') throw new Error(`the smooth ReLU backward applies to Relu nodes, not ${node.op}`);
    return [b.mul(gy!, b.sigmoid(b.scale(input(0), alpha)))];
  };
}

// Nodes carry only the rule's name, so the named form uses SAT's alpha = 10;
// other values go through the factory.
registerCustomVjp('relu-psoftplus-backward', smoothReluBackward(10));

registerVjp('LeakyRelu', ({ b, node, gradOutputs: [gy], input }) => {
  const g = gy!;
  return [b.where(positive(b, input(0)), g, b.scale(g, attrFloat(node, 'alpha', 0.01)))];
});

// sigmoid' = y (1 - y)
registerVjp('Sigmoid', ({ b, gradOutputs: [gy], output }) => {
  const y = output(0);
  return [b.mul(gy!, b.mul(y, b.sub(b.scalarLike(1, y), y)))];
});

// tanh' = 1 - y^2
registerVjp('Tanh', ({ b, gradOutputs: [gy], output }) => {
  const y = output(0);
  return [b.mul(gy!, b.sub(b.scalarLike(1, y), b.mul(y, y)))];
});

// softplus' = sigmoid(x)
registerVjp('Softplus', ({ b, gradOutputs: [gy], input }) => [b.mul(gy!, b.sigmoid(input(0)))]);

// For x <= 0, y = alpha (e^x - 1), so y' = alpha e^x = y + alpha.
registerVjp('Elu', ({ b, node, gradOutputs: [gy], input, output }) => {
  const g = gy!, alpha = attrFloat(node, 'alpha', 1);
  return [b.where(positive(b, input(0)), g, b.mul(g, plus(b, output(0), alpha)))];
});

// For x <= 0, y = alpha (e^(x/alpha) - 1), so y' = e^(x/alpha). Recomputed from x rather than
// y/alpha + 1, which loses precision for large alpha.
registerVjp('Celu', ({ b, node, gradOutputs: [gy], input }) => {
  const g = gy!, x = input(0), alpha = attrFloat(node, 'alpha', 1);
  return [b.where(positive(b, x), g, b.mul(g, b.exp(b.scale(x, 1 / alpha))))];
});

// y = gamma x for x > 0, gamma alpha (e^x - 1) otherwise: y' = gamma, or y + gamma alpha.
registerVjp('Selu', ({ b, node, gradOutputs: [gy], input, output }) => {
  const g = gy!;
  const alpha = attrFloat(node, 'alpha', 1.67326319217681884765625);
  const gamma = attrFloat(node, 'gamma', 1.05070102214813232421875);
  return [b.where(positive(b, input(0)), b.scale(g, gamma), b.mul(g, plus(b, output(0), gamma * alpha)))];
});

// Gelu (opset 20). The backward is written with primitive ops so it does not need Gelu itself.
//   exact: y = x Phi(x)             -> y' = Phi(x) + x phi(x)
//   tanh:  y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
//                                   -> y' = (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
registerVjp('Gelu', ({ b, node, gradOutputs: [gy], input }) => {
  const x = input(0), x2 = b.mul(x, x);
  const mode = attrString(node, 'approximate', 'none');
  let dy: string;
  if (mode === 'none') {
    const cdf = b.scale(plus(b, b.op('Erf', [b.scale(x, Math.SQRT1_2)]), 1), 0.5);
    const pdf = b.scale(b.exp(b.scale(x2, -0.5)), 1 / Math.sqrt(2 * Math.PI));
    dy = b.add(cdf, b.mul(x, pdf));
  } else if (mode === 'tanh') {
    const k = Math.sqrt(2 / Math.PI), c = 0.044715;
    const t = b.tanh(b.scale(b.mul(x, plus(b, b.scale(x2, c), 1)), k));
    const sech2 = b.sub(b.scalarLike(1, x), b.mul(t, t));
    const du = b.scale(plus(b, b.scale(x2, 3 * c), 1), k);
    dy = b.add(b.scale(plus(b, t, 1), 0.5), b.mul(b.scale(x, 0.5), b.mul(sech2, du)));
  } else {
    throw new Error(`unknown Gelu approximate="${mode}"`);
  }
  return [b.mul(gy!, dy)];
});

// y = clamp(alpha x + beta, 0, 1): slope alpha strictly inside (0, 1), read off the output.
registerVjp('HardSigmoid', ({ b, node, gradOutputs: [gy], output }) => {
  const y = output(0);
  const inside = b.op('And', [b.greater(y, b.scalarLike(0, y)), b.less(y, b.scalarLike(1, y))]);
  return [maskGrad(b, inside, b.scale(gy!, attrFloat(node, 'alpha', 0.2)))];
});

// y = x clamp(x/6 + 1/2, 0, 1): y' = 0 below -3, x/3 + 1/2 on [-3, 3], 1 above 3 (PyTorch's convention at the ends).
registerVjp('HardSwish', ({ b, gradOutputs: [gy], input }) => {
  const x = input(0), g = gy!;
  const mid = b.mul(g, plus(b, b.scale(x, 1 / 3), 0.5));
  const upper = b.where(b.greater(x, b.scalarLike(3, x)), g, mid);
  return [b.where(b.less(x, b.scalarLike(-3, x)), b.scalarLike(0, x), upper)];
});

// y = x / (1 + |x|): y' = 1 / (1 + |x|)^2
registerVjp('Softsign', ({ b, gradOutputs: [gy], input }) => {
  const d = plus(b, b.abs(input(0)), 1);
  return [b.div(gy!, b.mul(d, d))];
});
