// Times the formulations advrun can emit for one convolution layer's gradients, in ONNX Runtime, on
// this machine: the evidence behind the choices in src/autodiff/rules/conv.ts (see bench/RESULTS.md).
//   node bench/conv_grad_formulations.mjs [--threads 2] [--iters 7] [--pieces 2,6,12]     (after `npm run build`)
// --pieces adds one weight-gradient column per piece size in MiB of columns (how COLUMN_CHUNK_BYTES was chosen).
// Per layer shape (batch 128, PreActResNet-18 stages): forward Conv; input gradient as ConvTranspose vs
// a Conv with the flipped weight (stride 1); weight gradient with im2col over the batch vs per-image
// one-hot columns (whole batch, and in pieces of COLUMN_CHUNK_BYTES as a planned train step builds them) vs one GEMM per kernel offset
// (each offset's input values gathered by Pad + Slice, or by a MatMul with a 0/1 selection matrix). Prints the median ms of each and checks the formulations agree.
import { parseArgs } from 'node:util';
import { COLUMN_CHUNK_BYTES, columnsOverBatch, columnsPerImage, columnsPerImageInChunks, columnsPerOffset } from '../dist/autodiff/rules/conv.js';
import { newGraph } from '../dist/ir/builder.js';
import { makeTensor } from '../dist/ir/tensor.js';
import { CompiledGraph, toOrt } from '../dist/runtime/session.js';
import { Rng } from '../dist/util/random.js';

const { values: opt } = parseArgs({ options: { threads: { type: 'string', default: '2' }, iters: { type: 'string', default: '7' }, pieces: { type: 'string', default: '' } } });
const threads = Number(opt.threads), iters = Number(opt.iters);
const pieceMiB = opt.pieces ? opt.pieces.split(',').map(Number) : [];
const pieceCol = (mib) => `dw in ${mib} MiB pieces`;
// [N, C, M, H, kernel, stride, pad]
const LAYERS = [
  [128, 16, 16, 28, 3, 1, 1], [128, 32, 32, 14, 3, 1, 1], [128, 64, 64, 7, 3, 1, 1],
  [128, 64, 64, 32, 3, 1, 1], [128, 128, 128, 16, 3, 1, 1], [128, 256, 256, 8, 3, 1, 1], [128, 512, 512, 4, 3, 1, 1],
  [128, 64, 128, 32, 3, 2, 1], [128, 64, 128, 32, 1, 2, 0], [128, 128, 256, 16, 3, 2, 1], [128, 256, 512, 8, 3, 2, 1],
  [128, 128, 128, 4, 3, 1, 1], [128, 64, 128, 7, 3, 2, 1],
];

