// advrun's generated graphs against PyTorch on committed fixtures (test/fixtures/torch/make_fixtures.py):
// eval logits and input gradient, train-mode parameter gradients and BN statistics, label smoothing,
// and 5 SGD-momentum steps (plain, Nesterov, and SAT's Nesterov with weight decay on conv/fc weights only)
// from the same initial weights and batches.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { toNumbers, type Tensor } from '../../src/ir/tensor.js';
import { parseActivation } from '../../src/models/index.js';
import { ensureArtifacts, type ArtifactConfig } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'torch');
const graphsDir = mkdtempSync(join(tmpdir(), 'advrun-graphs-'));

function config(opt: Partial<ArtifactConfig['optimizer']> = {}, labelSmoothing = 0): ArtifactConfig {
  return {
    model: { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] },
    loss: { kind: 'ce', labelSmoothing },
    optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0, ...opt },
  };
}

/** A runtime whose state is the fixture's initial state_dict. */
function runtimeFrom(cfg: ArtifactConfig, fixture: Map<string, Tensor>): ModelRuntime {
  const art = ensureArtifacts(cfg, graphsDir);
  const state = initialState(art.manifest, 0);
  // Parameters and BN statistics from the fixture; momentum starts at zero as in a fresh torch.optim.SGD
  // (the train fixture also holds torch's *final* momentum buffers under the same names).
  for (const k of state.keys()) if (!k.startsWith('momentum.') && fixture.has(k)) state.set(k, fixture.get(k)!);
  return new ModelRuntime(art, state);
}

function maxAbsDiff(a: ArrayLike<number>, b: Tensor): number {
  const bn = toNumbers(b);
  expect(a.length).toBe(bn.length);
  let m = 0;
  for (let i = 0; i < bn.length; i++) m = Math.max(m, Math.abs(a[i]! - bn[i]!));
  return m;
}

const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

