// A PreActResNet-18 train step (planned for its batch) and a fixed random batch, built from one dist
// directory's modules: shared by the train-step scripts in bench/ (the A/B harness loads two builds).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The compiled train step of `dist` (a build's dist/ directory) and feeds for it, state included. */
export async function trainStep(dist, { width, inChannels, imageSize, batch }, sessionOptions = {}) {
  // Every module from the build under test, so its own VJP rules generate its graph.
  const { makeTensor } = await import(join(dist, 'ir/tensor.js'));
  const { CompiledGraph, toOrt } = await import(join(dist, 'runtime/session.js'));
  const { ensureArtifacts } = await import(join(dist, 'train/artifacts.js'));
  const { initialState } = await import(join(dist, 'train/runtime.js'));
  const { Rng } = await import(join(dist, 'util/random.js'));
  const model = { arch: 'preact-resnet18', width, inChannels, imageSize, numClasses: 10, activation: { kind: 'relu' }, mean: Array(inChannels).fill(0.5), std: Array(inChannels).fill(0.25) };
  const rng = new Rng(0); // the same batch for every build
  const feeds = {
    input: toOrt(makeTensor('float32', [batch, inChannels, imageSize, imageSize], rng.fillUniform(new Float32Array(batch * inChannels * imageSize * imageSize), 0, 1))),
    labels: toOrt(makeTensor('int64', [batch], BigInt64Array.from({ length: batch }, () => BigInt(rng.int(10))))),
    lr: toOrt(makeTensor('float32', [], [0.01])),
  };
  const art = ensureArtifacts({ model, loss: { kind: 'ce' }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false }, plannedBatch: batch }, mkdtempSync(join(tmpdir(), 'advrun-bench-step-')));
  const state = initialState(art.manifest, 0);
  const session = await CompiledGraph.create(art.bytes.train_step, { threads: 2, ...sessionOptions });
  for (const n of session.inputNames) if (state.has(n)) feeds[n] = toOrt(state.get(n));
  return { session, feeds };
}
