// VJP rules for Conv and ConvTranspose, emitted as standard ONNX ops only (ONNX Runtime's ConvGrad
// lives in the com.microsoft training domain, which the inference builds do not ship).
//
// Notation: x [N, C, *S] input, w [M, C/G, *k] weight, y [N, M, *O] output, G groups,
// strides s, dilations d, pads pb (begin) / pe (end), span = (k-1)*d + 1 per spatial axis.
//
// - Input gradient of a stride-1 ungrouped Conv is another Conv: the output gradient convolved with the
//   spatially flipped, in/out-swapped weight, padded by span-1-p. ONNX Runtime's Conv runs faster than
//   its ConvTranspose (GEMM + a scalar col2im), see bench/RESULTS.md. Strided or grouped convolutions use
//   ConvTranspose with the same weight, strides, dilations, groups and pads; output_padding restores the
//   input size (rows the forward windows never reached get zero).
// - Weight gradient contracts the output gradient with the input's columns (im2col) over N and the
//   output positions; which formulation is fastest depends on the layer's shape (convWeightGrad).
// - ConvTranspose's own VJP uses the same two pieces with the roles swapped, so second-order
//   products (Hessian-vector, gradient penalties) can go back through convolution layers.

import type { Builder } from '../../ir/builder.js';
import { attrInt, attrInts, attrString, type Node, type Shape } from '../../ir/graph.js';
import { windowGeometry } from '../../ir/conv-geometry.js';
import { BYTES_PER_ELEMENT, makeTensor, numel } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';

/** Static sizes of `name`'s dims from `from` on (spatial dims must be static to build window graphs). */
export function staticDims(b: Builder, name: string, from: number): number[] {
  const s = b.shape(name);
  return s.slice(from).map((d, i) => {
    if (typeof d !== 'number') throw new Error(`dimension ${from + i} of "${name}" [${s}] must be static`);
    return d;
  });
}

/** Static size of one dim (channels, usually). */
export function staticDim(b: Builder, name: string, axis: number): number {
  return staticDims(b, name, axis)[0]!;
}

/**
 * A Reshape target for `shape` that also works when its leading (batch) dim is symbolic: -1 there.
 * Every other dim must be static.
 */
export function batchShape(shape: Shape): number[] {
  return shape.map((d, i) => {
    if (typeof d === 'number') return d;
    if (i === 0) return -1;
    throw new Error(`only the batch dimension may be symbolic, got [${shape}]`);
  });
}

