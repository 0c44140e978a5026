// Would compiling the weights into the train-step graph pay off? Times one PreActResNet-18 train step with
// the state as graph inputs (what advrun runs) against the same graph with the parameters compiled in as
// constants, plus what that costs per step: re-serialising the graph, building the session, its first run.
//   node bench/train_step_compiled_state.mjs [width inChannels imageSize batch]   (after `npm run build`)
// The numbers in bench/RESULTS.md ("measured and rejected") come from `64 3 32 128`.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTensor } from '../dist/ir/tensor.js';
import { graphToModelProto, modelProtoToGraph } from '../dist/onnx/io.js';
import { CompiledGraph, toOrt } from '../dist/runtime/session.js';
import { ensureArtifacts } from '../dist/train/artifacts.js';
import { initialState } from '../dist/train/runtime.js';
import { Rng } from '../dist/util/random.js';

const [width, ch, size, batch] = (process.argv.length > 2 ? process.argv.slice(2) : ['64', '3', '32', '128']).map(Number);
const model = { arch: 'preact-resnet18', width, inChannels: ch, imageSize: size, numClasses: 10, activation: { kind: 'relu' }, mean: Array(ch).fill(0.5), std: Array(ch).fill(0.25) };
const art = ensureArtifacts({ model, loss: { kind: 'ce' }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false } }, mkdtempSync(join(tmpdir(), 'advrun-bench-')));
const state = initialState(art.manifest, 0);
const rng = new Rng(0);
const feeds = {
  input: toOrt(makeTensor('float32', [batch, ch, size, size], rng.fillUniform(new Float32Array(batch * ch * size * size), 0, 1))),
  labels: toOrt(makeTensor('int64', [batch], BigInt64Array.from({ length: batch }, () => BigInt(rng.int(10))))),
  lr: toOrt(makeTensor('float32', [], [0.01])),
};
const median = async (s, f, k = 3) => {
  const t = [];
  for (let i = 0; i < k; i++) { const t0 = performance.now(); await s.run(f); t.push(performance.now() - t0); }
  return t.sort((a, b) => a - b)[Math.floor(k / 2)];
};

const asInputs = await CompiledGraph.create(art.bytes.train_step, { threads: 2 });
const inputFeeds = { ...feeds };
for (const n of asInputs.inputNames) if (state.has(n)) inputFeeds[n] = toOrt(state.get(n));
await asInputs.run(inputFeeds);
console.log(`state as inputs: train step ${(await median(asInputs, inputFeeds)).toFixed(0)} ms`);
await asInputs.release();

const params = new Set(art.manifest.params.map((p) => p.name));
const t0 = performance.now();
const bytes = graphToModelProto(modelProtoToGraph(art.bytes.train_step, 'train_step'), {}, new Map([...state].filter(([n]) => params.has(n))));
const t1 = performance.now();
const compiled = await CompiledGraph.create(bytes, { threads: 2 });
const t2 = performance.now();
const compiledFeeds = { ...inputFeeds };
for (const p of params) delete compiledFeeds[p];
const first = await median(compiled, compiledFeeds, 1);
console.log(`parameters compiled in: serialise ${(t1 - t0).toFixed(0)} ms, build session ${(t2 - t1).toFixed(0)} ms, first run ${first.toFixed(0)} ms, train step ${(await median(compiled, compiledFeeds)).toFixed(0)} ms`);
await compiled.release();
