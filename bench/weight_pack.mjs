// Times the in-graph weight packing of advrun's NCHWc lowering (src/runtime/nchwc.ts packWeight: a MatMul by
// the identity with its left operand transposed, then a Transpose of block rows) against the single 6-D
// Transpose it replaced, on the weights of PreActResNet-18's layers, and checks both give the same bytes.
//   node bench/weight_pack.mjs [--threads 2] [--iters 15]      (after `npm run build`)
import { parseArgs } from 'node:util';
import { newGraph } from '../dist/ir/builder.js';
import { makeTensor } from '../dist/ir/tensor.js';
import { nchwcBlockSize, packWeight } from '../dist/runtime/nchwc.js';
import { CompiledGraph, toOrt } from '../dist/runtime/session.js';
import { Rng } from '../dist/util/random.js';

const { values: opt } = parseArgs({ options: { threads: { type: 'string', default: '2' }, iters: { type: 'string', default: '15' } } });
const threads = Number(opt.threads), iters = Number(opt.iters);
const block = await nchwcBlockSize();
if (block <= 1) throw new Error('this ONNX Runtime build has no NCHWc kernels: nothing is packed');

const formulations = {
  // The previous pack: [M/B, B, C/B, B, kh, kw] -> [M/B, C/B, kh, kw, B, B] in one Transpose.
  'one 6-D Transpose': (b, w, [M, C, kh, kw]) => b.reshape(b.op('Transpose', [b.reshape(w, [M / block, block, C / block, block, kh, kw])], { perm: [0, 2, 4, 5, 3, 1] }), [M, C, kh, kw]),
  'packWeight (MatMul + row Transpose)': (b, w) => packWeight(b, w, b.constant(makeTensor('float32', [block, block], Array.from({ length: block * block }, (_, i) => (i % (block + 1) === 0 ? 1 : 0)))), 'pack'),
};

const rng = new Rng(0);
console.log(`threads ${threads}, block ${block}, median of ${iters} runs, ms`);
console.log(`| weight | ${Object.keys(formulations).join(' | ')} |`);
console.log(`| --- | ${Object.keys(formulations).map(() => '---:').join(' | ')} |`);
for (const C of [64, 128, 256, 512]) {
  const dims = [C, C, 3, 3];
  const w = toOrt(makeTensor('float32', dims, rng.fillUniform(new Float32Array(C * C * 9), -1, 1)));
  const times = [], outputs = [];
  for (const f of Object.values(formulations)) {
    const { graph, b } = newGraph('pack');
    const x = graph.addInput('w', 'float32', dims);
    graph.markOutput(f(b, x, dims));
    const s = await CompiledGraph.create(graph, { threads, nchwc: false });
    outputs.push(Object.values(await s.run({ w }))[0].data);
    const t = [];
    for (let i = 0; i < iters; i++) { const t0 = performance.now(); await s.run({ w }); t.push(performance.now() - t0); }
    await s.release();
    times.push(t.sort((a, c) => a - c)[Math.floor(iters / 2)]);
  }
  if (outputs[1].some((v, i) => v !== outputs[0][i])) throw new Error(`${C}x${C}x3x3: the two packs differ`);
  console.log(`| ${C}x${C}x3x3 | ${times.map((t) => t.toFixed(2)).join(' | ')} |`);
}
