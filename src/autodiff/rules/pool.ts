// VJP rules for pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//
// Max pooling routes each output's cotangent to ONE input element, the first maximum of its window in
// row-major scan order. That is PyTorch's rule (max_pool2d's backward scatters to the argmax its forward
// recorded, and the forward keeps the first of equal values) and ONNX Runtime's (its MaxPool Indices use
// a strict > while scanning). Splitting the cotangent among tied elements (TensorFlow's "all maxima"
// masks) would disagree with PyTorch whenever inputs repeat, e.g. after a ReLU produced zeros.

import type { Builder } from '../../ir/builder.js';
import { attrInt, attrInts, type Node } from '../../ir/graph.js';
import { windowGeometry, type WindowGeometry } from '../../ir/conv-geometry.js';
import { makeTensor } from '../../ir/tensor.js';
import { registerCustomVjp, registerVjp } from '../registry.js';
import { reshapeLike, staticDim, staticDims } from './conv.js';

function poolGeometry(b: Builder, node: Node): { geo: WindowGeometry; S: number[]; O: number[] } {
  const x = node.inputs[0]!;
  const S = staticDims(b, x, 2);
  const geo = windowGeometry(node, S, attrInts(node, 'kernel_shape'));
  return { geo, S, O: staticDims(b, node.outputs[0]!, 2) };
}

// Second order (Hessian-vector products through a max pool): the MaxPool gradient below is a scatter-add,
// linear in the cotangents it scatters, whose adjoint gathers at the same positions. The positions are
// piecewise constant in x, so nothing flows to them.
const SCATTER_ADD_VJP = 'advrun.maxpool.scatterAdd';
registerCustomVjp(SCATTER_ADD_VJP, ({ b, node, gradOutputs: [g], needs }) => [
  needs(0) ? g : undefined,
  undefined,
  needs(2) ? b.op('Gather', [g!, node.inputs[1]!], { axis: 0 }) : undefined,
]);

// MaxPool: ask ONNX Runtime for the argmax. A second MaxPool node with the same window and the optional
// Indices output (storage_order 0: row-major, flattened over N, C and the spatial dims, padding excluded)
// recomputes the forward once; unless the forward node already produced row-major Indices, then those
// are reused. The cotangents are then scatter-added to those positions (ScatterElements, reduction
// "add": overlapping windows can pick the same element). The alternative, rebuilding every window from
// strided Slices and comparing with Equal, costs several full passes per kernel offset.
registerVjp('MaxPool', ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const x = input(0);
  if (b.graph.opset < 16) throw new Error(`the MaxPool gradient needs ScatterElements with reduction "add" (opset >= 16); the graph uses opset ${b.graph.opset}`);
  let indices = node.outputs[1] && attrInt(node, 'storage_order', 0) === 0 ? node.outputs[1] : undefined;
  if (!indices) indices = b.graph.addNode('MaxPool', [x], { ...node.attrs, storage_order: 0 }, { outputs: 2 })[1]!;
  const zeros = b.reshape(b.zerosLike(x), [-1]);
  const flatIdx = b.reshape(indices, [-1]);
  const flat = b.op('ScatterElements', [zeros, flatIdx, b.reshape(gy!, [-1])], { axis: 0, reduction: 'add' }, { customVjp: SCATTER_ADD_VJP });
  return [reshapeLike(b, flat, x)];
});

/**
 * Per axis, how many of an output position's window taps the AveragePool divisor counts: taps inside the
 * input, or with count_include_pad also taps in the explicit pads (never taps of a ceil_mode window that
 * run past the end padding). These are PyTorch's avg_pool rules, which ONNX Runtime follows.
 */
function tapCounts(geo: WindowGeometry, S: number[], O: number[], includePad: boolean): number[][] {
  const r = S.length;
  return S.map((n, i) => Array.from({ length: O[i]! }, (_, o) => {
    let count = 0;
    for (let j = 0; j < geo.kernel[i]!; j++) {
      const p = o * geo.strides[i]! - geo.pads[i]! + j * geo.dilations[i]!;
      if (includePad ? p >= -geo.pads[i]! && p < n + geo.pads[i + r]! : p >= 0 && p < n) count++;
    }
    return count;
  }));
}

