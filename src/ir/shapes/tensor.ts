// Shape rules for data-movement ops (reshape, transpose, slicing, reductions, constants, casts).

import { attrInt, attrInts, type Dim, type Shape, type ValueType } from '../graph.js';
import { dtypeFromOnnxCode, toNumbers, type Tensor } from '../tensor.js';
import { registerShape, type ShapeContext } from '../shape-registry.js';

function input(ctx: ShapeContext, i: number): ValueType {
  const t = ctx.inputs[i];
  if (!t) throw new Error(`input ${i} is required`);
  return t;
}
function shapeOf(ctx: ShapeContext, i: number): Shape {
  const s = input(ctx, i).shape;
  if (!s) throw new Error(`input ${i} ("${ctx.node.inputs[i]}") has unknown shape`);
  return s;
}
/** The value of a constant input (shape, axes, pads...), or undefined when it is computed at run time. */
function constInput(ctx: ShapeContext, i: number): number[] | undefined {
  const name = ctx.node.inputs[i];
  if (!name) return undefined;
  const t = ctx.graph.constantValue(name);
  return t ? toNumbers(t) : undefined;
}
const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/**
 * The dims a shape-valued input i holds, symbolic ones included, when that input is Shape(y) (with
 * start/end: the slice of y's dims). Reshape, Expand and ConstantOfShape take their targets this way
 * when the target is not a constant (a cotangent put back into its input's shape, zeros_like).
 */
function shapeOfShapeInput(ctx: ShapeContext, i: number): Dim[] | undefined {
  const src = ctx.graph.producer(ctx.node.inputs[i]!);
  if (src?.op !== 'Shape') return undefined;
  const s = ctx.graph.type(src.inputs[0]!).shape;
  if (!s) return undefined;
  const [start, end] = shapeRange(src, s.length);
  return s.slice(start, end);
}

/** Shape's start/end (opset 15): negative values count from the end, both clamped to [0, rank]. */
function shapeRange(node: ShapeContext['node'], rank: number): [number, number] {
  const at = (v: number) => Math.min(rank, Math.max(0, v < 0 ? v + rank : v));
  return [at(attrInt(node, 'start', 0)), at(attrInt(node, 'end', rank))];
}

/**
 * Product of dims: a number when all are static; a symbol when it is the only factor besides 1s; else
 * `fresh` (a new symbol: N*2 or N*M is no dimension the graph already names).
 */
function product(dims: Dim[], fresh: Dim = '?'): Dim {
  let p = 1;
  const symbols: Dim[] = [];
  for (const d of dims) { if (typeof d === 'number') p *= d; else symbols.push(d); }
  if (!symbols.length) return p;
  return symbols.length === 1 && p === 1 ? symbols[0]! : fresh;
}

registerShape('Reshape', (ctx) => {
  const x = shapeOf(ctx, 0);
  const target = constInput(ctx, 1);
  const dtype = input(ctx, 0).dtype;
  if (!target) {
    const dims = shapeOfShapeInput(ctx, 1);
    if (dims && !dims.some((d) => d === 0 || d === -1)) return [{ dtype, shape: dims }];
    const len = input(ctx, 1).shape?.[0];
    return [{ dtype, shape: typeof len === 'number' ? Array.from({ length: len }, (_, i) => `${ctx.node.outputs[0]}_d${i}`) : null }];
  }
  const allowZero = attrInt(ctx.node, 'allowzero', 0) === 1;
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? x[i]! : d));
  const inferIdx = out.indexOf(-1);
  if (inferIdx >= 0) {
    const known = out.filter((_, i) => i !== inferIdx);
    const total = product(x), part = product(known);
    if (typeof total === 'number' && typeof part === 'number') {
      if (total % part !== 0) throw new Error(`cannot reshape [${x}] to [${target}]`);
      out[inferIdx] = total / part;
    } else {
      // The symbolic batch dimension passes through when it is the only symbolic one and the rest are static.
      const symbols = x.filter((d) => typeof d !== 'number');
      const staticIn = product(x.filter((d) => typeof d === 'number'));
      out[inferIdx] = symbols.length === 1 && typeof part === 'number' && staticIn === part ? symbols[0]! : `${ctx.node.outputs[0]}_d${inferIdx}`;
    }
  } else {
    const a = product(x), b = product(out);
    if (typeof a === 'number' && typeof b === 'number' && a !== b) throw new Error(`cannot reshape [${x}] (${a} elements) to [${target}] (${b} elements)`);
  }
  return [{ dtype, shape: out }];
});