/** Reshape `v` to `like`'s shape (batch dim may be symbolic). */
export function reshapeLike(b: Builder, v: string, like: string): string {
  return b.reshape(v, batchShape(b.shape(like)));
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** Sum over the batch and spatial axes: the gradient of a per-channel bias [M] from gy [N, M, ...]. */
export function channelBiasGrad(b: Builder, gy: string): string {
  return b.reduceSum(gy, [0, ...range(b.rank(gy) - 2, 2)], false);
}

/** Every kernel offset (k_0, k_1, ...) in row-major order, the order of a weight's spatial dims. */
function kernelOffsets(kernel: number[]): number[][] {
  let out: number[][] = [[]];
  for (const k of kernel) out = out.flatMap((prefix) => range(k).map((j) => [...prefix, j]));
  return out;
}

export interface ConvWindow {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Begin pads, one per spatial axis (end pads are implied by the output size). */
  padsBegin: number[];
}

/**
 * Weight gradient of a (grouped) convolution that maps `src` [N, C, *S] to `dst` [N, M, *O] with window `win`:
 *   dW[m, c, *k] = sum over n, o of gdst[n, m, *o] * srcpad[n, g(m)*C/G + c, *(o*s + k*d)]
 * returned as [M, C/G, *kernel]. Formulations with the same GEMM work and different overheads
 * (bench/conv_grad_formulations.mjs times them per layer shape; bench/RESULTS.md):
 * - per image (columnsPerImage): one GEMM per image with inner dimension P (output positions), whose
 *   [N, C*K, M] partial products are then summed: the extra traffic per FLOP grows like 1/P. The columns
 *   are K times the layer's input (302 MB for PreActResNet-18 width 64's first stage at batch 128);
 *   given the batch the graph is planned for, they are built a few images at a time
 *   (columnsPerImageInChunks), each piece read back while still in the cache;
 * - over the batch (columnsOverBatch): one GEMM with inner dimension N*P, after im2col copies of the
 *   input: the extra traffic per FLOP grows like 1/M (output channels);
 * - per kernel offset (columnsPerOffset): K GEMMs with inner dimension N*P over each offset's input values,
 *   gathered by Slices of the padded input or by MatMuls with constant 0/1 selection matrices; no column matrix.
 * The choice, in order: grouped -> over the batch; many positions per output channel (P >= M/2, the measured
 * crossover lies between P/M = 0.25 and 0.77) or columns too large to hold whole -> per image, in pieces when
 * planned; an input with at most as many positions as output channels -> per offset by selection; other
 * stride-1 layers (deep ones, or large columns without a plan) -> per offset by Slices; else over the batch.
 */
export function convWeightGrad(b: Builder, src: string, gdst: string, win: ConvWindow, group: number, plannedBatch?: number): string {
  if (group !== 1) return columnsOverBatch(b, src, gdst, win, group);
  const P = numel(staticDims(b, gdst, 2)), M = staticDim(b, gdst, 1);
  const columnsPerExample = staticDim(b, src, 1) * numel(win.kernel) * P;
  const largeColumns = columnsPerExample > PER_IMAGE_MAX_COLUMNS;
  const perImage = P >= PER_IMAGE_MIN_POSITIONS_PER_CHANNEL * M || largeColumns;
  // Each piece first copies its images out of src: worth it only when the columns are at least src's size
  // (not for a strided 1x1 convolution, whose columns are a quarter of its input).
  if (perImage && plannedBatch !== undefined && columnsPerExample >= numel(staticDims(b, src, 1))) {
    const imagesPerChunk = Math.max(1, Math.floor(COLUMN_CHUNK_BYTES / (columnsPerExample * BYTES_PER_ELEMENT[b.dtype(src)])));
    return imagesPerChunk < plannedBatch ? columnsPerImageInChunks(b, src, gdst, win, plannedBatch, imagesPerChunk) : columnsPerImage(b, src, gdst, win);
  }
  if (numel(staticDims(b, src, 2)) <= SELECTION_MAX_INPUT_POSITIONS_PER_CHANNEL * M) return columnsPerOffset(b, src, gdst, win, 'selection');
  if (win.strides.every((s) => s === 1) && (largeColumns || !perImage)) return columnsPerOffset(b, src, gdst, win, 'slices');
  return perImage ? columnsPerImage(b, src, gdst, win) : columnsOverBatch(b, src, gdst, win, 1);
}

/**
 * Input positions per output channel up to which each offset's input values are gathered by a MatMul with a
 * constant 0/1 selection matrix (columnsPerOffset), for any stride: those MatMuls cost at most the layer's
 * weight-gradient GEMM again, but write whole rows where Pad + Slices of a small window copy 16-byte runs
 * and im2col over the batch copies everything twice more. Batch 128, ms a layer, selection vs the formulation
 * it replaced (bench/conv_grad_formulations.mjs, bench/RESULTS.md): 512->512 at 4x4 47 vs 64 (per offset by
 * Slices), 256->256 at 8x8 49 vs 63, 128->256 stride 2 from 16x16 41 vs 84 (im2col over the batch, ratio 1),
 * 256->512 stride 2 from 8x8 27 vs 54; 128->128 at 16x16 (ratio 2) would be 124 vs 71 in pieces.
 */
const SELECTION_MAX_INPUT_POSITIONS_PER_CHANNEL = 1;

/** Without a planned batch, per-image columns larger than this (floats an image; 2 MiB) are not materialised. */
export const PER_IMAGE_MAX_COLUMNS = 1 << 19;

/**
 * Bytes of per-image columns built at a time when the batch is planned. Per layer shape pieces of 4-12 MiB
 * were fastest, 1-2 MiB and 24 MiB slower (`node bench/conv_grad_formulations.mjs --pieces 1,2,4,12,24`,
 * table in bench/RESULTS.md); whole train steps were 8-13 % faster than with the whole batch's columns at once.
 */
export const COLUMN_CHUNK_BYTES = 6 << 20;

/**
 * End padding of a window mapping spatial sizes S to O: exactly what the last window needs. Rows no window
 * reaches (when the forward's floor skipped up to s-1 trailing ones) are simply not padded; either
 * weight-gradient formulation still produces O positions.
 */
function windowEndPads(S: number[], O: number[], win: ConvWindow): number[] {
  return S.map((n, i) => Math.max(0, win.strides[i]! * (O[i]! - 1) + (win.kernel[i]! - 1) * win.dilations[i]! + 1 - n - win.padsBegin[i]!));
}

/** Output positions per output channel from which the per-image weight gradient is the faster one. */
const PER_IMAGE_MIN_POSITIONS_PER_CHANNEL = 0.5;

/**
 * Per-image columns: a depthwise Conv whose constant one-hot kernels copy each window element to its own
 * channel gives cols [N, C*K, *O] (channel order (c, k), the weight's), in one pass inside ONNX Runtime's
 * convolution kernel. One batched MatMul [N, C*K, P] x [N, P, M] (gy's transpose folds into the GEMM) and
 * a sum over N give dW transposed. The columns are the GEMM's left operand, which it reads in place; as the
 * right operand they would be copied into the GEMM's packed panels first (7-50 % slower per layer, measured).
 */
export function columnsPerImage(b: Builder, src: string, gdst: string, win: ConvWindow): string {
  const { kernel, strides, dilations, padsBegin } = win;
  const padsEnd = windowEndPads(staticDims(b, src, 2), staticDims(b, gdst, 2), win);
  const C = staticDim(b, src, 1), M = staticDim(b, gdst, 1);
  const K = numel(kernel), P = numel(staticDims(b, gdst, 2));
  const oneHot = new Float32Array(C * K * K);
  for (let c = 0; c < C; c++) for (let j = 0; j < K; j++) oneHot[(c * K + j) * K + j] = 1;
  const picker = b.constant(makeTensor(b.dtype(src), [C * K, 1, ...kernel], oneHot)); // Conv needs one dtype
  const cols = b.op('Conv', [src, picker], { kernel_shape: kernel, strides, dilations, pads: [...padsBegin, ...padsEnd], group: C });
  const perImage = b.matmul(b.reshape(cols, [-1, C * K, P]), b.transpose(b.reshape(gdst, [-1, M, P]), [0, 2, 1])); // [N, C*K, M]
  return b.reshape(b.transpose(b.reduceSum(perImage, [0], false), [1, 0]), [M, C, ...kernel]);
}

/**
 * columnsPerImage over consecutive pieces of `imagesPerChunk` images, summed. The pieces are Slices of the
 * batch planned for (`plannedBatch`); the last one runs to the end, so a larger batch is still covered in
 * full (its last piece is just larger) and a smaller one leaves trailing pieces empty. Each piece's columns
 * are read by its MatMul right after they are written, while they are still in the cache.
 */
export function columnsPerImageInChunks(b: Builder, src: string, gdst: string, win: ConvWindow, plannedBatch: number, imagesPerChunk: number): string {
  const parts: string[] = [];
  for (let start = 0; start < plannedBatch; start += imagesPerChunk) {
    const end = start + imagesPerChunk >= plannedBatch ? SLICE_TO_END : start + imagesPerChunk;
    parts.push(columnsPerImage(b, b.slice(src, [start], [end], [0]), b.slice(gdst, [start], [end], [0]), win));
  }
  return b.sum(parts);
}

/** A Slice end past any real dimension: the slice runs to the end. */
const SLICE_TO_END = 2 ** 62;

/**
 * im2col over the whole batch: transpose src to [C, N, *S] once (src-sized, cheap), pad it, and take
 * one strided Slice per kernel offset ([C, N, *O] each). Concatenating them on axis 1 gives
 * [C, K*N, *O] whose row-major order is (g, c, k, n, o), so a plain Reshape yields the columns
 * [G, C/G*K, N*P] (K kernel offsets, P output positions) without an element-wise transpose. The output
 * gradient becomes [G, M/G, N*P] (a block copy: whole rows of P move), and one batched MatMul
 * [G, C/G*K, N*P] x [G, N*P, M/G] gives dW per group transposed (a small copy back to (M, C/G, *k)). The
 * columns are the left operand, read in place; the output gradient enters through Transpose(perm [0, 2, 1]),
 * which ONNX Runtime folds into the GEMM (MatMul+Transpose fusion) and packs, the smaller of the two
 * (see columnsPerImage). The batch enters only through -1 in Reshape targets.
 */
export function columnsOverBatch(b: Builder, src: string, gdst: string, win: ConvWindow, group: number): string {
  const O = staticDims(b, gdst, 2);
  const C = staticDim(b, src, 1), M = staticDim(b, gdst, 1);
  const Cg = C / group, Mg = M / group;
  const K = numel(win.kernel), P = numel(O);
  const cols = b.reshape(b.concat(offsetSlices(b, src, O, win), 1), [group, Cg * K, -1]);             // [G, Cg*K, N*P]
  const gyG = b.reshape(b.transpose(b.reshape(gdst, [-1, group, Mg, P]), [1, 2, 0, 3]), [group, Mg, -1]); // [G, Mg, N*P]
  const dwT = b.matmul(cols, b.transpose(gyG, [0, 2, 1]));                                            // [G, Cg*K, Mg]
  return b.reshape(b.transpose(dwT, [0, 2, 1]), [M, Cg, ...win.kernel]);
}

/**
 * One GEMM per kernel offset over the whole batch: for each offset, the input values it meets as [C, N, *O]
 * (`gather`: offsetSlices or offsetSelections), and dW[:, :, k] = gy [M, N*P] x values_k^T [N*P, C]. Unlike
 * im2col over the batch no column matrix is assembled (no Concat copy; one offset's values alive at a time).
 */
export function columnsPerOffset(b: Builder, src: string, gdst: string, win: ConvWindow, gather: 'slices' | 'selection'): string {
  const O = staticDims(b, gdst, 2);
  const C = staticDim(b, src, 1), M = staticDim(b, gdst, 1);
  const P = numel(O);
  const gyT = b.reshape(b.transpose(b.reshape(gdst, [-1, M, P]), [1, 0, 2]), [M, -1]); // [M, N*P]
  const perOffset = (gather === 'selection' ? offsetSelections(b, src, O, win) : offsetSlices(b, src, O, win)).map((slice) =>
    b.unsqueeze(b.matmul(gyT, b.transpose(b.reshape(slice, [C, -1]), [1, 0])), [2])); // [M, N*P] x [N*P, C] -> [M, C, 1]
  return b.reshape(b.concat(perOffset, 2), [M, C, ...win.kernel]);
}

/**
 * src [N, C, *S] transposed to [C, N, *S] and padded once, then one (strided) Slice [C, N, *O] per kernel offset,
 * in the weight's row-major offset order: the input values each offset of the window meets.
 */
function offsetSlices(b: Builder, src: string, O: number[], win: ConvWindow): string[] {
  const S = staticDims(b, src, 2);
  const r = S.length;
  const { strides, dilations, padsBegin } = win;
  const padsEnd = windowEndPads(S, O, win);
  let xt = b.transpose(src, [1, 0, ...range(r, 2)]);
  if ([...padsBegin, ...padsEnd].some((p) => p !== 0)) xt = b.op('Pad', [xt, b.ints([0, 0, ...padsBegin, 0, 0, ...padsEnd])]);
  const padded = S.map((n, i) => n + padsBegin[i]! + padsEnd[i]!);
  return kernelOffsets(win.kernel).map((off) => {
    const starts = off.map((j, i) => j * dilations[i]!);
    const ends = starts.map((st, i) => st + strides[i]! * (O[i]! - 1) + 1);
    const whole = starts.every((st, i) => st === 0 && ends[i] === padded[i] && strides[i] === 1);
    return whole ? xt : b.slice(xt, starts, ends, range(r, 2), strides);
  });
}

/**
 * The same [C, N, *O] values per kernel offset as offsetSlices, gathered by MatMuls: src transposed to
 * [C*N, Pin] (Pin input positions) times a constant 0/1 matrix [Pin, P] whose column o holds a 1 at the
 * input position offset k meets from output position o, and none where that falls into the padding.
 * No Pad, no strided copies; the cost is Pin multiply-adds per value (see SELECTION_MAX_INPUT_POSITIONS_PER_CHANNEL).
 */
function offsetSelections(b: Builder, src: string, O: number[], win: ConvWindow): string[] {
  const S = staticDims(b, src, 2);
  const C = staticDim(b, src, 1);
  const Pin = numel(S), P = numel(O);
  const xt = b.reshape(b.transpose(src, [1, 0, ...range(S.length, 2)]), [-1, Pin]); // [C*N, Pin]
  return kernelOffsets(win.kernel).map((off) => {
    const select = new Float32Array(Pin * P);
    let identity = Pin === P;
    for (let o = 0; o < P; o++) {
      // Output position o's coordinates, then the input coordinates this offset meets from there.
      let rest = o, q = 0, inside = true;
      for (let i = O.length - 1, inStride = 1; i >= 0; i--) {
        const oi = rest % O[i]!;
        rest = Math.floor(rest / O[i]!);
        const si = oi * win.strides[i]! + off[i]! * win.dilations[i]! - win.padsBegin[i]!;
        if (si < 0 || si >= S[i]!) inside = false;
        q += si * inStride;
        inStride *= S[i]!;
      }
      if (inside) select[q * P + o] = 1;
      identity &&= inside && q === o;
    }
    // This offset meets every input position in place (the centre of a same-padded stride-1 window, or a
    // 1x1 one): no MatMul needed.
    if (identity) return b.reshape(xt, [C, -1]);
    return b.reshape(b.matmul(xt, b.constant(makeTensor(b.dtype(src), [Pin, P], select))), [C, -1]);
  });
}

/**
 * Input gradient of Conv(x, w): dx[n, c, i] = sum gy[n, m, o] w[m, c, k] over i = o*s + k*d - pb.
 * Stride 1, one group: a Conv of gy with w transposed to [C, M, *k] and flipped in space, padded by
 * span-1-pb before and span-1-pe after (its output size is then exactly S). Otherwise ConvTranspose.
 */
function convInputGrad(b: Builder, gy: string, w: string, a: ConvAttrs, S: number[], O: number[]): string {
  const r = S.length;
  const span = a.kernel.map((k, i) => (k - 1) * a.dilations[i]! + 1);
  const flippedPads = [...span.map((sp, i) => sp - 1 - a.pads[i]!), ...span.map((sp, i) => sp - 1 - a.pads[i + r]!)];
  if (a.group === 1 && a.strides.every((st) => st === 1) && flippedPads.every((p) => p >= 0)) {
    const spatial = range(r, 2);
    const wFlipped = b.slice(b.transpose(w, [1, 0, ...spatial]), spatial.map(() => -1), a.kernel.map((k) => -k - 1), spatial, spatial.map(() => -1));
    return b.op('Conv', [gy, wFlipped], { kernel_shape: a.kernel, dilations: a.dilations, pads: flippedPads });
  }
  // ConvTranspose produces s*(O-1) + span - pb - pe (+ output_padding) positions; the forward may have
  // skipped up to s-1 trailing input rows (floor in the output size), which output_padding restores.
  const outPad = S.map((n, i) => n - (a.strides[i]! * (O[i]! - 1) + span[i]! - a.pads[i]! - a.pads[i + r]!));
  return b.op('ConvTranspose', [gy, w], {
    kernel_shape: a.kernel, strides: a.strides, dilations: a.dilations, group: a.group,
    pads: a.pads, output_padding: nonZero(outPad),
  });
}

interface ConvAttrs {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Explicit [begin..., end...] pads (auto_pad resolved). */
  pads: number[];
  group: number;
}

function convAttrs(b: Builder, node: Node): ConvAttrs {
  const x = node.inputs[0]!, w = node.inputs[1]!;
  const kernel = attrInts(node, 'kernel_shape', staticDims(b, w, 2));
  const geo = windowGeometry(node, staticDims(b, x, 2), kernel);
  return { kernel, strides: geo.strides, dilations: geo.dilations, pads: geo.pads, group: attrInt(node, 'group', 1) };
}

const nonZero = (v: number[]) => (v.some((p) => p !== 0) ? v : undefined);

// y = Conv(x, w, bias)
registerVjp('Conv', ({ b, node, gradOutputs: [gy], input, needs, plannedBatch }) => {
  const x = input(0), w = input(1);
  const a = convAttrs(b, node);
  const S = staticDims(b, x, 2), O = staticDims(b, gy!, 2);
  const r = S.length;
  const gx = needs(0) ? convInputGrad(b, gy!, w, a, S, O) : undefined;
  const gw = needs(1) ? convWeightGrad(b, x, gy!, { ...a, padsBegin: a.pads.slice(0, r) }, a.group, plannedBatch) : undefined;
  const gb = node.inputs[2] && needs(2) ? channelBiasGrad(b, gy!) : undefined;
  return [gx, gw, gb];
});

// y = ConvTranspose(x, w, bias): the adjoint of Conv(., w) with the same window, so
//   dx = Conv(gy, w) with that window (x's side is the conv output side), and
//   dw[ci, co, k] = sum gy_pad[n, co, i*s + k*d] * x[n, ci, i]: the Conv weight gradient with src = gy, gdst = x.
registerVjp('ConvTranspose', ({ b, node, gradOutputs: [gy], input, needs, plannedBatch }) => {
  const x = input(0), w = input(1);
  if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET' || node.attrs.output_shape) {
    // Implicit ConvTranspose padding (SAME_* / output_shape) is not resolved here; advrun itself only emits explicit pads.
    throw new Error('differentiating ConvTranspose needs explicit pads (auto_pad and output_shape are not supported)');
  }
  const S = staticDims(b, x, 2);
  const r = S.length;
  const kernel = attrInts(node, 'kernel_shape', staticDims(b, w, 2));
  const strides = attrInts(node, 'strides', Array(r).fill(1));
  const dilations = attrInts(node, 'dilations', Array(r).fill(1));
  const pads = attrInts(node, 'pads', Array(2 * r).fill(0));
  const group = attrInt(node, 'group', 1);
  let gx: string | undefined;
  if (needs(0)) {
    // Conv's output size floor((s*(S-1) + output_padding)/s) + 1 is S because output_padding < stride
    // (ONNX Runtime rejects larger output_padding in the forward ConvTranspose).
    gx = b.op('Conv', [gy!, w], { kernel_shape: kernel, strides, dilations, group, pads });
  }
  const gw = needs(1) ? convWeightGrad(b, gy!, x, { kernel, strides, dilations, padsBegin: pads.slice(0, r) }, group, plannedBatch) : undefined;
  const gb = node.inputs[2] && needs(2) ? channelBiasGrad(b, gy!) : undefined;
  return [gx, gw, gb];
});
