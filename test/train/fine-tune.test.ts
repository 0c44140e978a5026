// Fine-tuning starts from the pre-trained tensors, with a new head and (TWINS) frozen BN copies.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { fitState, readForeignState } from '../../src/interop/state-dict.js';
import { parseActivation } from '../../src/models/index.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { fineTuneState } from '../../src/train/loop.js';
import { initialState } from '../../src/train/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'advrun-ft-'));
const FIX = join(import.meta.dirname, '..', 'fixtures', 'interop');
const arr = (t: { data: ArrayLike<number> }) => Array.from(t.data);

describe('fine-tuning initial state', () => {
  test('advrun checkpoint: every tensor but the head, frozen BN = pre-trained BN, new head', () => {
    const spec = (classes: number) => ({ arch: 'small-cnn', numClasses: classes, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.3], std: [0.3] });
    const pre = ensureArtifacts({ model: spec(5), loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const preState = initialState(pre.manifest, 7);
    (preState.get('bn1.running_mean')!.data as Float32Array).fill(0.25); // distinguishable statistics
    const ck = join(dir, 'pre.safetensors');
    saveCheckpoint(ck, preState, { model: spec(5), epoch: 1, step: 1 });
    const twins = ensureArtifacts({ model: spec(3), loss: { kind: 'twins-at', lambda: 1, labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const s = fineTuneState(ck, twins.manifest, 1);
    expect(arr(s.get('conv2.weight')!)).toEqual(arr(preState.get('conv2.weight')!));
    expect(arr(s.get('bn1.running_mean')!)).toEqual(Array(4).fill(0.25));
    expect(arr(s.get('frozen.bn1.running_mean')!)).toEqual(Array(4).fill(0.25));
    expect(arr(s.get('frozen.bn2.weight')!)).toEqual(arr(preState.get('bn2.weight')!));
    expect(s.get('fc.weight')!.dims).toEqual([3, 16]); // the new head for 3 classes
    expect(arr(s.get('momentum.conv1.weight')!).every((v) => v === 0)).toBe(true);
  });

  test('PyTorch state_dict (.pt with module. prefixes) works as --init', () => {
    const spec = { arch: 'preact-resnet18', numClasses: 5, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const s = fineTuneState(join(FIX, 'preact18_w4.pt'), art.manifest, 0);
    const torch = readForeignState(join(FIX, 'preact18_w4.safetensors')).tensors;
    expect(arr(s.get('layer3.0.conv1.weight')!)).toEqual(arr(torch.get('layer3.0.conv1.weight')!));
    expect(s.get('linear.weight')!.dims).toEqual([5, 32]);
  });

  test('a checkpoint of another architecture is refused, naming the difference', () => {
    const spec = { arch: 'small-cnn', numClasses: 5, inChannels: 1, imageSize: 12, width: 8, activation: parseActivation('relu'), mean: [0.3], std: [0.3] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    expect(() => fineTuneState(join(dir, 'pre.safetensors'), art.manifest, 0)).toThrow(/is a width 4 model but this run builds width 8/);
  });

  test('robustness-library checkpoint (Salman et al.): model.* is used, attacker.* and normalizer.* dropped', () => {
    const spec = { arch: 'small-cnn', numClasses: 5, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.3], std: [0.3] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const pre = initialState(art.manifest, 11);
    const file: Record<string, ReturnType<typeof makeTensor>> = {
      'module.normalizer.new_mean': makeTensor('float32', [1, 1, 1], [0.5]),
      'module.attacker.normalizer.new_mean': makeTensor('float32', [1, 1, 1], [0.5]),
    };
    for (const p of art.manifest.params.map((q) => q.name)) {
      file[`module.model.${p}`] = pre.get(p)!;
      file[`module.attacker.model.${p}`] = makeTensor('float32', pre.get(p)!.dims); // zeros: must not be picked
    }
    for (const b of art.manifest.buffers) file[`module.model.${b}`] = pre.get(b)!;
    const path = join(dir, 'robustness.safetensors');
    writeSafetensors(path, file);
    const ft = ensureArtifacts({ model: { ...spec, numClasses: 3 }, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const s = fineTuneState(path, ft.manifest, 0);
    expect(arr(s.get('conv2.weight')!)).toEqual(arr(pre.get('conv2.weight')!));
    expect(arr(s.get('bn3.running_var')!)).toEqual(arr(pre.get('bn3.running_var')!));
    // The layout is handled where foreign state_dicts are read, so eval / export / transfer open it too.
    const fitted = fitState(readForeignState(path).tensors, spec, path).state;
    expect(arr(fitted.get('conv2.weight')!)).toEqual(arr(pre.get('conv2.weight')!));
  });
});
