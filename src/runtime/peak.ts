// The machine's practical FP32 peak as ONNX Runtime reaches it, with the same thread count as the
// benchmark: the best rate of a large square MatMul and of a 3x3 convolution with constant weights
// (which ONNX Runtime runs as its blocked NCHWc direct convolution), whichever is higher.

import { newGraph } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import { makeTensor, numel, type Tensor } from '../ir/tensor.js';
import { Rng } from '../util/random.js';
import { CompiledGraph, toOrt } from './session.js';

const rng = new Rng(0);
const random = (dims: number[]) => makeTensor('float32', dims, rng.fillUniform(new Float32Array(numel(dims)), -1, 1));

async function bestMs(graph: Graph, feeds: Record<string, Tensor>, threads: number, iters: number): Promise<number> {
  const s = await CompiledGraph.create(graph, { threads });
  const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)]));
  let best = Infinity;
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await s.run(ortFeeds);
    best = Math.min(best, performance.now() - t0);
  }
  await s.release();
  return best;
}

export interface PeakMeasurement { gflops: number; matmulGflops: number; convGflops: number }

export async function measurePeakGflops(threads: number, iters = 6): Promise<PeakMeasurement> {
  const size = 1536;
  const mm = newGraph('peak_matmul');
  mm.graph.markOutput(mm.b.matmul(mm.graph.addInput('a', 'float32', [size, size]), mm.graph.addInput('c', 'float32', [size, size])));
  const matmulMs = await bestMs(mm.graph, { a: random([size, size]), c: random([size, size]) }, threads, iters);
  // 3x3 convolutions of typical early / mid / deep ResNet layers; the best one counts.
  let convGflops = 0;
  for (const [n, ch, hw] of [[128, 64, 32], [64, 128, 28], [128, 256, 8]] as const) {
    const cv = newGraph('peak_conv');
    const w = cv.graph.addInitializer('w', random([ch, ch, 3, 3]));
    cv.graph.markOutput(cv.b.op('Conv', [cv.graph.addInput('x', 'float32', [n, ch, hw, hw]), w], { pads: [1, 1, 1, 1] }));
    const ms = await bestMs(cv.graph, { x: random([n, ch, hw, hw]) }, threads, iters);
    convGflops = Math.max(convGflops, (2 * n * ch * hw * hw * ch * 9) / (ms / 1000) / 1e9);
  }
  const matmulGflops = (2 * size ** 3) / (matmulMs / 1000) / 1e9;
  return { gflops: Math.max(matmulGflops, convGflops), matmulGflops, convGflops };
}
