// Shape rules for element-wise ops: unary ops keep their input type; binary ops broadcast numpy-style.

import type { Dim, Shape, ValueType } from '../graph.js';
import { registerShape, type ShapeContext } from '../shape-registry.js';

export function broadcastShapes(a: Shape, b: Shape): Shape {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else if (typeof x === 'number' && typeof y === 'number') throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    else out.push(typeof x === 'number' ? x : y); // symbolic vs static: the static size must be it
  }
  return out;
}

function need(ctx: ShapeContext, i: number): ValueType {
  const t = ctx.inputs[i];
  if (!t) throw new Error(`input ${i} is required`);
  return t;
}

const unary = (ctx: ShapeContext): ValueType[] => [{ ...need(ctx, 0) }];

registerShape(['Identity', 'Neg', 'Abs', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Erf', 'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Softplus', 'Elu', 'Celu', 'Selu', 'Gelu', 'HardSigmoid', 'HardSwish', 'Sign', 'Floor', 'Ceil', 'Round', 'Sin', 'Cos', 'Softsign', 'Mish', 'ThresholdedRelu'], unary);

registerShape('Clip', unary);
registerShape('Dropout', (ctx) => [{ ...need(ctx, 0) }, { dtype: 'bool', shape: need(ctx, 0).shape }]);

function broadcastAll(ctx: ShapeContext): Shape | null {
  let shape: Shape | null = [];
  for (const t of ctx.inputs) {
    if (!t) continue;
    if (!t.shape || !shape) { shape = null; continue; }
    shape = broadcastShapes(shape, t.shape);
  }
  return shape;
}

registerShape(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'Mod'], (ctx) => [{ dtype: need(ctx, 0).dtype, shape: broadcastAll(ctx) }]);
registerShape(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'], (ctx) => [{ dtype: 'bool', shape: broadcastAll(ctx) }]);
registerShape('Not', (ctx) => [{ dtype: 'bool', shape: need(ctx, 0).shape }]);
registerShape('IsNaN', (ctx) => [{ dtype: 'bool', shape: need(ctx, 0).shape }]);
registerShape('IsInf', (ctx) => [{ dtype: 'bool', shape: need(ctx, 0).shape }]);
registerShape('Where', (ctx) => [{ dtype: need(ctx, 1).dtype, shape: broadcastAll(ctx) }]);
