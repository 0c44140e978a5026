// VJP rules for the basic arithmetic ops (with numpy broadcasting) and pass-through ops.

import { registerVjp } from '../registry.js';
import { unbroadcast } from '../util.js';

registerVjp('Identity', ({ gradOutputs: [gy] }) => [gy]);

registerVjp('Add', ({ b, gradOutputs: [gy], input, needs }) => [
  needs(0) ? unbroadcast(b, gy!, input(0)) : undefined,
  needs(1) ? unbroadcast(b, gy!, input(1)) : undefined,
]);

registerVjp('Sub', ({ b, gradOutputs: [gy], input, needs }) => [
  needs(0) ? unbroadcast(b, gy!, input(0)) : undefined,
  needs(1) ? unbroadcast(b, b.neg(gy!), input(1)) : undefined,
]);

registerVjp('Mul', ({ b, gradOutputs: [gy], input, needs }) => [
  needs(0) ? unbroadcast(b, b.mul(gy!, input(1)), input(0)) : undefined,
  needs(1) ? unbroadcast(b, b.mul(gy!, input(0)), input(1)) : undefined,
]);

// y = a / b:  da = g / b,  db = -g * y / b
registerVjp('Div', ({ b, gradOutputs: [gy], input, output, needs }) => [
  needs(0) ? unbroadcast(b, b.div(gy!, input(1)), input(0)) : undefined,
  needs(1) ? unbroadcast(b, b.neg(b.div(b.mul(gy!, output(0)), input(1))), input(1)) : undefined,
]);

registerVjp('Neg', ({ b, gradOutputs: [gy] }) => [b.neg(gy!)]);

// Sum of n inputs: each gets the cotangent, reduced to its own shape.
registerVjp('Sum', ({ b, gradOutputs: [gy], node, needs }) => node.inputs.map((inp, i) => (needs(i) ? unbroadcast(b, gy!, inp) : undefined)));
