// The machine's practical FP32 peak as ONNX Runtime reaches it: the best rate of a large square
// MatMul (the op MLAS tunes hardest), with the same thread count as the benchmark.

import { newGraph } from '../ir/builder.js';
import { makeTensor } from '../ir/tensor.js';
import { Rng } from '../util/random.js';
import { CompiledGraph, toOrt } from './session.js';

export async function measurePeakGflops(threads: number, size = 1536, iters = 6): Promise<number> {
  const { graph, b } = newGraph('peak');
  const a = graph.addInput('a', 'float32', [size, size]);
  const c = graph.addInput('c', 'float32', [size, size]);
  graph.markOutput(b.matmul(a, c));
  const s = await CompiledGraph.create(graph, { threads });
  const rng = new Rng(0);
  const fill = () => toOrt(makeTensor('float32', [size, size], rng.fillUniform(new Float32Array(size * size), -1, 1)));
  const feeds = { a: fill(), c: fill() };
  let best = Infinity;
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    best = Math.min(best, performance.now() - t0);
  }
  await s.release();
  return (2 * size ** 3) / (best / 1000) / 1e9;
}
