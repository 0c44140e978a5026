// --input-resize: bilinear upsampling as the model's first op (TWINS feeds 32x32 CIFAR-10 to a 224 ImageNet
// ResNet-50). The resized model equals the plain model fed pre-upsampled images; attacks and training work
// on the small images; fine-tuning a checkpoint trained at the large size is accepted only with the resize;
// and --mean/--std keep the checkpoint's normalisation.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import type { Graph } from '../../src/ir/graph.js';
import { interpolationMatrix } from '../../src/ir/resize-geometry.js';
import { buildModel, parseActivation, type ModelSpec } from '../../src/models/index.js';
import { resizeScale } from '../../src/models/layers.js';
import { ensureArtifacts, type ArtifactConfig } from '../../src/train/artifacts.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { fineTuneState, modelSpecFor } from '../../src/train/loop.js';
import type { Dataset } from '../../src/data/index.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';

const dir = mkdtempSync(join(tmpdir(), 'advrun-resize-'));
const spec = (imageSize: number, inputResize?: number, numClasses = 4): ModelSpec => ({
  arch: 'small-cnn', numClasses, inChannels: 2, imageSize, width: 4, activation: parseActivation('relu'), mean: [0.4, 0.5], std: [0.2, 0.3],
  ...(inputResize ? { inputResize } : {}),
});
const cfg = (model: ModelSpec): ArtifactConfig => ({ model, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } });
const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

/** The first node that is not a Constant. */
const firstOp = (g: Graph) => g.nodes.find((n) => n.op !== 'Constant')!;

/** Separable bilinear upsampling of [n, c, s, s] images to t x t in JavaScript (torch align_corners=False). */
function upsample(x: Float32Array, n: number, c: number, s: number, t: number): Float32Array {
  const a = interpolationMatrix({ inSize: s, outSize: t, scale: t / s }, { mode: 'linear', coordinate: 'half_pixel', nearest: 'floor' });
  const out = new Float32Array(n * c * t * t);
  for (let p = 0; p < n * c; p++) {
    for (let i = 0; i < t; i++) for (let j = 0; j < t; j++) {
      let v = 0;
      for (let k = 0; k < s; k++) for (let l = 0; l < s; l++) v += a[i * s + k]! * x[p * s * s + k * s + l]! * a[j * s + l]!;
      out[p * t * t + i * t + j] = v;
    }
  }
  return out;
}

