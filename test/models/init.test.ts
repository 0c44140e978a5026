// Initial weights follow each architecture's reference code: PreActResNet-18 and small-cnn keep PyTorch's
// layer defaults; torchvision's ResNet-50 and RobustBench's WideResNet draw conv weights from N(0, 2/fan_out)
// and the WideResNet zeroes its fc bias.
import { describe, expect, test } from 'vitest';
import { buildModel, parseActivation, type ModelSpec } from '../../src/models/index.js';

const spec = (arch: string, extra: Partial<ModelSpec> = {}): ModelSpec =>
  ({ arch, numClasses: 10, inChannels: 3, imageSize: 32, activation: parseActivation('relu'), mean: [0, 0, 0], std: [1, 1, 1], ...extra }) as ModelSpec;

function weights(s: ModelSpec, name: string): Float32Array {
  const t = buildModel(s, { bnMode: 'eval', seed: 0 }).graph.initializers.get(name);
  if (!t) throw new Error(`no initializer ${name}`);
  return t.data as Float32Array;
}
const std = (v: Float32Array) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);

describe('initial weights', () => {
  test('WideResNet: conv N(0, 2/(k*k*cout)), fc bias zero', () => {
    const s = spec('wrn', { depth: 10, width: 1 });
    const w = weights(s, 'block1.layer.0.conv2.weight'); // [16, 16, 3, 3]
    expect(std(w) / Math.sqrt(2 / (16 * 9))).toBeCloseTo(1, 1);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(1 / Math.sqrt(16 * 9)); // not the uniform bound
    expect(weights(s, 'fc.bias').every((v) => v === 0)).toBe(true);
  });

  test('ResNet-50: conv N(0, 2/(k*k*cout)), fc as nn.Linear', () => {
    const s = spec('resnet50', { width: 8 });
    const w = weights(s, 'layer1.0.conv2.weight'); // [8, 8, 3, 3]
    expect(std(w) / Math.sqrt(2 / (8 * 9))).toBeCloseTo(1, 0);
    expect(weights(s, 'fc.bias').some((v) => v !== 0)).toBe(true);
  });

  test('PreActResNet-18: nn.Conv2d / nn.Linear defaults, U(+-1/sqrt(fan_in))', () => {
    const s = spec('preact-resnet18', { width: 8 });
    const w = weights(s, 'layer1.0.conv2.weight'); // [8, 8, 3, 3]
    const bound = 1 / Math.sqrt(8 * 9);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(std(w) / (bound / Math.sqrt(3))).toBeCloseTo(1, 0);
    expect(weights(s, 'linear.bias').some((v) => v !== 0)).toBe(true);
  });
});