async function timeLayer([N, C, M, H, k, s, p]) {
  const Ho = Math.floor((H + 2 * p - k) / s) + 1;
  const rng = new Rng(1);
  const rand = (dims) => toOrt(makeTensor('float32', dims, rng.fillUniform(new Float32Array(dims.reduce((a, b) => a * b, 1)), -1, 1)));
  const feeds = { x: rand([N, C, H, H]), gy: rand([N, M, Ho, Ho]), w: rand([M, C, k, k]) };
  const win = { kernel: [k, k], strides: [s, s], dilations: [1, 1], padsBegin: [p, p] };
  const conv = { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] };
  const flippedConv = (b, x, gy, w) => b.op('Conv', [gy, b.slice(b.transpose(w, [1, 0, 2, 3]), [-1, -1], [-k - 1, -k - 1], [2, 3], [-1, -1])], { kernel_shape: [k, k], pads: Array(4).fill(k - 1 - p) });
  // Columns named "NCHWc" run with advrun's CPU lowering of run-time-weight convolutions (src/runtime/nchwc.ts,
  // on by default); all others with ONNX Runtime's own Conv (im2col + GEMM for weights that are inputs).
  const imagesPerPiece = (bytes) => Math.max(1, Math.floor(bytes / (C * k * k * Ho * Ho * 4)));
  const variants = {
    'forward Conv': (b, x, gy, w) => b.op('Conv', [x, w], conv),
    'forward NCHWc': (b, x, gy, w) => b.op('Conv', [x, w], conv),
    'dx ConvTranspose': (b, x, gy, w) => b.op('ConvTranspose', [gy, w], { ...conv, output_padding: H - (s * (Ho - 1) + k - 2 * p) ? [H - (s * (Ho - 1) + k - 2 * p), H - (s * (Ho - 1) + k - 2 * p)] : undefined }),
    ...(s === 1 ? { 'dx flipped Conv': flippedConv, 'dx flipped NCHWc': flippedConv } : {}),
    'dw over batch': (b, x, gy) => columnsOverBatch(b, x, gy, win, 1),
    'dw per image': (b, x, gy) => columnsPerImage(b, x, gy, win),
    'dw per offset, slices': (b, x, gy) => columnsPerOffset(b, x, gy, win, 'slices'),
    'dw per offset, selection': (b, x, gy) => columnsPerOffset(b, x, gy, win, 'selection'),
    'dw in pieces': (b, x, gy) => columnsPerImageInChunks(b, x, gy, win, N, imagesPerPiece(COLUMN_CHUNK_BYTES)),
    ...Object.fromEntries(pieceMiB.map((mib) => [pieceCol(mib), (b, x, gy) => columnsPerImageInChunks(b, x, gy, win, N, imagesPerPiece(mib * 2 ** 20))])),
  };
  const out = {};
  const results = {};
  for (const [name, f] of Object.entries(variants)) {
    const { graph, b } = newGraph(name.replace(/\W+/g, '_'));
    const x = graph.addInput('x', 'float32', [N, C, H, H]), gy = graph.addInput('gy', 'float32', [N, M, Ho, Ho]), w = graph.addInput('w', 'float32', [M, C, k, k]);
    graph.markOutput(f(b, x, gy, w));
    const sess = await CompiledGraph.create(graph, { threads, nchwc: name.includes('NCHWc') });
    const fd = Object.fromEntries(sess.inputNames.map((n) => [n, feeds[n]]));
    results[name] = Object.values(await sess.run(fd))[0].data;
    const t = [];
    for (let i = 0; i < iters; i++) { const t0 = performance.now(); await sess.run(fd); t.push(performance.now() - t0); }
    await sess.release();
    out[name] = t.sort((a, c) => a - c)[Math.floor(iters / 2)];
  }
  const diff = (a, c) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - c[i])), 0);
  const scale = (a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const dwErr = Math.max(...['dw per image', 'dw per offset, slices', 'dw per offset, selection', 'dw in pieces', ...pieceMiB.map(pieceCol)].map((k) => diff(results['dw over batch'], results[k]) / scale(results['dw over batch'])));
  const dxErr = results['dx flipped Conv'] ? Math.max(...['dx flipped Conv', 'dx flipped NCHWc'].map((v) => diff(results['dx ConvTranspose'], results[v]) / scale(results['dx ConvTranspose']))) : 0;
  const fwErr = diff(results['forward Conv'], results['forward NCHWc']) / scale(results['forward Conv']);
  if (dwErr > 1e-5 || dxErr > 1e-5 || fwErr > 1e-5) throw new Error(`formulations disagree: dw ${dwErr}, dx ${dxErr}, forward ${fwErr}`);
  return out;
}

console.log(`threads ${threads}, median of ${iters} runs, ms`);
const cols = ['forward Conv', 'forward NCHWc', 'dx ConvTranspose', 'dx flipped Conv', 'dx flipped NCHWc', 'dw over batch', 'dw per image', 'dw per offset, slices', 'dw per offset, selection', 'dw in pieces', ...pieceMiB.map(pieceCol)];
console.log(`| layer (N, C->M, HxW, k, stride) | ${cols.join(' | ')} |`);
console.log(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
for (const l of LAYERS) {
  const t = await timeLayer(l);
  const [N, C, M, H, k, s] = l;
  console.log(`| ${N}, ${C}->${M}, ${H}x${H}, ${k}x${k}, ${s} | ${cols.map((c) => (t[c] === undefined ? '-' : t[c].toFixed(1))).join(' | ')} |`);
}
