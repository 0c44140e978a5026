// VJP rules for data-movement ops: reshapes, transposes, concatenation and slicing, gathers, padding,
// broadcasting copies. Each cotangent is the adjoint data movement (slice <-> pad, gather <-> scatter-add,
// copy <-> sum). Static dimensions become constants; symbolic ones (a dynamic batch) are read at run
// time through Shape, and the known result shape is recorded on the value since inference cannot see it.

import type { Builder } from '../../ir/builder.js';
import { attrInt, attrInts, attrString, type Node, type Shape } from '../../ir/graph.js';
import { makeTensor, toNumbers } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';
import { unbroadcast } from '../util.js';

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);
const INT_MAX = 2 ** 31 - 1; // Slice treats anything at or past the end as "to the end"

/** Record the shape a value is known to have when inference only saw a run-time shape tensor. */
export function withShape(b: Builder, name: string, shape: Shape): string {
  b.graph.types.set(name, { dtype: b.dtype(name), shape: [...shape] });
  return name;
}

/** One dimension of a shape tensor: a constant, or dimension `axis` of value `of`, read at run time. */
export type DimSource = number | { of: string; axis: number };

/** The dimensions of `name` as DimSources (symbolic ones become run-time reads). */
export function dimsOf(b: Builder, name: string): DimSource[] {
  return b.shape(name).map((d, axis) => (typeof d === 'number' ? d : { of: name, axis }));
}

/** A 1-D int64 shape tensor: a single constant when every dimension is static. */
export function shapeTensor(b: Builder, dims: DimSource[]): string {
  if (dims.every((d) => typeof d === 'number')) return b.ints(dims as number[]);
  const parts: string[] = [];
  let run: number[] = [];
  const flush = () => { if (run.length) parts.push(b.ints(run)); run = []; };
  for (const d of dims) {
    if (typeof d === 'number') { run.push(d); continue; }
    flush();
    parts.push(b.op('Gather', [b.shapeOf(d.of), b.ints([d.axis])], { axis: 0 }));
  }
  flush();
  return b.concat(parts, 0);
}

/** Reshape `g` to the shape of `like` (a constant target when static). */
export function reshapeTo(b: Builder, g: string, like: string): string {
  const s = b.shape(like);
  if (s.every((d) => typeof d === 'number')) return b.reshape(g, s as number[]);
  return withShape(b, b.op('Reshape', [g, b.shapeOf(like)]), s);
}

/** Zeros of the given (possibly symbolic) dimensions, in `g`'s dtype. */
function zerosOf(b: Builder, dims: DimSource[], like: string, shape: Shape): string {
  const z = b.op('ConstantOfShape', [shapeTensor(b, dims)], { value: makeTensor(b.dtype(like), [1], [0]) });
  return withShape(b, z, shape);
}

/** Constant-mode zero padding; `pads` is [begin_0.., end_0..] over every axis. Attribute form before opset 11. */
function padZeros(b: Builder, g: string, pads: number[]): string {
  return b.graph.opset >= 11 ? b.op('Pad', [g, b.ints(pads)]) : b.op('Pad', [g], { pads });
}

/** The int values of constant input i, or an error saying autodiff needs them constant. */
function constInts(b: Builder, node: Node, i: number, what: string): number[] | undefined {
  const name = node.inputs[i];
  if (!name) return undefined;
  const t = b.graph.constantValue(name);
  if (!t) throw new Error(`${what} must be a constant to differentiate ${node.op}`);
  return toNumbers(t);
}

// ---------- pure reshapes: the cotangent is reshaped back ----------

for (const op of ['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze']) {
  registerVjp(op, ({ b, gradOutputs: [gy], input }) => [reshapeTo(b, gy!, input(0))]);
}

registerVjp('Transpose', ({ b, node, gradOutputs: [gy], input }) => {
  const r = b.rank(input(0));
  const perm = attrInts(node, 'perm', [...Array(r).keys()].reverse());
  const inv = new Array<number>(r);
  perm.forEach((p, i) => { inv[p] = i; });
  return [b.transpose(gy!, inv)];
});

// ---------- concatenation and splitting are adjoint ----------

// Each input gets its own window of the cotangent. With static sizes along the axis those are
// constant Slices (only for the inputs that need one); a symbolic size (e.g. concatenating clean and
// adversarial batches along a dynamic N) uses one Split with sizes read at run time (opset 13+).
registerVjp('Concat', ({ b, node, gradOutputs: [gy], needs }) => {
  const xs = node.inputs;
  const r = b.rank(xs[0]!);
  const axis = norm(attrInt(node, 'axis'), r);
  const sizes = xs.map((x) => b.shape(x)[axis]!);
  if (sizes.every((d) => typeof d === 'number')) {
    let off = 0;
    return xs.map((x, i) => {
      const n = sizes[i] as number;
      const lo = off;
      off += n;
      return needs(i) ? b.slice(gy!, [lo], [lo + n], [axis]) : undefined;
    });
  }
  if (b.graph.opset < 13) throw new Error(`cannot differentiate Concat along symbolic axis ${axis} below opset 13`);
  const split = shapeTensor(b, xs.map((x) => (typeof b.shape(x)[axis] === 'number' ? (b.shape(x)[axis] as number) : { of: x, axis })));
  const parts = b.graph.addNode('Split', [gy!, split], { axis }, { outputs: xs.length });
  return xs.map((x, i) => (needs(i) ? withShape(b, parts[i]!, b.shape(x)) : undefined));
});

