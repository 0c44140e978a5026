// The fine-tuning train step of imported ONNX models (advrun train --init model.onnx), for both
// fixtures: ONNX Runtime accepts it, and with lr 0 its loss is the cross-entropy of the train-mode
// forward pass run on its own (batch-statistics BatchNormalization), parameters stay unchanged and
// only the BN running statistics move.

import { describe, expect, test } from 'vitest';
import { BATCH_STATISTICS_BN_VJP } from '../../src/autodiff/rules/batchnorm.js';
import { ensureImportedArtifacts } from '../../src/interop/imported-artifacts.js';
import { importedModel, importedState, importOnnxFile } from '../../src/interop/onnx-import.js';
import { makeTensor, toNumbers, type Tensor } from '../../src/ir/tensor.js';
import { graphToModelProto } from '../../src/onnx/io.js';
import { CompiledGraph, toOrt } from '../../src/runtime/session.js';
import { ModelRuntime } from '../../src/train/runtime.js';
import { fix, fmnistTest } from './helpers.js';

const TRAIN = { labelSmoothing: 0, optimizer: { kind: 'sgd' as const, momentum: 0.9, nesterov: false, weightDecay: 5e-4 } };

function meanCrossEntropy(logits: Float32Array, labels: Int32Array, k: number): number {
  let sum = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    sum += lse - row[labels[i]!]!;
  }
  return sum / labels.length;
}

const maxDiff = (a: Tensor, b: Tensor) => toNumbers(a).reduce((m, v, i) => Math.max(m, Math.abs(v - toNumbers(b)[i]!)), 0);

describe.each(['act_cnn.onnx', 'preact18_w4.onnx'])('imported train step: %s', (file) => {
  test('is accepted by ONNX Runtime; lr 0 gives the train-mode cross-entropy and leaves the parameters', async () => {
    const im = await importOnnxFile(fix(file));
    // Train-mode BN is advrun's own (models/layers.ts trainModeBatchNorm): the closed-form VJP, not the statistics' chain.
    const bns = importedModel(im, 'train').graph.nodes.filter((nd) => nd.op === 'BatchNormalization');
    if (file === 'preact18_w4.onnx') expect(bns.length).toBeGreaterThan(0);
    for (const nd of bns) expect(nd.meta?.customVjp).toBe(BATCH_STATISTICS_BN_VJP);
    const artifacts = ensureImportedArtifacts(im, null, { train: TRAIN });
    expect(Object.keys(artifacts.bytes)).toContain('train_step');
    const state = importedState(im);
    for (const m of artifacts.manifest.momentum) state.set(m, makeTensor('float32', state.get(m.slice('momentum.'.length))!.dims));
    const rt = new ModelRuntime(artifacts, state);

    const ds = await fmnistTest(16);
    const n = ds.n, k = im.spec.numClasses;
    const { loss, logits } = await rt.trainStep(ds.images, ds.labels, n, 0);
    expect(Number.isFinite(loss)).toBe(true);
    expect(logits.length).toBe(n * k);
    expect(loss).toBeCloseTo(meanCrossEntropy(logits, ds.labels, k), 4);

    // The train-mode forward pass on its own (no autodiff, no optimizer) gives the same logits.
    const fwd = importedModel(im, 'train');
    fwd.graph.outputs = [fwd.logits];
    fwd.graph.prune();
    const s = await CompiledGraph.create(graphToModelProto(fwd.graph));
    const ref = (await s.run({ input: toOrt(makeTensor('float32', [n, 1, 28, 28], ds.images)) })).logits!.data as Float32Array;
    let d = 0;
    for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ref[i]! - logits[i]!));
    expect(d).toBeLessThan(1e-4);
    expect(loss).toBeCloseTo(meanCrossEntropy(ref, ds.labels, k), 4);

    const after = rt.getState();
    for (const p of im.params) expect(maxDiff(after.get(p.name)!, state.get(p.name)!), p.name).toBe(0);
    if (im.buffers.length > 0) expect(im.buffers.some((b) => maxDiff(after.get(b)!, state.get(b)!) > 0)).toBe(true);
    await rt.release();
  });
});
