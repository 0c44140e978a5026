// The training options the papers' ImageNet recipes need beyond the CIFAR defaults: explicit lr milestones
// (TWINS 30/50 of 60, SAT 30/60/90 of 100), linear warm-up, weight decay on conv/linear weights only, and
// the probability of PGD's random start (SAT: 0.8). Label smoothing and Nesterov are checked against
// PyTorch in torch-parity.test.ts.

import { describe, expect, test } from 'vitest';
import { Pgd } from '../../src/attacks/pgd.js';
import { buildModel, parseActivation } from '../../src/models/index.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { artifactConfigFor } from '../../src/train/loop.js';
import { decays } from '../../src/train/optimizer.js';
import { learningRate } from '../../src/train/schedule.js';
import { Rng } from '../../src/util/random.js';
import { ToyModel } from '../attacks/toy-model.js';

describe('learning-rate milestones and warm-up', () => {
  test('TWINS: lr 0.003, x0.1 at epochs 30 and 50 of 60', () => {
    const cfg = resolveTrainConfig({ epochs: 60, lr: 0.003, milestones: '30,50' });
    expect(cfg.milestones).toEqual([30, 50]);
    const s = { kind: cfg.schedule, lr: cfg.lr, epochs: cfg.epochs, warmup: 0, milestones: cfg.milestones!.map((m) => m / cfg.epochs) };
    const at = (t: number) => learningRate(s, t);
    expect(at(0)).toBeCloseTo(0.003, 12);
    expect(at(29.99)).toBeCloseTo(0.003, 12);
    expect(at(30)).toBeCloseTo(0.0003, 12);
    expect(at(49.5)).toBeCloseTo(0.0003, 12);
    expect(at(50)).toBeCloseTo(0.00003, 12);
    expect(at(59.9)).toBeCloseTo(0.00003, 12);
  });

  test('SAT: 5 warm-up epochs rising linearly from 0, then x0.1 at 30, 60, 90 of 100', () => {
    const cfg = resolveTrainConfig({ epochs: 100, lr: 0.4, warmup: 5, milestones: [30, 60, 90] });
    const s = { kind: cfg.schedule, lr: cfg.lr, epochs: cfg.epochs, warmup: cfg.warmup, milestones: cfg.milestones!.map((m) => m / cfg.epochs) };
    expect(learningRate(s, 0)).toBeLessThan(1e-9);
    expect(learningRate(s, 2.5)).toBeCloseTo(0.2, 6);
    expect(learningRate(s, 5)).toBeCloseTo(0.4, 12);
    expect(learningRate(s, 30)).toBeCloseTo(0.04, 12);
    expect(learningRate(s, 60)).toBeCloseTo(0.004, 12);
    expect(learningRate(s, 95)).toBeCloseTo(0.0004, 12);
  });

  test('bad milestones and warm-up are one-line user errors', () => {
    // SGD settings are checked for every entry point (train, config files, grids), not only on the command line.
    expect(() => resolveTrainConfig({ momentum: 1.5 })).toThrow(/--momentum must be in \[0, 1\), got 1.5/);
    expect(() => resolveTrainConfig({ momentum: 0, nesterov: true })).toThrow(/--nesterov needs a non-zero --momentum/);
    expect(() => resolveTrainConfig({ weightDecay: -1 })).toThrow(/--weight-decay must be >= 0/);
    expect(() => resolveTrainConfig({ epochs: 60, milestones: '50,30' })).toThrow(/--milestones 50,30: epochs must increase/);
    expect(() => resolveTrainConfig({ epochs: 60, milestones: '30,60' })).toThrow(/strictly between 0 and --epochs 60/);
    expect(() => resolveTrainConfig({ epochs: 60, milestones: 'x' })).toThrow(/--milestones x/);
    expect(() => resolveTrainConfig({ epochs: 60, schedule: 'cosine', milestones: '30' })).toThrow(/--milestones applies to --schedule piecewise/);
    expect(() => resolveTrainConfig({ epochs: 5, warmup: 5 })).toThrow(/--warmup must be at least 0 and below --epochs 5/);
  });
});