// Outputs that do not reach the loss contribute zeros of their own shape.
registerVjp('Split', ({ b, node, gradOutputs }) => {
  const x = node.inputs[0]!;
  const axis = norm(attrInt(node, 'axis', 0), b.rank(x));
  const pieces = node.outputs.map((o, i) => gradOutputs[i] ?? b.zerosLike(o));
  return [b.concat(pieces, axis)];
});

// ---------- slicing and padding are adjoint ----------

interface SliceParams { starts: number[]; ends: number[]; axes: number[]; steps: number[] }

function sliceParams(b: Builder, node: Node): SliceParams {
  if (b.graph.opset < 10) {
    const starts = attrInts(node, 'starts');
    return { starts, ends: attrInts(node, 'ends'), axes: attrInts(node, 'axes', starts.map((_, i) => i)), steps: starts.map(() => 1) };
  }
  const starts = constInts(b, node, 1, 'starts')!;
  const ends = constInts(b, node, 2, 'ends')!;
  const axes = constInts(b, node, 3, 'axes') ?? starts.map((_, i) => i);
  const steps = constInts(b, node, 4, 'steps') ?? starts.map(() => 1);
  return { starts, ends, axes, steps };
}

/** Place `g` (m entries along `axis`) at `positions` of a zero tensor with n entries along `axis`. */
function scatterAlong(b: Builder, g: string, axis: number, n: number, positions: number[]): string {
  const gs = b.shape(g);
  const dims = dimsOf(b, g).map((d, i) => (i === axis ? n : d));
  const zeros = zerosOf(b, dims, g, gs.map((d, i) => (i === axis ? n : d)));
  const idxDims = gs.map((_, i) => (i === axis ? positions.length : 1));
  const idx = b.op('Expand', [b.constant(makeTensor('int64', idxDims, positions)), b.shapeOf(g)]);
  // The positions are distinct, so plain ScatterElements (opset 11) needs no reduction.
  return b.op('ScatterElements', [zeros, idx, g], { axis });
}

// Unit-step axes: zero-pad the cotangent back to full size (one Pad for all of them). Other steps,
// including the reversing -1: scatter along the axis into zeros at the selected positions, which
// handles any stride and direction with standard ops.
registerVjp('Slice', ({ b, node, gradOutputs: [gy], input }) => {
  const x = input(0), xs = b.shape(x), r = xs.length;
  const { starts, ends, axes, steps } = sliceParams(b, node);
  const pads = new Array<number>(2 * r).fill(0);
  const strided: { axis: number; n: number; positions: number[] }[] = [];
  let empty = false;
  axes.forEach((a0, i) => {
    const a = norm(a0, r), n = xs[a], step = steps[i]!;
    if (step === 0) throw new Error('Slice step 0 is invalid');
    if (typeof n !== 'number') {
      if (starts[i] === 0 && ends[i]! >= INT_MAX && step === 1) return; // whole symbolic axis
      throw new Error(`cannot differentiate a partial Slice of symbolic dimension ${a}`);
    }
    // ONNX semantics: negative indices count from the end, then clamp ([0, n] forward, [-1, n-1] backward).
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = starts[i]! < 0 ? starts[i]! + n : starts[i]!;
    let e = ends[i]! < 0 ? ends[i]! + n : ends[i]!;
    if (step > 0) { s = clamp(s, 0, n); e = clamp(e, 0, n); } else { s = clamp(s, 0, n - 1); e = clamp(e, -1, n - 1); }
    const m = Math.max(0, Math.ceil((e - s) / step));
    if (m === 0) { empty = true; return; }
    if (step === 1) { pads[a] = s; pads[a + r] = n - s - m; }
    else strided.push({ axis: a, n, positions: Array.from({ length: m }, (_, k) => s + k * step) });
  });
  if (empty) return [b.zerosLike(x)];
  let g = gy!;
  for (const st of strided) g = scatterAlong(b, g, st.axis, st.n, st.positions);
  if (pads.some((p) => p !== 0)) g = padZeros(b, g, pads);
  return [g];
});