registerShape('Flatten', (ctx) => {
  const x = shapeOf(ctx, 0);
  const axis = norm(attrInt(ctx.node, 'axis', 1), x.length);
  const out = ctx.node.outputs[0];
  return [{ dtype: input(ctx, 0).dtype, shape: [product(x.slice(0, axis), `${out}_d0`), product(x.slice(axis), `${out}_d1`)] }];
});

registerShape('Transpose', (ctx) => {
  const x = shapeOf(ctx, 0);
  const perm = attrInts(ctx.node, 'perm', x.map((_, i) => x.length - 1 - i));
  return [{ dtype: input(ctx, 0).dtype, shape: perm.map((p) => x[p]!) }];
});

function axesOf(ctx: ShapeContext): number[] | undefined {
  return (ctx.node.attrs.axes?.value as number[] | undefined) ?? constInput(ctx, 1);
}

registerShape('Unsqueeze', (ctx) => {
  const x = shapeOf(ctx, 0);
  const axes = axesOf(ctx);
  if (!axes) throw new Error('axes must be a constant');
  const rank = x.length + axes.length;
  const set = new Set(axes.map((a) => norm(a, rank)));
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x[j++]!);
  return [{ dtype: input(ctx, 0).dtype, shape: out }];
});

registerShape('Squeeze', (ctx) => {
  const x = shapeOf(ctx, 0);
  const axes = axesOf(ctx);
  const set = new Set((axes ?? x.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => norm(a, x.length)));
  return [{ dtype: input(ctx, 0).dtype, shape: x.filter((_, i) => !set.has(i)) }];
});

registerShape('Concat', (ctx) => {
  const shapes = ctx.inputs.map((_, i) => shapeOf(ctx, i));
  const axis = norm(attrInt(ctx.node, 'axis'), shapes[0]!.length);
  const out = [...shapes[0]!];
  out[axis] = product([]) as number;
  let total: Dim = 0;
  for (const s of shapes) total = typeof total === 'number' && typeof s[axis] === 'number' ? total + (s[axis] as number) : `${ctx.node.outputs[0]}_d${axis}`;
  out[axis] = total;
  return [{ dtype: input(ctx, 0).dtype, shape: out }];
});

registerShape('Slice', (ctx) => {
  const x = shapeOf(ctx, 0);
  // Before opset 10, starts/ends/axes are attributes.
  const attr = (n: string) => ctx.node.attrs[n]?.value as number[] | undefined;
  const starts = attr('starts') ?? constInput(ctx, 1), ends = attr('ends') ?? constInput(ctx, 2);
  const axes = attr('axes') ?? constInput(ctx, 3) ?? starts?.map((_, i) => i);
  const steps = constInput(ctx, 4) ?? starts?.map(() => 1);
  if (!starts || !ends || !axes || !steps) throw new Error('starts/ends/axes/steps must be constants');
  const out = [...x];
  axes.forEach((a0, i) => {
    const a = norm(a0, x.length);
    const n = x[a];
    if (typeof n !== 'number') {
      if (starts[i] === 0 && ends[i]! >= 2 ** 31 - 1 && steps[i] === 1) return; // full range of a symbolic dim
      out[a] = `${ctx.node.outputs[0]}_d${a}`; // a part of a symbolic dim: size known at run time only
      return;
    }
    const step = steps[i]!;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts[i]! < 0 ? starts[i]! + n : starts[i]!;
    let e = ends[i]! < 0 ? ends[i]! + n : ends[i]!;
    if (step > 0) { s = clamp(s, 0, n); e = clamp(e, 0, n); out[a] = Math.max(0, Math.ceil((e - s) / step)); }
    else { s = clamp(s, 0, n - 1); e = clamp(e, -1, n - 1); out[a] = Math.max(0, Math.ceil((s - e) / -step)); }
  });
  return [{ dtype: input(ctx, 0).dtype, shape: out }];
});