describe('weight decay on conv/linear weights only', () => {
  test('resnet50: conv and fc weights decay; BN affine and the fc bias do not', () => {
    const { params } = buildModel({ arch: 'resnet50', numClasses: 10, inChannels: 3, imageSize: 32, activation: parseActivation('relu'), mean: [0, 0, 0], std: [1, 1, 1] }, { bnMode: 'eval', seed: 0 });
    const decayed = params.filter((p) => decays(p, 'weights')).map((p) => p.name);
    expect(decayed).toContain('conv1.weight');
    expect(decayed).toContain('layer4.2.conv3.weight');
    expect(decayed).toContain('layer1.0.downsample.0.weight');
    expect(decayed).toContain('fc.weight');
    expect(decayed.some((n) => /bn|downsample\.1|bias/.test(n))).toBe(false);
    expect(decayed).toHaveLength(54); // 53 convolutions and the fc layer
    expect(params.filter((p) => decays(p, 'all'))).toHaveLength(params.length);
  });

  test('SmoothReLU\'s scalar never decays', () => {
    const { params } = buildModel({ arch: 'small-cnn', numClasses: 3, inChannels: 1, imageSize: 8, width: 2, activation: parseActivation('smooth-relu'), mean: [0], std: [1] }, { bnMode: 'eval', seed: 0 });
    const b = params.find((p) => p.name.endsWith('smooth_relu_b'))!;
    expect(decays(b, 'all')).toBe(false);
  });

  test('the default is stored as unset, so existing run ids and artifact keys do not change', () => {
    const dflt = resolveTrainConfig({});
    expect('weightDecayScope' in dflt || 'randomStartProb' in dflt).toBe(false);
    const all = resolveTrainConfig({ weightDecayScope: 'all' as never, randomStartProb: 1 });
    expect(all.weightDecayScope).toBeUndefined();
    expect(all.randomStartProb).toBeUndefined();
    const spec = { arch: 'small-cnn', numClasses: 3, inChannels: 1, imageSize: 8, activation: parseActivation('relu'), mean: [0], std: [1] };
    expect(artifactConfigFor(dflt, spec).optimizer).toEqual({ kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 5e-4 });
    expect(artifactConfigFor(resolveTrainConfig({ weightDecayScope: 'weights' }), spec).optimizer.decayScope).toBe('weights');
    // The train step is planned for the run's batch size (weight gradients in cache-sized pieces of it).
    expect(artifactConfigFor(resolveTrainConfig({ batchSize: 48 }), spec).plannedBatch).toBe(48);
    expect(() => resolveTrainConfig({ weightDecayScope: 'bn' as never })).toThrow(/--weight-decay-scope must be one of all, weights/);
  });
});

describe('PGD random start with a probability', () => {
  const model = new ToyModel({ numClasses: 4, shape: [1, 4, 4], seed: 3 });
  const n = 200;
  const x = new Rng(9).fillUniform(new Float32Array(n * 16), 0.2, 0.8);
  const y = Int32Array.from({ length: n }, (_, i) => i % 4);
  /** Examples whose start (step size 0: the adversarial point is the start) is x itself. */
  async function cleanStarts(prob?: number): Promise<number> {
    const r = await new Pgd({ eps: 0.1, norm: 'linf', steps: 1, stepSize: 0, seed: 4, randomStartProb: prob }).run(model, x, y, n);
    let same = 0;
    for (let i = 0; i < n; i++) if (r.xAdv.subarray(i * 16, (i + 1) * 16).every((v, j) => v === x[i * 16 + j])) same++;
    return same;
  }

  test('1 (or unset): every example starts at random; 0: none; 0.8: about 80%', async () => {
    expect(await cleanStarts()).toBe(0);
    expect(await cleanStarts(1)).toBe(0);
    expect(await cleanStarts(0)).toBe(n);
    const fromClean = await cleanStarts(0.8);
    expect(fromClean).toBeGreaterThan(0.1 * n);
    expect(fromClean).toBeLessThan(0.3 * n);
  });

  test('without a probability the random numbers are those of plain PGD', async () => {
    const a = await new Pgd({ eps: 0.1, norm: 'linf', steps: 2, seed: 4 }).run(model, x, y, n);
    const b = await new Pgd({ eps: 0.1, norm: 'linf', steps: 2, seed: 4, randomStartProb: 1 }).run(model, x, y, n);
    expect(b.xAdv).toEqual(a.xAdv);
    expect(() => new Pgd({ eps: 0.1, norm: 'linf', seed: 0, randomStartProb: 1.5 })).toThrow(/randomStartProb must be in \[0, 1\]/);
  });
});
