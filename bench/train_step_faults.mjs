// Time, minor page faults and CPU time (user/system) of each PreActResNet-18 train step in a train-step-only
// process: the evidence for the page-fault paragraph of bench/RESULTS.md (32 MiB activations are fresh mmaps
// each step). ARENA=1 turns ONNX Runtime's CPU arena on; glibc tunables go in GLIBC_TUNABLES; peak RSS:
// wrap in /usr/bin/time -f %M.
//   node bench/train_step_faults.mjs WIDTH IN_CHANNELS IMAGE_SIZE BATCH     e.g. 64 3 32 128
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dist = new URL('../dist/', import.meta.url).pathname;
const [width, ch, size, batch] = process.argv.slice(2).map(Number);
const { makeTensor } = await import(join(dist, 'ir/tensor.js'));
const { CompiledGraph, toOrt } = await import(join(dist, 'runtime/session.js'));
const { ensureArtifacts } = await import(join(dist, 'train/artifacts.js'));
const { initialState } = await import(join(dist, 'train/runtime.js'));
const { Rng } = await import(join(dist, 'util/random.js'));
const model = { arch: 'preact-resnet18', width, inChannels: ch, imageSize: size, numClasses: 10, activation: { kind: 'relu' }, mean: Array(ch).fill(0.5), std: Array(ch).fill(0.25) };
const rng = new Rng(0);
const feeds = {
  input: toOrt(makeTensor('float32', [batch, ch, size, size], rng.fillUniform(new Float32Array(batch * ch * size * size), 0, 1))),
  labels: toOrt(makeTensor('int64', [batch], BigInt64Array.from({ length: batch }, () => BigInt(rng.int(10))))),
  lr: toOrt(makeTensor('float32', [], [0.01])),
};
const art = ensureArtifacts({ model, loss: { kind: 'ce' }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false }, plannedBatch: batch }, mkdtempSync(join(tmpdir(), 'advrun-ab-')));
const state = initialState(art.manifest, 0);
const session = await CompiledGraph.create(art.bytes.train_step, { threads: 2, memArena: process.env.ARENA === '1' });
for (const n of session.inputNames) if (state.has(n)) feeds[n] = toOrt(state.get(n));
await session.run(feeds);
for (let r = 0; r < 5; r++) {
  const f0 = process.resourceUsage().minorPageFault, t0 = performance.now();
  const c0 = process.cpuUsage();
  await session.run(feeds);
  const c1 = process.cpuUsage(c0);
  console.log(`${(performance.now() - t0).toFixed(1)} ms, minor faults ${process.resourceUsage().minorPageFault - f0}, user ${(c1.user/1000).toFixed(0)} sys ${(c1.system/1000).toFixed(0)} ms`);
}
