// Shape rules for the neural-network ops: convolutions, pooling, normalisation, matrix products, losses.

import { attrInt, attrInts, type Shape, type ValueType } from '../graph.js';
import { windowGeometry, windowOutputSize } from '../conv-geometry.js';
import { registerShape, type ShapeContext } from '../shape-registry.js';
import { broadcastShapes } from './elementwise.js';
import { resizeAxes } from '../resize-geometry.js';

function shapeOf(ctx: ShapeContext, i: number): Shape {
  const t = ctx.inputs[i];
  if (!t) throw new Error(`input ${i} is required`);
  if (!t.shape) throw new Error(`input ${i} ("${ctx.node.inputs[i]}") has unknown shape`);
  return t.shape;
}

function staticSpatial(s: Shape, what: string): number[] {
  return s.slice(2).map((d) => {
    if (typeof d !== 'number') throw new Error(`${what}: spatial dimensions must be static, got [${s}]`);
    return d;
  });
}

registerShape('Conv', (ctx) => {
  const x = shapeOf(ctx, 0), w = shapeOf(ctx, 1);
  const group = attrInt(ctx.node, 'group', 1);
  if (typeof x[1] === 'number' && typeof w[1] === 'number' && x[1] !== w[1] * group) {
    throw new Error(`input has ${x[1]} channels but weight [${w}] with group=${group} expects ${Number(w[1]) * group}`);
  }
  const kernel = attrInts(ctx.node, 'kernel_shape', staticSpatial(w, 'Conv weight'));
  const spatial = staticSpatial(x, 'Conv input');
  const geo = windowGeometry(ctx.node, spatial, kernel);
  return [{ dtype: ctx.inputs[0]!.dtype, shape: [x[0]!, w[0]!, ...windowOutputSize(geo, spatial)] }];
});

registerShape('ConvTranspose', (ctx) => {
  const x = shapeOf(ctx, 0), w = shapeOf(ctx, 1);
  const group = attrInt(ctx.node, 'group', 1);
  const kernel = attrInts(ctx.node, 'kernel_shape', staticSpatial(w, 'ConvTranspose weight'));
  const spatial = staticSpatial(x, 'ConvTranspose input');
  const r = spatial.length;
  const strides = attrInts(ctx.node, 'strides', Array(r).fill(1));
  const dil = attrInts(ctx.node, 'dilations', Array(r).fill(1));
  const pads = attrInts(ctx.node, 'pads', Array(2 * r).fill(0));
  const outPad = attrInts(ctx.node, 'output_padding', Array(r).fill(0));
  const explicit = ctx.node.attrs.output_shape?.value as number[] | undefined;
  // SAME_UPPER / SAME_LOWER: the output is input * stride, whatever the kernel (the pads follow from it).
  const autoPad = String(ctx.node.attrs.auto_pad?.value ?? 'NOTSET');
  const same = autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER' ? spatial.map((n, i) => n * strides[i]!) : undefined;
  const out = explicit ?? same ?? spatial.map((n, i) => strides[i]! * (n - 1) + outPad[i]! + (kernel[i]! - 1) * dil[i]! + 1 - pads[i]! - pads[i + r]!);
  const cout = typeof w[1] === 'number' ? w[1] * group : w[1]!;
  return [{ dtype: ctx.inputs[0]!.dtype, shape: [x[0]!, cout, ...out] }];
});

function pool(ctx: ShapeContext): ValueType[] {
  const x = shapeOf(ctx, 0);
  const spatial = staticSpatial(x, `${ctx.node.op} input`);
  const geo = windowGeometry(ctx.node, spatial, attrInts(ctx.node, 'kernel_shape'));
  const out: ValueType = { dtype: ctx.inputs[0]!.dtype, shape: [x[0]!, x[1]!, ...windowOutputSize(geo, spatial)] };
  return ctx.node.outputs.length > 1 ? [out, { dtype: 'int64', shape: out.shape }] : [out];
}
registerShape(['MaxPool', 'AveragePool', 'LpPool'], pool);

registerShape(['GlobalAveragePool', 'GlobalMaxPool'], (ctx) => {
  const x = shapeOf(ctx, 0);
  return [{ dtype: ctx.inputs[0]!.dtype, shape: [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] }];
});

registerShape('BatchNormalization', (ctx) => {
  const x = ctx.inputs[0]!;
  const c = shapeOf(ctx, 1);
  const outs: ValueType[] = [{ ...x }];
  // Training mode: running_mean and running_var outputs, shaped like the scale.
  for (let i = 1; i < ctx.node.outputs.length; i++) outs.push({ dtype: x.dtype, shape: [...c] });
  return outs;
});

registerShape(['LayerNormalization', 'InstanceNormalization', 'LRN'], (ctx) => [{ ...ctx.inputs[0]! }]);

registerShape('Gemm', (ctx) => {
  const a = shapeOf(ctx, 0), b = shapeOf(ctx, 1);
  const ta = attrInt(ctx.node, 'transA', 0), tb = attrInt(ctx.node, 'transB', 0);
  const m = ta ? a[1]! : a[0]!;
  const n = tb ? b[0]! : b[1]!;
  const ka = ta ? a[0] : a[1], kb = tb ? b[1] : b[0];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) throw new Error(`Gemm inner dimensions differ: A [${a}] (transA=${ta}) and B [${b}] (transB=${tb})`);
  return [{ dtype: ctx.inputs[0]!.dtype, shape: [m, n] }];
});

registerShape('MatMul', (ctx) => {
  let a = shapeOf(ctx, 0), b = shapeOf(ctx, 1);
  const aVec = a.length === 1, bVec = b.length === 1;
  if (aVec) a = [1, a[0]!];
  if (bVec) b = [b[0]!, 1];
  const ka = a[a.length - 1], kb = b[b.length - 2];
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) throw new Error(`MatMul inner dimensions differ: [${shapeOf(ctx, 0)}] x [${shapeOf(ctx, 1)}]`);
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  const out = [...batch, a[a.length - 2]!, b[b.length - 1]!];
  if (bVec) out.pop();
  if (aVec) out.splice(out.length - (bVec ? 1 : 2), 1);
  return [{ dtype: ctx.inputs[0]!.dtype, shape: out }];
});

registerShape(['Softmax', 'LogSoftmax'], (ctx) => [{ ...ctx.inputs[0]! }]);

registerShape(['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss'], (ctx) => {
  const x = shapeOf(ctx, 0);
  const reduction = (ctx.node.attrs.reduction?.value as string | undefined) ?? 'mean';
  const loss: ValueType = { dtype: ctx.inputs[0]!.dtype, shape: reduction === 'none' ? [x[0]!, ...x.slice(2)] : [] };
  return ctx.node.outputs.length > 1 ? [loss, { dtype: ctx.inputs[0]!.dtype, shape: [...x] }] : [loss];
});

// Resize: static output sizes from constant scales/sizes (see resize-geometry.ts); unknown otherwise.
registerShape('Resize', (ctx) => {
  const x = ctx.inputs[0]!;
  return [{ dtype: x.dtype, shape: x.shape ? resizeAxes(ctx.graph, ctx.node, x.shape)?.outShape ?? null : null }];
});