describe('small-cnn matches PyTorch', () => {
  const grads = readSafetensors(join(FIX, 'small_cnn_grads.safetensors')).tensors;
  const x = grads.get('x')!.data as Float32Array;
  const labels = Int32Array.from(toNumbers(grads.get('labels')!));
  const n = labels.length;

  test('eval-mode logits and the attack gradient d(mean CE)/d(input)', async () => {
    const rt = runtimeFrom(config(), grads);
    runtimes.push(rt);
    expect(maxAbsDiff(await rt.logits(x, n), grads.get('logits_eval')!)).toBeLessThan(1e-4);
    const { grad, loss } = await rt.lossGrad(x, n, { kind: 'ce', labels });
    const meanLoss = loss.reduce((a, v) => a + v, 0) / n;
    expect(Math.abs(meanLoss - Number(grads.get('loss_eval')!.data[0]))).toBeLessThan(1e-5);
    // advrun's attack graph differentiates the sum of per-example losses; PyTorch's fixture the mean.
    const scaled = Float32Array.from(grad, (v) => v / n);
    const ref = grads.get('grad_input_eval')!;
    const scale = Math.max(...toNumbers(ref).map(Math.abs));
    expect(maxAbsDiff(scaled, ref) / scale).toBeLessThan(1e-4);
  });

  test('train-mode loss, parameter gradients and BN running statistics', async () => {
    // With lr = 0, weight decay 0 and zero momentum, the new momentum buffer is exactly the gradient.
    const rt = runtimeFrom(config(), grads);
    runtimes.push(rt);
    const { loss, logits } = await rt.trainStep(x, labels, n, 0);
    expect(Math.abs(loss - Number(grads.get('loss_train')!.data[0]))).toBeLessThan(1e-5);
    expect(maxAbsDiff(logits, grads.get('logits_train')!)).toBeLessThan(1e-4);
    const state = rt.getState();
    for (const p of rt.manifest.params) {
      const ref = grads.get(`grad_${p.name}`)!;
      const scale = Math.max(1e-3, ...toNumbers(ref).map(Math.abs));
      expect(maxAbsDiff(state.get(`momentum.${p.name}`)!.data as Float32Array, ref) / scale, p.name).toBeLessThan(2e-4);
    }
    for (const bn of ['bn1', 'bn2', 'bn3']) {
      for (const stat of ['running_mean', 'running_var']) {
        expect(maxAbsDiff(state.get(`${bn}.${stat}`)!.data as Float32Array, grads.get(`after_train.${bn}.${stat}`)!), `${bn}.${stat}`).toBeLessThan(1e-5);
      }
    }
  });

  test('label smoothing 0.1 matches F.cross_entropy(label_smoothing=0.1)', async () => {
    const rt = runtimeFrom(config({}, 0.1), grads);
    runtimes.push(rt);
    const { loss } = await rt.trainStep(x, labels, n, 0);
    expect(Math.abs(loss - Number(grads.get('loss_train_ls')!.data[0]))).toBeLessThan(1e-5);
    const ref = grads.get('grad_fc.weight_ls')!;
    expect(maxAbsDiff(rt.getState().get('momentum.fc.weight')!.data as Float32Array, ref)).toBeLessThan(1e-5);
  });

  const train = readSafetensors(join(FIX, 'small_cnn_train.safetensors')).tensors;
  for (const variant of ['plain', 'nesterov'] as const) {
    test(`5 SGD-momentum steps (${variant}) follow PyTorch: per-step loss within 1e-4 relative`, async () => {
      const prefix = variant === 'plain' ? '' : 'nesterov.';
      const rt = runtimeFrom(config({ weightDecay: 5e-4, nesterov: variant === 'nesterov' }), train);
      runtimes.push(rt);
      const want = toNumbers(train.get(`${prefix}losses`)!);
      for (let s = 0; s < 5; s++) {
        const xs = train.get(`x_step${s}`)!.data as Float32Array;
        const ys = Int32Array.from(toNumbers(train.get(`y_step${s}`)!));
        const { loss } = await rt.trainStep(xs, ys, ys.length, 0.05);
        expect(Math.abs(loss - want[s]!) / Math.abs(want[s]!), `step ${s}`).toBeLessThan(1e-4);
      }
      const state = rt.getState();
      for (const p of rt.manifest.params) {
        expect(maxAbsDiff(state.get(p.name)!.data as Float32Array, train.get(`${prefix}final.${p.name}`)!), p.name).toBeLessThan(1e-4);
      }
      for (const b of rt.manifest.buffers) {
        expect(maxAbsDiff(state.get(b)!.data as Float32Array, train.get(`${prefix}final.${b}`)!), b).toBeLessThan(1e-4);
      }
      for (const p of rt.manifest.params) {
        const m = `momentum.${p.name}`;
        expect(maxAbsDiff(state.get(m)!.data as Float32Array, train.get(`${prefix}${m}`)!), m).toBeLessThan(1e-4);
      }
    });
  }

  test("SAT's optimiser: Nesterov, weight decay on conv/fc weights only (two torch param groups), label smoothing 0.1", async () => {
    const rt = runtimeFrom(config({ weightDecay: 5e-4, nesterov: true, decayScope: 'weights' }, 0.1), train);
    runtimes.push(rt);
    expect(rt.manifest.params.filter((p) => p.kind === 'weight').map((p) => p.name)).toEqual(['conv1.weight', 'conv2.weight', 'conv3.weight', 'fc.weight']);
    const want = toNumbers(train.get('weights_only.losses')!);
    for (let s = 0; s < 5; s++) {
      const ys = Int32Array.from(toNumbers(train.get(`y_step${s}`)!));
      const { loss } = await rt.trainStep(train.get(`x_step${s}`)!.data as Float32Array, ys, ys.length, 0.05);
      expect(Math.abs(loss - want[s]!) / Math.abs(want[s]!), `step ${s}`).toBeLessThan(1e-4);
    }
    const state = rt.getState();
    for (const p of rt.manifest.params) {
      expect(maxAbsDiff(state.get(p.name)!.data as Float32Array, train.get(`weights_only.final.${p.name}`)!), p.name).toBeLessThan(1e-4);
    }
    // Decaying everything instead would move the BN affine parameters and biases away from torch's.
    const all = runtimeFrom(config({ weightDecay: 0.5, nesterov: true }, 0.1), train);
    runtimes.push(all);
    const only = runtimeFrom(config({ weightDecay: 0.5, nesterov: true, decayScope: 'weights' }, 0.1), train);
    runtimes.push(only);
    const ys = Int32Array.from(toNumbers(train.get('y_step0')!));
    for (const r of [all, only]) await r.trainStep(train.get('x_step0')!.data as Float32Array, ys, ys.length, 0.05);
    const bnWeight = (r: ModelRuntime) => Array.from(r.getState().get('bn1.weight')!.data as Float32Array);
    expect(bnWeight(all)).not.toEqual(bnWeight(only));
  });
});
