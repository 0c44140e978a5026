// ONNX models exported by torch.onnx.export, imported as advrun models: logits and input gradients
// against PyTorch, every attack loss, fine-tuning in train mode (PyTorch's BN semantics), the
// import's rewrites (opset upgrade, constant folding, reshape folding, dedup'd BN statistics,
// reserved names) and its errors.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { lossFromLogits } from '../../src/attacks/common.js';
import type { AttackLoss } from '../../src/attacks/types.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { ensureImportedArtifacts } from '../../src/interop/imported-artifacts.js';
import { openModel } from '../../src/interop/load.js';
import { importOnnx, importOnnxFile, importedState } from '../../src/interop/onnx-import.js';
import { newGraph } from '../../src/ir/builder.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { graphToModelProto } from '../../src/onnx/io.js';
import { ModelRuntime } from '../../src/train/runtime.js';
import { expected, fix, fmnistTest, maxAbsDiff, relDiff, tempDir, TORCH_FIX } from './helpers.js';

const graphsDir = tempDir('advrun-graphs-');
const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });
const track = (rt: ModelRuntime) => { runtimes.push(rt); return rt; };

describe('torch.onnx.export models', () => {
  test('PreActResNet-18, opset 13, BN partly folded, x.view(x.size(0), -1), output named "logits"', async () => {
    const ds = await fmnistTest();
    const m = await openModel(fix('preact18_w4.onnx'), { graphsDir });
    expect(m.kind).toBe('onnx');
    expect(m.spec).toMatchObject({ arch: 'onnx', inChannels: 1, imageSize: 28, numClasses: 10 });
    const im = m.imported!;
    expect(im.opset).toEqual({ original: 13, used: 17 });
    expect(im.io).toEqual({ input: 'images', output: 'logits' });
    expect(im.notes.join('\n')).toMatch(/opset 13 upgraded to 17/);
    expect(im.notes.join('\n')).toMatch(/1 run-time Reshape target\(s\) folded/);
    expect(im.notes.join('\n')).not.toMatch(/renamed/); // an output already named "logits" stays the logits
    // Unfolded BN statistics are buffers; folded Conv+BN weights and the remaining BN affines are params.
    expect(im.buffers).toContain('layer1.0.bn1.running_mean');
    expect(im.params.map((p) => p.name)).toContain('linear.weight');
    expect(im.graph.shape('logits')).toEqual(['N', 10]);
    const rt = track(new ModelRuntime(m.artifacts, m.state));
    expect(maxAbsDiff(await rt.logits(ds.images, ds.n), expected().get('preact.logits')!)).toBeLessThanOrEqual(1e-4);
    const { grad } = await rt.lossGrad(ds.images.subarray(0, 8 * 784), 8, { kind: 'ce', labels: ds.labels.subarray(0, 8) });
    expect(relDiff(grad, expected().get('preact.grad_input')!)).toBeLessThan(1e-4);
  });

  test('GELU (Erf) / SiLU / Softplus / ELU / MaxPool / AveragePool / Pad CNN: logits, input gradient, every attack loss', async () => {
    const ds = await fmnistTest();
    const m = await openModel(fix('act_cnn.onnx'), { graphsDir });
    const im = m.imported!;
    const ops = new Set(im.graph.nodes.map((n) => n.op));
    for (const op of ['Erf', 'Sigmoid', 'Softplus', 'Elu', 'MaxPool', 'AveragePool', 'Pad', 'BatchNormalization', 'Gemm']) expect(ops, op).toContain(op);
    expect(im.notes.join('\n')).toMatch(/node\(s\) computing constants evaluated once by ONNX Runtime/);
    const rt = track(new ModelRuntime(m.artifacts, m.state));
    const logits = await rt.logits(ds.images, ds.n);
    expect(maxAbsDiff(logits, expected().get('act.logits')!)).toBeLessThanOrEqual(1e-4);
    const n = 8, x = ds.images.subarray(0, n * 784), y = ds.labels.subarray(0, n);
    const { grad } = await rt.lossGrad(x, n, { kind: 'ce', labels: y });
    expect(relDiff(grad, expected().get('act.grad_input')!)).toBeLessThan(1e-4);
    // Every attack loss: the graph's per-example values are the attacks' definitions, and the gradient
    // agrees with a central difference along the gradient direction. Random images here: the flat zero
    // backgrounds of Fashion-MNIST tie MaxPool windows, where max is not differentiable.
    let seed = 1;
    const xr = Float32Array.from({ length: n * 784 }, () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return 0.05 + (0.9 * seed) / 2 ** 31; });
    const probs = new Float32Array(n * 10).fill(0.1);
    const targets = Int32Array.from(y, (v) => (v + 1) % 10);
    const losses: AttackLoss[] = [{ kind: 'ce', labels: y }, { kind: 'dlr', labels: y }, { kind: 'dlr-targeted', labels: y, targets }, { kind: 'kl', cleanProbs: probs }];
    for (const loss of losses) {
      const r = await rt.lossGrad(xr, n, loss);
      for (let i = 0; i < n; i++) expect(r.loss[i]!, `${loss.kind} #${i}`).toBeCloseTo(lossFromLogits(loss, r.logits, i, 10), 4);
      const norm = Math.hypot(...r.grad);
      const h = 1e-2 / norm;
      const step = (s: number) => Float32Array.from(xr, (v, i) => v + s * h * r.grad[i]!);
      const sum = async (xs: Float32Array) => (await rt.lossGrad(xs, n, loss)).loss.reduce((a, v) => a + v, 0);
      const fd = ((await sum(step(1))) - (await sum(step(-1)))) / (2 * h);
      expect(Math.abs(fd - norm * norm) / (norm * norm), loss.kind).toBeLessThan(5e-3);
    }
  });

  test('fine-tuning: train-mode loss, parameter gradients and BN statistics match PyTorch', async () => {
    const ds = await fmnistTest(16);
    const im = await importOnnxFile(fix('act_cnn.onnx'));
    const art = ensureImportedArtifacts(im, graphsDir, { train: { labelSmoothing: 0, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } } });
    expect(art.manifest.params.map((p) => p.name)).toEqual(['conv1.weight', 'bn1.weight', 'bn1.bias', 'conv2.weight', 'bn2.weight', 'bn2.bias', 'conv3.weight', 'conv3.bias', 'conv4.weight', 'conv4.bias', 'fc.weight', 'fc.bias']);
    expect(art.manifest.buffers).toEqual(['bn1.running_mean', 'bn1.running_var', 'bn2.running_mean', 'bn2.running_var']);
    const state = importedState(im);
    for (const mname of art.manifest.momentum) state.set(mname, makeTensor('float32', state.get(mname.slice('momentum.'.length))!.dims));
    const rt = track(new ModelRuntime(art, state));
    // lr 0, zero momentum: the new momentum buffer is exactly the gradient.
    const { loss } = await rt.trainStep(ds.images, ds.labels, 16, 0);
    const e = expected();
    expect(Math.abs(loss - Number(e.get('act.train.loss')!.data[0]))).toBeLessThan(1e-5);
    const after = rt.getState();
    for (const p of art.manifest.params) expect(relDiff(after.get(`momentum.${p.name}`)!.data as Float32Array, e.get(`act.train.grad.${p.name}`)!), p.name).toBeLessThan(2e-4);
    for (const b of art.manifest.buffers) expect(maxAbsDiff(after.get(b)!.data as Float32Array, e.get(`act.train.${b}`)!), b).toBeLessThan(1e-5);
    // And a real step lowers the loss on that batch.
    await rt.trainStep(ds.images, ds.labels, 16, 0.05);
    const { loss: l2 } = await rt.trainStep(ds.images, ds.labels, 16, 0);
    expect(l2).toBeLessThan(loss);
  });

  test.each(['small_cnn.onnx', 'small_cnn_folded.onnx'])('test/fixtures/torch/%s (BN kept / folded into Conv) matches PyTorch', async (file) => {
    const ref = readSafetensors(join(TORCH_FIX, 'small_cnn_onnx_expected.safetensors')).tensors;
    const m = await openModel(join(TORCH_FIX, file), { graphsDir });
    expect(m.spec).toMatchObject({ inChannels: 1, imageSize: 12, numClasses: 10 });
    if (file === 'small_cnn_folded.onnx') expect(m.imported!.buffers).toEqual([]);
    const rt = track(new ModelRuntime(m.artifacts, m.state));
    const x = ref.get('input')!;
    expect(maxAbsDiff(await rt.logits(x.data as Float32Array, x.dims[0]!), ref.get('logits')!)).toBeLessThanOrEqual(1e-4);
  });
});