// Constant mode only: reflect/edge/wrap copy interior elements into the border, whose adjoint is a
// scatter-add with mode-specific index maps that advrun does not build.
registerVjp('Pad', ({ b, node, gradOutputs: [gy], input, needs }) => {
  const mode = attrString(node, 'mode', 'constant');
  if (mode !== 'constant') throw new Error(`Pad mode "${mode}" is not differentiable in advrun; only mode "constant" is`);
  const x = input(0), xs = b.shape(x), r = xs.length;
  const opsetInputs = b.graph.opset >= 11;
  const pads = opsetInputs ? constInts(b, node, 1, 'pads') : attrInts(node, 'pads');
  if (!pads) throw new Error('Pad needs pads');
  const axes = (opsetInputs ? constInts(b, node, 3, 'axes') : undefined)?.map((a) => norm(a, r)) ?? [...Array(r).keys()];
  const full = new Array<number>(2 * r).fill(0);
  axes.forEach((a, i) => { full[a] = pads[i]!; full[a + r] = pads[i + axes.length]!; });
  let gx: string;
  if (full.every((p) => p >= 0)) {
    // Cropping with Slice: the usual case, and portable to every execution provider.
    const cut = [...Array(r).keys()].filter((a) => full[a] !== 0 || full[a + r] !== 0);
    const size = (a: number) => {
      const n = xs[a];
      if (typeof n !== 'number') throw new Error(`cannot differentiate padding of symbolic dimension ${a}`);
      return n;
    };
    gx = cut.length ? b.slice(gy!, cut.map((a) => full[a]!), cut.map((a) => full[a]! + size(a)), cut) : gy!;
  } else {
    // Negative pads crop; ONNX Pad takes negative pads too (since Pad-2), so the adjoint is Pad with negated pads.
    gx = padZeros(b, gy!, full.map((p) => -p));
  }
  // The padding value fills every position that did not come from x.
  const gc = opsetInputs && needs(2) ? b.reshape(b.sub(b.sumAll(gy!), b.sumAll(gx)), b.shape(input(2)).map(Number)) : undefined;
  return [needs(0) ? gx : undefined, undefined, gc];
});

// ---------- gathers and copies: the adjoint sums ----------

// Gather's adjoint scatter-adds the cotangent rows into zeros; repeated indices must accumulate.
// Opset 16+: ScatterElements with reduction="add" (ORT CPU implements it), one row of updates per
// gathered index. Below opset 16: a one-hot matrix [n, K] (built with Equal, which has kernels for
// every dtype, unlike OneHot) times the cotangent, O(n K) memory, which is fine for the small
// vocabularies of old-opset models.
registerVjp('Gather', ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const x = input(0), idx = input(1);
  const xs = b.shape(x), r = xs.length;
  const axis = norm(attrInt(node, 'axis', 0), r);
  const flatIdx = b.reshape(idx, [-1]);
  const lead = dimsOf(b, x).slice(0, axis), trail = dimsOf(b, x).slice(axis + 1);
  if (b.graph.opset >= 16) {
    const updates = b.op('Reshape', [gy!, shapeTensor(b, [...lead, -1, ...trail])]);
    const idxShape = xs.map((_, i) => (i === axis ? -1 : 1));
    const indices = b.op('Expand', [b.op('Reshape', [flatIdx, b.ints(idxShape)]), b.shapeOf(updates)]);
    return [b.op('ScatterElements', [b.zerosLike(x), indices, updates], { axis, reduction: 'add' })];
  }
  const n = xs[axis];
  if (typeof n !== 'number') throw new Error(`cannot differentiate Gather along symbolic axis ${axis} below opset 16`);
  const q = trail.reduce<number>((p, d) => {
    if (typeof d !== 'number') throw new Error('cannot differentiate Gather with symbolic trailing dimensions below opset 16');
    return p * d;
  }, 1);
  // Negative indices count from the end, as in Gather.
  const wrapped = b.where(b.less(flatIdx, b.ints([0])), b.add(flatIdx, b.ints([n])), flatIdx);
  const rows = b.constant(makeTensor('int64', [n, 1], [...Array(n).keys()]));
  const oneHotT = b.cast(b.equal(rows, b.reshape(wrapped, [1, -1])), b.dtype(x)); // [n, K]
  const g3 = b.op('Reshape', [gy!, shapeTensor(b, [...lead, -1, q])]); // [..., K, q]
  return [reshapeTo(b, b.matmul(oneHotT, g3), x)]; // [..., n, q] -> x
});

registerVjp('Expand', ({ b, gradOutputs: [gy], input, needs }) => [needs(0) ? unbroadcast(b, gy!, input(0)) : undefined]);

// Tile: view the cotangent as [r0, d0, r1, d1, ...] and sum over the repeat axes.
registerVjp('Tile', ({ b, node, gradOutputs: [gy], input }) => {
  const x = input(0);
  const reps = constInts(b, node, 1, 'repeats')!;
  const dims: DimSource[] = [];
  const sumAxes: number[] = [];
  dimsOf(b, x).forEach((d, i) => {
    if (reps[i] !== 1) { sumAxes.push(dims.length); dims.push(reps[i]!); }
    dims.push(d);
  });
  if (sumAxes.length === 0) return [gy];
  const view = b.op('Reshape', [gy!, shapeTensor(b, dims)]);
  return [withShape(b, b.reduceSum(view, sumAxes, false), b.shape(x))];
});