// AveragePool: y[o] = (1/count[o]) * sum of the window's taps inside the input, so
//   dx = ConvTranspose(gy / count, ones kernel) with the pooling window: every tap receives its output's
//   share; taps in the padding fall outside ConvTranspose's (cropped) output.
// Channels are independent, so N and C are folded into ConvTranspose's batch ([N*C, 1, *O]) and the kernel
// is a single [1, 1, *k] block of ones.
registerVjp('AveragePool', ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const x = input(0);
  const { geo, S, O } = poolGeometry(b, node);
  const r = S.length;
  const counts = tapCounts(geo, S, O, attrInt(node, 'count_include_pad', 0) === 1);
  const inv: number[] = [];
  const visit = (i: number, idx: number[]) => {
    if (i === r) { inv.push(1 / idx.reduce((a, o, ax) => a * counts[ax]![o]!, 1)); return; }
    for (let o = 0; o < O[i]!; o++) visit(i + 1, [...idx, o]);
  };
  visit(0, []);
  const dtype = b.dtype(x);
  const scaled = b.mul(gy!, b.constant(makeTensor(dtype, O, inv)));
  const C = staticDim(b, x, 1);
  const ones = b.constant(makeTensor(dtype, [1, 1, ...geo.kernel], new Array(geo.kernel.reduce((a, k) => a * k, 1)).fill(1)));
  // End pads are what the last window needs (a ceil_mode window may run past the explicit end pad);
  // output_padding then adds the trailing input rows no window reached (floor mode), so the result is S.
  const span = geo.kernel.map((k, i) => (k - 1) * geo.dilations[i]! + 1);
  const padsBegin = geo.pads.slice(0, r);
  const padsEnd = S.map((n, i) => Math.max(0, geo.strides[i]! * (O[i]! - 1) + span[i]! - n - padsBegin[i]!));
  const outPad = S.map((n, i) => n + padsBegin[i]! + padsEnd[i]! - geo.strides[i]! * (O[i]! - 1) - span[i]!);
  const gx = b.op('ConvTranspose', [b.reshape(scaled, [-1, 1, ...O]), ones], {
    kernel_shape: geo.kernel, strides: geo.strides, dilations: geo.dilations,
    pads: [...padsBegin, ...padsEnd], output_padding: outPad.some((p) => p !== 0) ? outPad : undefined,
  });
  return [b.reshape(gx, [-1, C, ...S])];
});

// GlobalAveragePool: every element gets gy / (number of spatial positions).
registerVjp('GlobalAveragePool', ({ b, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const x = input(0);
  const P = staticDims(b, x, 2).reduce((a, n) => a * n, 1);
  return [b.op('Expand', [b.scale(gy!, 1 / P), b.shapeOf(x)])];
});

// GlobalMaxPool: like MaxPool, the whole cotangent goes to the first maximum (ArgMax keeps the first
// index of equal values, select_last_index = 0), selected by comparing positions with that index.
registerVjp('GlobalMaxPool', ({ b, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const x = input(0);
  const C = staticDim(b, x, 1);
  const P = staticDims(b, x, 2).reduce((a, n) => a * n, 1);
  const first = b.op('ArgMax', [b.reshape(x, [-1, C, P])], { axis: 2, keepdims: 1, select_last_index: 0 }); // [N, C, 1]
  const positions = b.constant(makeTensor('int64', [P], Array.from({ length: P }, (_, i) => i)));
  const hit = b.equal(positions, first);                                                                   // [N, C, P]
  const g = b.where(hit, b.reshape(gy!, [-1, C, 1]), b.scalarLike(0, gy!));
  return [reshapeLike(b, g, x)];
});