describe('import rewrites and errors', () => {
  /** A small classifier graph, serialised (opset and shapes configurable). */
  function tinyModel(o: { opset?: number; batch?: number | string; dedup?: boolean; extraInput?: boolean; reshapeBatch?: number; trainingBn?: boolean } = {}): Uint8Array {
    const { graph, b } = newGraph('tiny', o.opset ?? 17);
    const x = graph.addInput('x', 'float32', [o.batch ?? 'batch', 1, 4, 4]);
    if (o.extraInput) graph.addInput('y', 'float32', [1]);
    graph.addInitializer('conv.weight', makeTensor('float32', [2, 1, 3, 3], Array.from({ length: 18 }, (_, i) => (i % 5) / 10 - 0.2)));
    graph.addInitializer('bn.weight', makeTensor('float32', [2], [1, 1]));
    graph.addInitializer('bn.bias', makeTensor('float32', [2], [0, 0]));
    const rm = o.dedup ? b.identity('bn.bias') : graph.addInitializer('bn.running_mean', makeTensor('float32', [2], [0.1, -0.1]));
    graph.addInitializer('bn.running_var', makeTensor('float32', [2], [1.5, 0.5]));
    graph.addInitializer('fc.weight', makeTensor('float32', [3, 8], Array.from({ length: 24 }, (_, i) => Math.sin(i))));
    graph.addInitializer('fc.bias', makeTensor('float32', [3], [0, 0.1, 0.2]));
    let h = b.op('Conv', [x, 'conv.weight'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    h = b.relu(o.trainingBn
      ? b.opN('BatchNormalization', [h, 'bn.weight', 'bn.bias', rm, 'bn.running_var'], 3, { epsilon: 1e-5, training_mode: 1 })[0]!
      : b.op('BatchNormalization', [h, 'bn.weight', 'bn.bias', rm, 'bn.running_var'], { epsilon: 1e-5 }));
    h = b.op('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    h = o.reshapeBatch !== undefined ? b.reshape(h, [o.reshapeBatch, 8]) : b.flatten(h);
    graph.markOutput(b.op('Gemm', [h, 'fc.weight', 'fc.bias'], { transB: 1 }));
    return graphToModelProto(graph);
  }

  test("torch's dedup (Identity of bn.bias as running_mean) becomes a separate buffer", async () => {
    const im = await importOnnx(tinyModel({ dedup: true }), 'dedup.onnx');
    expect(im.params.map((p) => p.name)).toEqual(['conv.weight', 'bn.weight', 'bn.bias', 'fc.weight', 'fc.bias']);
    // The Identity's output ("identity") is the running mean now, an initializer of its own.
    expect([...im.buffers].sort()).toEqual(['bn.running_var', 'identity']);
    expect(im.graph.initializers.get('identity')).toBe(im.graph.initializers.get('bn.bias'));
    expect(im.notes.join('\n')).toMatch(/Identity node\(s\) of initializers replaced/);
    const plain = await importOnnx(tinyModel({ batch: 1 }), 'fixed-input.onnx');
    expect(plain.graph.shape('input')).toEqual(['N', 1, 4, 4]);
    expect(plain.notes.join('\n')).toMatch(/input batch dimension 1 made symbolic/);
  });

  test('opsets 13 to 18: same logits and MaxPool/BN input gradients (13-16 upgraded in place to 17)', async () => {
    const x = Float32Array.from({ length: 3 * 16 }, (_, i) => ((i * 37) % 17) / 17);
    const labels = Int32Array.from([0, 1, 2]);
    const results: Float32Array[] = [];
    for (const opset of [13, 16, 17, 18]) {
      const im = await importOnnx(tinyModel({ opset }), `tiny${opset}.onnx`);
      expect(im.opset.used).toBe(opset < 17 ? 17 : opset);
      const rt = track(new ModelRuntime(ensureImportedArtifacts(im, null), importedState(im)));
      const r = await rt.lossGrad(x, 3, { kind: 'ce', labels });
      results.push(Float32Array.from([...r.logits, ...r.grad]));
    }
    for (const r of results.slice(1)) expect(maxAbsDiff(r, results[0]!)).toBeLessThanOrEqual(1e-6);
    expect(results[0]!.slice(9).some((v) => v !== 0)).toBe(true);
  });

  test('opset 12, two inputs, a fixed batch and non-square images are refused with the fix', async () => {
    await expect(importOnnx(tinyModel({ opset: 12 }), 'old.onnx')).rejects.toThrow(/old\.onnx uses ONNX opset 12; advrun imports opset 13 or newer/);
    await expect(importOnnx(tinyModel({ extraInput: true }), 'two.onnx')).rejects.toThrow(/two\.onnx has 2 inputs \(x, y\)/);
    await expect(importOnnx(tinyModel({ batch: 2, reshapeBatch: 2 }), 'fixed.onnx')).rejects.toThrow(/fixed batch size 2.*dynamic_axes/);
    // A training-mode export, at any opset: its outputs would depend on the batch.
    for (const opset of [15, 17]) {
      await expect(importOnnx(tinyModel({ opset, trainingBn: true }), 'trainmode.onnx')).rejects.toThrow(/trainmode\.onnx: node ".*" is a training-mode BatchNormalization .*export the model in eval mode/);
    }
    const { graph, b } = newGraph('rect', 17);
    const x = graph.addInput('x', 'float32', ['N', 1, 4, 6]);
    graph.markOutput(b.flatten(b.op('GlobalAveragePool', [x])));
    await expect(importOnnx(graphToModelProto(graph), 'rect.onnx')).rejects.toThrow(/rect\.onnx: input "x" is 4x6; .*square images/);
  });

  test('eval and attack graphs need no train step; a model with no weights cannot be fine-tuned', async () => {
    const dir = tempDir();
    const { graph, b } = newGraph('noweights', 17);
    const x = graph.addInput('x', 'float32', ['N', 1, 2, 2]);
    graph.markOutput(b.flatten(x));
    writeFileSync(join(dir, 'nw.onnx'), graphToModelProto(graph));
    const im = await importOnnxFile(join(dir, 'nw.onnx'));
    const art = ensureImportedArtifacts(im, null);
    expect(Object.keys(art.bytes).sort()).toEqual(['attack_ce', 'attack_dlr', 'attack_dlr_targeted', 'attack_kl', 'eval']);
    expect(() => ensureImportedArtifacts(im, null, { train: { labelSmoothing: 0, optimizer: { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 } } })).toThrow(/has no trainable initializers/);
    expect(readFileSync(join(dir, 'nw.onnx')).length).toBeGreaterThan(0);
    expect(toNumbers(makeTensor('int64', [1], [3]))).toEqual([3]);
  });
});