registerShape('Gather', (ctx) => {
  const x = shapeOf(ctx, 0), idx = shapeOf(ctx, 1);
  const axis = norm(attrInt(ctx.node, 'axis', 0), x.length);
  return [{ dtype: input(ctx, 0).dtype, shape: [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)] }];
});

registerShape('GatherElements', (ctx) => [{ dtype: input(ctx, 0).dtype, shape: shapeOf(ctx, 1) }]);
registerShape(['ScatterElements', 'ScatterND'], (ctx) => [{ ...input(ctx, 0) }]);

registerShape('Pad', (ctx) => {
  const x = shapeOf(ctx, 0);
  const pads = (ctx.node.attrs.pads?.value as number[] | undefined) ?? constInput(ctx, 1);
  if (!pads) throw new Error('pads must be a constant');
  const axes = constInput(ctx, 3) ?? x.map((_, i) => i);
  const out = [...x];
  const k = axes.length;
  axes.forEach((a0, i) => {
    const a = norm(a0, x.length);
    const d = x[a]!;
    const extra = pads[i]! + pads[i + k]!;
    out[a] = typeof d === 'number' ? d + extra : extra === 0 ? d : `${ctx.node.outputs[0]}_d${a}`;
  });
  return [{ dtype: input(ctx, 0).dtype, shape: out }];
});

/** Reduce ops take axes as an attribute (opset < 18, except ReduceSum >= 13) or as input 1. */
export function reduceAxesOf(ctx: ShapeContext): number[] | undefined {
  return (ctx.node.attrs.axes?.value as number[] | undefined) ?? constInput(ctx, 1);
}

registerShape(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceL1', 'ReduceSumSquare', 'ReduceLogSumExp'], (ctx) => {
  const x = shapeOf(ctx, 0);
  let axes = reduceAxesOf(ctx);
  if (ctx.node.inputs[1] && !axes) throw new Error('axes must be a constant');
  const noop = attrInt(ctx.node, 'noop_with_empty_axes', 0) === 1;
  if (!axes || axes.length === 0) axes = noop ? [] : x.map((_, i) => i);
  const set = new Set(axes.map((a) => norm(a, x.length)));
  const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
  const out = keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i));
  return [{ dtype: input(ctx, 0).dtype, shape: out }];
});

registerShape(['ArgMax', 'ArgMin'], (ctx) => {
  const x = shapeOf(ctx, 0);
  const axis = norm(attrInt(ctx.node, 'axis', 0), x.length);
  const keep = attrInt(ctx.node, 'keepdims', 1) === 1;
  return [{ dtype: 'int64', shape: keep ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis) }];
});

registerShape('Shape', (ctx) => {
  const [start, end] = shapeRange(ctx.node, shapeOf(ctx, 0).length);
  return [{ dtype: 'int64', shape: [Math.max(0, end - start)] }];
});
registerShape('Size', () => [{ dtype: 'int64', shape: [] }]);

registerShape('Cast', (ctx) => [{ dtype: dtypeFromOnnxCode(attrInt(ctx.node, 'to')), shape: input(ctx, 0).shape }]);
registerShape('CastLike', (ctx) => [{ dtype: input(ctx, 1).dtype, shape: input(ctx, 0).shape }]);

registerShape('Constant', (ctx) => {
  const t = ctx.graph.constantValue(ctx.node.outputs[0]!) ?? constantFromAttrs(ctx);
  return [{ dtype: t.dtype, shape: [...t.dims] }];
});

function constantFromAttrs(ctx: ShapeContext): Tensor {
  // The node is not registered yet when its own rule runs, so read its attributes directly.
  const a = ctx.node.attrs;
  if (a.value?.type === 'tensor') return a.value.value;
  if (a.value_float) return { dtype: 'float32', dims: [], data: new Float32Array(1) };
  if (a.value_floats?.type === 'floats') return { dtype: 'float32', dims: [a.value_floats.value.length], data: new Float32Array(a.value_floats.value.length) };
  if (a.value_int) return { dtype: 'int64', dims: [], data: new BigInt64Array(1) };
  if (a.value_ints?.type === 'ints') return { dtype: 'int64', dims: [a.value_ints.value.length], data: new BigInt64Array(a.value_ints.value.length) };
  throw new Error('Constant needs a value attribute');
}

