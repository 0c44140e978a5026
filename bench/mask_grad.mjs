// Masked gradients (ReLU, Clip, HardSigmoid backward): Where(mask, g, 0) against g * Cast(mask), on activation
// shapes of PreActResNet-18 (w64's first stage, w16's first stage), in ONNX Runtime. The evidence for
// maskGrad in src/autodiff/rules/elementwise.ts (bench/RESULTS.md).
//   node bench/mask_grad.mjs [--threads 2]     (after `npm run build`)
import { parseArgs } from 'node:util';
import { newGraph } from '../dist/ir/builder.js';
import { makeTensor } from '../dist/ir/tensor.js';
import { CompiledGraph, toOrt } from '../dist/runtime/session.js';
import { Rng } from '../dist/util/random.js';

const { values: opt } = parseArgs({ options: { threads: { type: 'string', default: '2' } } });
const rng = new Rng(1);
const variants = {
  'Where(x > 0, g, 0)': (b, x, g) => b.where(b.greater(x, b.scalar(0)), g, b.scalar(0)),
  'g * Cast(x > 0)': (b, x, g) => b.mul(g, b.cast(b.greater(x, b.scalar(0)), 'float32')),
};
console.log(`threads ${opt.threads}, median of 15 runs, ms (the output is copied back to JS in both)`);
for (const dims of [[128, 64, 32, 32], [128, 16, 28, 28]]) {
  const n = dims.reduce((a, b) => a * b, 1);
  const feeds = { x: toOrt(makeTensor('float32', dims, rng.fillUniform(new Float32Array(n), -1, 1))), g: toOrt(makeTensor('float32', dims, rng.fillUniform(new Float32Array(n), -1, 1))) };
  const row = [];
  let first;
  for (const [name, f] of Object.entries(variants)) {
    const { graph, b } = newGraph('mask');
    graph.markOutput(f(b, graph.addInput('x', 'float32', dims), graph.addInput('g', 'float32', dims)));
    const s = await CompiledGraph.create(graph, { threads: Number(opt.threads), memArena: true });
    const out = (await s.run(feeds))[s.outputNames[0]].data;
    if (first && out.some((v, i) => v !== first[i])) throw new Error('the two formulations disagree'); // finite inputs: identical
    first ??= out;
    const t = [];
    for (let i = 0; i < 15; i++) { const t0 = performance.now(); await s.run(feeds); t.push(performance.now() - t0); }
    await s.release();
    row.push(`${name} ${t.sort((a, c) => a - c)[7].toFixed(2)}`);
  }
  console.log(`[${dims}]: ${row.join(', ')}`);
}
