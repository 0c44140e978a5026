// ONNX Resize (opset 11+) as fixed per-axis interpolation matrices. For the modes advrun differentiates
// (nearest and linear, without antialiasing) Resize is separable and linear in its input: along each
// resized axis, out = A · in with A [outSize, inSize] depending only on the sizes and the attributes.
// Shape inference reads the output sizes from here; the VJP rule multiplies by the transposed matrices.
//
// Coordinates follow the ONNX specification: x_original = f(x_resized) per coordinate_transformation_mode;
// linear reads the two neighbours floor(x) and floor(x)+1 with edge padding (the same as clamping
// x_original into [0, in-1]), which is what PyTorch's F.interpolate(mode='bilinear', align_corners=False)
// computes for half_pixel / pytorch_half_pixel.

import { attrInt, attrString, type Graph, type Node, type Shape } from './graph.js';
import { toNumbers } from './tensor.js';

export type ResizeMode = 'nearest' | 'linear';
export type CoordinateMode = 'half_pixel' | 'pytorch_half_pixel' | 'align_corners' | 'asymmetric' | 'tf_half_pixel_for_nn';
export type NearestMode = 'round_prefer_floor' | 'round_prefer_ceil' | 'floor' | 'ceil';

const COORDINATE_MODES: readonly string[] = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
const NEAREST_MODES: readonly string[] = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

export interface ResizeAxis {
  inSize: number;
  outSize: number;
  /** The scale the coordinate transform divides by: the given scale, or outSize / inSize when sizes are given. */
  scale: number;
}

export interface ResizeGeometry {
  mode: ResizeMode;
  coordinate: CoordinateMode;
  nearest: NearestMode;
  /** Output shape (leading non-resized axes copied from the input, symbolic ones included). */
  outShape: Shape;
  /** Per axis of the input: its resize, or undefined when the axis keeps its size (scale 1). */
  axes: (ResizeAxis | undefined)[];
}

/** The values of constant input i; undefined when absent or empty, null when computed at run time. */
function constInput(graph: Graph, node: Node, i: number): number[] | undefined | null {
  const name = node.inputs[i];
  if (!name) return undefined;
  const t = graph.constantValue(name);
  if (!t) return null;
  const v = toNumbers(t);
  return v.length === 0 ? undefined : v; // an empty tensor stands for "not given"
}

/**
 * Output shape and per-axis resizes from the constant scales/sizes, whatever the mode; null when they
 * are computed at run time (the shape is then unknown, as for any op without a static shape).
 */
export function resizeAxes(graph: Graph, node: Node, x: Shape): Pick<ResizeGeometry, 'outShape' | 'axes'> | null {
  if (graph.opset < 11) return null; // opset 10's scales-only form
  const scales = constInput(graph, node, 2);
  const sizes = constInput(graph, node, 3);
  if (scales === null || sizes === null) return null;
  if (!scales === !sizes) throw new Error('Resize needs exactly one of scales and sizes');
  const list = (sizes ?? scales)!;
  if (list.length !== x.length) throw new Error(`Resize: ${sizes ? 'sizes' : 'scales'} has ${list.length} entries for a rank-${x.length} input`);
  const axes: (ResizeAxis | undefined)[] = [];
  const outShape: Shape = [];
  x.forEach((d, i) => {
    const unchanged = sizes ? typeof d === 'number' && sizes[i] === d : scales![i] === 1;
    if (unchanged) { axes.push(undefined); outShape.push(d); return; }
    if (typeof d !== 'number') throw new Error(`Resize: axis ${i} is symbolic and cannot be resized`);
    // From a scale, ONNX Runtime computes the size in float32 (scales are float tensors): mirror it.
    const outSize = sizes ? sizes[i]! : Math.floor(Math.fround(d * scales![i]!));
    if (!(outSize >= 1)) throw new Error(`Resize: axis ${i} would have size ${outSize}`);
    axes.push({ inSize: d, outSize, scale: sizes ? outSize / d : scales![i]! });
    outShape.push(outSize);
  });
  return { outShape, axes };
}

/** Resolve a Resize node for differentiation: the modes advrun supports, and static sizes. */
export function resizeGeometry(graph: Graph, node: Node, x: Shape): ResizeGeometry {
  const mode = attrString(node, 'mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear') throw new Error(`Resize mode "${mode}" is not supported (nearest, linear)`);
  const coordinate = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  if (!COORDINATE_MODES.includes(coordinate)) throw new Error(`Resize coordinate_transformation_mode "${coordinate}" is not supported (${COORDINATE_MODES.join(', ')})`);
  const nearest = attrString(node, 'nearest_mode', 'round_prefer_floor');
  if (!NEAREST_MODES.includes(nearest)) throw new Error(`Resize nearest_mode "${nearest}" is not supported`);
  if (attrInt(node, 'antialias', 0) !== 0) throw new Error('Resize with antialias=1 is not supported');
  if (node.attrs.axes) throw new Error('Resize with the axes attribute is not supported');
  if (attrString(node, 'keep_aspect_ratio_policy', 'stretch') !== 'stretch') throw new Error('Resize keep_aspect_ratio_policy other than stretch is not supported');
  const sized = resizeAxes(graph, node, x);
  if (!sized) throw new Error('Resize: scales/sizes must be constants (opset 11+) to differentiate it');
  return { mode, coordinate: coordinate as CoordinateMode, nearest: nearest as NearestMode, ...sized };
}

/** x_original for output coordinate `x` (ONNX's coordinate_transformation_mode). */
function originalCoordinate(x: number, a: ResizeAxis, mode: CoordinateMode): number {
  switch (mode) {
    case 'half_pixel': return (x + 0.5) / a.scale - 0.5;
    case 'pytorch_half_pixel': return a.outSize > 1 ? (x + 0.5) / a.scale - 0.5 : 0;
    case 'align_corners': return a.outSize === 1 ? 0 : (x * (a.inSize - 1)) / (a.outSize - 1);
    case 'asymmetric': return x / a.scale;
    case 'tf_half_pixel_for_nn': return (x + 0.5) / a.scale;
  }
}

function nearestIndex(v: number, mode: NearestMode): number {
  switch (mode) {
    case 'floor': return Math.floor(v);
    case 'ceil': return Math.ceil(v);
    // Exactly halfway goes down (up); otherwise ordinary rounding.
    case 'round_prefer_floor': return v - Math.floor(v) === 0.5 ? Math.floor(v) : Math.round(v);
    case 'round_prefer_ceil': return v - Math.floor(v) === 0.5 ? Math.ceil(v) : Math.round(v);
  }
}

/** The interpolation matrix of one axis, row-major [outSize, inSize] in float64. */
export function interpolationMatrix(a: ResizeAxis, g: Pick<ResizeGeometry, 'mode' | 'coordinate' | 'nearest'>): Float64Array {
  const m = new Float64Array(a.outSize * a.inSize);
  const clamp = (i: number) => Math.min(Math.max(i, 0), a.inSize - 1);
  for (let o = 0; o < a.outSize; o++) {
    const x = originalCoordinate(o, a, g.coordinate);
    if (g.mode === 'nearest') {
      m[o * a.inSize + clamp(nearestIndex(x, g.nearest))] = 1;
      continue;
    }
    const lo = Math.floor(x), r = x - lo;
    m[o * a.inSize + clamp(lo)] += 1 - r;
    m[o * a.inSize + clamp(lo + 1)] += r;
  }
  return m;
}