registerShape('ConstantOfShape', (ctx) => {
  const dims = constInput(ctx, 0);
  const v = ctx.node.attrs.value;
  const dtype = v?.type === 'tensor' ? v.value.dtype : 'float32';
  if (dims) return [{ dtype, shape: dims }];
  // ConstantOfShape(Shape(x)) is the usual zeros_like: it keeps x's (possibly symbolic) shape.
  const like = shapeOfShapeInput(ctx, 0);
  if (like) return [{ dtype, shape: like }];
  const len = input(ctx, 0).shape?.[0];
  return [{ dtype, shape: typeof len === 'number' ? Array.from({ length: len }, (_, i) => `${ctx.node.outputs[0]}_d${i}`) : null }];
});

registerShape('Expand', (ctx) => {
  const x = shapeOf(ctx, 0);
  const target = constInput(ctx, 1) ?? shapeOfShapeInput(ctx, 1);
  return [{ dtype: input(ctx, 0).dtype, shape: target ? expandedShape(x, target) : null }];
});

/** Expand's output: x and the target shape broadcast together (a 1 in the target keeps x's size). */
function expandedShape(x: Dim[], target: Dim[]): Dim[] {
  const r = Math.max(x.length, target.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const a = x[x.length - r + i] ?? 1, b = target[target.length - r + i] ?? 1;
    // A 1 on either side takes the other; a static size beats a symbol; two different symbols: the target's.
    out.push(b === 1 ? a : a === 1 || a === b ? b : typeof a === 'number' && typeof b !== 'number' ? a : b);
  }
  return out;
}

registerShape('Tile', (ctx) => {
  const x = shapeOf(ctx, 0);
  const reps = constInput(ctx, 1);
  if (!reps) throw new Error('repeats must be a constant');
  return [{ dtype: input(ctx, 0).dtype, shape: x.map((d, i) => (reps[i] === 1 ? d : typeof d === 'number' ? d * reps[i]! : `${ctx.node.outputs[0]}_d${i}`)) }];
});

registerShape('OneHot', (ctx) => {
  const idx = shapeOf(ctx, 0);
  const depth = constInput(ctx, 1);
  if (!depth) throw new Error('depth must be a constant');
  const axis = attrInt(ctx.node, 'axis', -1);
  const out: Dim[] = [...idx];
  out.splice(axis < 0 ? idx.length + 1 + axis : axis, 0, depth[0]!);
  return [{ dtype: input(ctx, 2).dtype, shape: out }];
});

registerShape('Split', (ctx) => {
  const x = shapeOf(ctx, 0);
  const axis = norm(attrInt(ctx.node, 'axis', 0), x.length);
  const n = ctx.node.outputs.length;
  const split = (ctx.node.attrs.split?.value as number[] | undefined) ?? constInput(ctx, 1);
  const d = x[axis];
  // Without sizes the split is even; opset 18's num_outputs allows an uneven one, where the last chunk is smaller.
  const chunk = typeof d === 'number' ? Math.ceil(d / n) : 0;
  return ctx.node.outputs.map((_, i) => {
    const out = [...x];
    out[axis] = split ? split[i]! : typeof d === 'number' ? Math.max(0, Math.min(chunk, d - i * chunk)) : `${ctx.node.outputs[i]}_d${axis}`;
    return { dtype: input(ctx, 0).dtype, shape: out };
  });
});

registerShape('Range', (ctx) => {
  const [s, l, d] = [constInput(ctx, 0), constInput(ctx, 1), constInput(ctx, 2)];
  const n = s && l && d ? Math.max(0, Math.ceil((l[0]! - s[0]!) / d[0]!)) : `${ctx.node.outputs[0]}_d0`;
  return [{ dtype: input(ctx, 0).dtype, shape: [n] }];
});