describe('--input-resize', () => {
  test('the first op is a bilinear Resize; logits equal the plain model on pre-upsampled images', async () => {
    const model = buildModel(spec(6, 20), { bnMode: 'eval', seed: 0 });
    const first = firstOp(model.graph);
    expect(first.op).toBe('Resize');
    expect(first.inputs[0]).toBe('input');
    expect(first.attrs.mode?.value).toBe('linear');
    expect(model.graph.shape(first.outputs[0]!)).toEqual(['N', 2, 20, 20]);

    const resized = ensureArtifacts(cfg(spec(6, 20)), dir), plain = ensureArtifacts(cfg(spec(20)), dir);
    const state = initialState(resized.manifest, 3);
    const a = new ModelRuntime(resized, state), b = new ModelRuntime(plain, state);
    runtimes.push(a, b);
    const x = new Rng(5).fillUniform(new Float32Array(3 * 2 * 36), 0, 1);
    const la = await a.logits(x, 3), lb = await b.logits(upsample(x, 3, 2, 6, 20), 3);
    for (let i = 0; i < la.length; i++) expect(la[i]).toBeCloseTo(lb[i]!, 4);
    // Attacks perturb the small images: the input gradient has their shape.
    const { grad } = await a.lossGrad(x, 3, { kind: 'ce', labels: Int32Array.from([0, 1, 2]) });
    expect(grad.length).toBe(x.length);
    expect(grad.some((v) => v !== 0)).toBe(true);
  });

  test('the float32 scale gives exactly the requested size (ONNX Runtime computes it from the scale)', () => {
    expect(resizeScale(32, 224)).toBe(7);
    for (const [from, to] of [[32, 299], [28, 224], [30, 224], [7, 100]] as const) {
      expect(Math.floor(Math.fround(from * resizeScale(from, to)))).toBe(to);
      const g = buildModel(spec(from, to), { bnMode: 'eval', seed: 0 }).graph;
      expect(g.shape(firstOp(g).outputs[0]!)).toEqual(['N', 2, to, to]);
    }
  });

  test('resnet50 on 32x32 images upsampled to 224 builds with the ImageNet geometry', () => {
    const m = buildModel({ ...spec(32, 224, 10), arch: 'resnet50', width: undefined, inChannels: 3, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, { bnMode: 'eval', seed: 0 });
    expect(m.graph.shape('input')).toEqual(['N', 3, 32, 32]);
    const gap = m.graph.nodes.find((n) => n.op === 'GlobalAveragePool')!;
    expect(m.graph.shape(gap.inputs[0]!)).toEqual(['N', 2048, 7, 7]); // 224 / 32
  });

  test('a train step runs and changes the weights', async () => {
    const art = ensureArtifacts(cfg(spec(5, 12)), dir);
    const rt = new ModelRuntime(art, initialState(art.manifest, 0));
    runtimes.push(rt);
    const before = rt.getState().get('conv1.weight')!.data.slice();
    const { loss } = await rt.trainStep(new Rng(1).fillUniform(new Float32Array(4 * 2 * 25), 0, 1), Int32Array.from([0, 1, 2, 3]), 4, 0.1);
    expect(Number.isFinite(loss)).toBe(true);
    expect(rt.getState().get('conv1.weight')!.data).not.toEqual(before);
  });

  test('fine-tuning a checkpoint trained at 16x16 on 8x8 images needs --input-resize 16', () => {
    const pre = ensureArtifacts(cfg(spec(16, undefined, 5)), dir);
    const ck = join(dir, 'pre16.safetensors');
    saveCheckpoint(ck, initialState(pre.manifest, 1), { model: spec(16, undefined, 5), epoch: 1, step: 1 });
    const ok = ensureArtifacts(cfg(spec(8, 16, 3)), dir);
    expect(fineTuneState(ck, ok.manifest, 0).get('conv1.weight')!.data).toEqual(initialState(pre.manifest, 1).get('conv1.weight')!.data);
    const bad = ensureArtifacts(cfg(spec(8, undefined, 3)), dir);
    expect(() => fineTuneState(ck, bad.manifest, 0)).toThrow(/trained on 16x16 inputs but this run feeds it 8x8; use --input-resize 16/);
  });

  test('config: --input-resize and --image-size are whole pixel counts; --image-size is for folder: datasets', () => {
    expect(resolveTrainConfig({ dataset: 'cifar10', inputResize: 224 }).inputResize).toBe(224);
    expect(() => resolveTrainConfig({ inputResize: 0 })).toThrow(/--input-resize must be a whole number of pixels/);
    expect(() => resolveTrainConfig({ dataset: 'cifar10', imageSize: 64 })).toThrow(/--image-size sets the decoded size of folder: datasets; cifar10 has a fixed size/);
    expect(resolveTrainConfig({ dataset: 'folder:/x', imageSize: 224 }).imageSize).toBe(224);
  });

  test("--mean/--std set the model's normalisation instead of the dataset's", () => {
    const cfg = resolveTrainConfig({ dataset: 'cifar10', mean: '0.485, 0.456,0.406', std: [0.229, 0.224, 0.225] });
    expect(cfg.mean).toEqual([0.485, 0.456, 0.406]);
    expect(cfg.std).toEqual([0.229, 0.224, 0.225]);
    const ds = { name: 'cifar10', channels: 3, height: 32, width: 32, numClasses: 10, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] } as Dataset;
    expect(modelSpecFor({ ...cfg, inputResize: 224 }, ds)).toMatchObject({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], imageSize: 32, inputResize: 224 });
    expect(modelSpecFor(resolveTrainConfig({}), ds).mean).toEqual([0.49, 0.48, 0.45]);
    // One value stands for every channel, as on the eval/export side (--mean 0 --std 1: no normalisation).
    expect(modelSpecFor(resolveTrainConfig({ mean: '0', std: '1' }), ds)).toMatchObject({ mean: [0, 0, 0], std: [1, 1, 1] });
    expect(() => modelSpecFor(resolveTrainConfig({ mean: '0.5,0.5' }), ds)).toThrow(/--mean has 2 values but cifar10 has 3 channels/);
    expect(() => resolveTrainConfig({ std: '0.2,0,0.2' })).toThrow(/--std values must be positive/);
    expect(() => resolveTrainConfig({ mean: '0.5,x' })).toThrow(/--mean "0.5,x" is not a comma-separated list/);
  });
});
