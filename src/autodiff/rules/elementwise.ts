// VJP rules for element-wise math: powers, exp/log, Erf, Abs, Max/Min, Where, Clip, Cast.
// Binary and variadic ops broadcast numpy-style, so every cotangent is summed back to its input's shape.

import type { Builder } from '../../ir/builder.js';
import { attrFloat } from '../../ir/graph.js';
import type { DType } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';
import { unbroadcast } from '../util.js';

const FLOATS = new Set<DType>(['float32', 'float64', 'float16']);

/**
 * gy where `mask` holds, 0 elsewhere: gy times the mask cast to gy's type. ONNX Runtime's CPU Where is the
 * slower way (bench/mask_grad.mjs: Greater + Where 3.9-4.9 ms vs Greater + Cast + Mul 2.3 ms on a
 * [128, 16, 28, 28] ReLU mask, 2 threads; 3-5 % of a PreActResNet-18 train step, bench/RESULTS.md). The two differ only where a masked cotangent is
 * inf or NaN (the product is NaN, Where and PyTorch give 0), i.e. in a step that is already poisoned, which
 * the runtime's NaN/Inf check on the loss and gradient norms reports either way.
 */
export function maskGrad(b: Builder, mask: string, gy: string): string {
  return b.mul(gy, b.cast(mask, b.dtype(gy)));
}

// y = a^p.  da = g * p * a^(p-1): Pow(a, p-1) rather than p*y/a so that a = 0 is fine for p >= 1; for p = 0
// (y = 1) da is 0 everywhere, as in PyTorch, where p * a^(p-1) would be 0 * inf = NaN at a = 0.
// dp = g * y * log(a), defined for a > 0 only. Elsewhere we give 0 (the limit at a = 0 for p > 0,
// as PyTorch does); for a < 0 PyTorch returns NaN, which would silently poison a training run.
registerVjp('Pow', ({ b, gradOutputs: [gy], input, output, needs }) => {
  const a = input(0), dt = b.dtype(a);
  const p = b.cast(input(1), dt); // the exponent may be an integer tensor
  const zero = b.scalar(0, dt);
  const slope = b.mul(p, b.op('Pow', [a, b.sub(p, b.scalar(1, dt))]));
  const ga = needs(0) ? unbroadcast(b, b.mul(gy!, b.where(b.equal(p, zero), zero, slope)), a) : undefined;
  let gp: string | undefined;
  if (needs(1)) {
    const safeLog = b.where(b.greater(a, zero), b.log(a), zero);
    gp = unbroadcast(b, b.mul(gy!, b.mul(output(0), safeLog)), input(1));
  }
  return [ga, gp];
});

// Reusing the forward output saves recomputing the function: d sqrt(x) = 1 / (2 y), d exp(x) = y.
registerVjp('Sqrt', ({ b, gradOutputs: [gy], output }) => [b.div(gy!, b.scale(output(0), 2))]);
registerVjp('Exp', ({ b, gradOutputs: [gy], output }) => [b.mul(gy!, output(0))]);
registerVjp('Log', ({ b, gradOutputs: [gy], input }) => [b.div(gy!, input(0))]);

// d erf(x) = 2/sqrt(pi) * exp(-x^2)
registerVjp('Erf', ({ b, gradOutputs: [gy], input }) => {
  const x = input(0);
  return [b.mul(gy!, b.scale(b.exp(b.neg(b.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
});

// Sign(0) = 0: the subgradient at the kink is 0, as in PyTorch.
registerVjp('Abs', ({ b, gradOutputs: [gy], input }) => [b.mul(gy!, b.sign(input(0)))]);

// d(1/x) = -1/x^2 = -y^2
registerVjp('Reciprocal', ({ b, gradOutputs: [gy], output }) => [b.neg(b.mul(gy!, b.mul(output(0), output(0))))]);

// Max/Min of n broadcast inputs: the cotangent goes to the inputs equal to the result. On ties it is
// split evenly between the tying inputs (PyTorch's torch.maximum/minimum does the same for two inputs;
// we extend it to n). This is also what central differences see for a two-way tie, and it keeps the
// total cotangent unchanged.
function extremumVjp(op: 'Max' | 'Min') {
  registerVjp(op, ({ b, node, gradOutputs: [gy], output, needs }) => {
    const xs = node.inputs;
    if (xs.length === 1) return [gy];
    const dt = b.dtype(output(0));
    const hits = xs.map((x) => b.cast(b.equal(x, output(0)), dt));
    const share = b.div(gy!, b.sum(hits)); // sum >= 1 everywhere: the result is one of the inputs
    return xs.map((x, i) => (needs(i) ? unbroadcast(b, b.mul(share, hits[i]!), x) : undefined));
  });
}
extremumVjp('Max');
extremumVjp('Min');

// The condition is boolean: no cotangent for it.
registerVjp('Where', ({ b, gradOutputs: [gy], input, needs }) => {
  const zero = b.scalarLike(0, gy!);
  return [
    undefined,
    needs(1) ? unbroadcast(b, b.where(input(0), gy!, zero), input(1)) : undefined,
    needs(2) ? unbroadcast(b, b.where(input(0), zero, gy!), input(2)) : undefined,
  ];
});

// Clip = Min(Max(x, lo), hi) with scalar bounds (inputs from opset 11, attributes before).
// x gets the cotangent where lo <= x <= hi, inclusive at both ends like torch.clamp. The bounds,
// when they are graph values that need it, get the summed cotangent of the elements they produced;
// if lo > hi every element is hi (ONNX semantics), so then all of it goes to hi.
registerVjp('Clip', ({ b, node, gradOutputs: [gy], input, needs }) => {
  const x = input(0), g = gy!;
  const asInputs = b.graph.opset >= 11;
  const bound = (i: 1 | 2, attr: 'min' | 'max'): string | undefined => {
    if (asInputs) return node.inputs[i] || undefined;
    return node.attrs[attr] ? b.scalarLike(attrFloat(node, attr), x) : undefined;
  };
  const lo = bound(1, 'min'), hi = bound(2, 'max');
  const notBelow = lo ? b.op('Not', [b.less(x, lo)]) : undefined;
  const notAbove = hi ? b.op('Not', [b.greater(x, hi)]) : undefined;
  const pass = notBelow && notAbove ? b.op('And', [notBelow, notAbove]) : notBelow ?? notAbove;
  const gx = needs(0) ? (pass ? maskGrad(b, pass, g) : g) : undefined;
  const sumTo = (mask: string, like: string) => b.reshape(b.sumAll(maskGrad(b, mask, g)), b.shape(like).map(Number));
  const crossed = lo && hi ? b.greater(lo, hi) : undefined;
  let glo: string | undefined, ghi: string | undefined;
  if (asInputs && lo && needs(1)) {
    const below = b.less(x, lo);
    glo = sumTo(crossed ? b.op('And', [below, b.op('Not', [crossed])]) : below, lo);
  }
  if (asInputs && hi && needs(2)) {
    const above = lo ? b.greater(b.op('Max', [x, lo]), hi) : b.greater(x, hi);
    ghi = sumTo(above, hi);
  }
  return [gx, glo, ghi];
});

// Float-to-float casts pass the cotangent back in the input's precision; casts from or to
// integer/bool types carry no gradient.
registerVjp('Cast', ({ b, gradOutputs: [gy], input, output }) => {
  const from = b.dtype(input(0)), to = b.dtype(output(0));
  if (!FLOATS.has(from) || !FLOATS.has(to)) return [undefined];
  return [b.cast(gy!, from)];
});
