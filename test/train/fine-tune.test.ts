// Fine-tuning starts from the pre-trained tensors, with a new head and (TWINS) frozen BN copies.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { openModel } from '../../src/interop/load.js';
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

  describe('robustness-library checkpoint (Salman et al.)', () => {
    const spec = { arch: 'small-cnn', numClasses: 5, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.3], std: [0.3] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir);
    const pre = initialState(art.manifest, 11);
    /** The library's layout: model.* and a zeroed attacker.model.* copy, normalizer buffers [C, 1, 1], under module. */
    const write = (name: string, mean: number, std: number) => {
      const file: Record<string, ReturnType<typeof makeTensor>> = {};
      for (const prefix of ['module.', 'module.attacker.']) {
        file[`${prefix}normalizer.new_mean`] = makeTensor('float32', [1, 1, 1], [mean]);
        file[`${prefix}normalizer.new_std`] = makeTensor('float32', [1, 1, 1], [std]);
      }
      for (const p of art.manifest.params.map((q) => q.name)) {
        file[`module.model.${p}`] = pre.get(p)!;
        file[`module.attacker.model.${p}`] = makeTensor('float32', pre.get(p)!.dims); // zeros: must not be picked
      }
      for (const b of art.manifest.buffers) file[`module.model.${b}`] = pre.get(b)!;
      const path = join(dir, name);
      writeSafetensors(path, file);
      return path;
    };
    const fineTune = (numClasses: number) => ensureArtifacts({ model: { ...spec, numClasses }, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, dir).manifest;

    test('model.* is used, the attacker.* copy and the normalizer are reported as left out', () => {
      const path = write('robustness.safetensors', 0.3, 0.3);
      const s = fineTuneState(path, fineTune(3), 0);
      expect(arr(s.get('conv2.weight')!)).toEqual(arr(pre.get('conv2.weight')!));
      expect(arr(s.get('bn3.running_var')!)).toEqual(arr(pre.get('bn3.running_var')!));
      // The layout is handled where foreign state_dicts are read, so eval / export / transfer open it too.
      const foreign = readForeignState(path);
      expect(foreign.normalizer).toEqual({ mean: [expect.closeTo(0.3, 6)], std: [expect.closeTo(0.3, 6)] });
      expect(foreign.notes.join()).toMatch(/robustness-library checkpoint: using its model\.\* tensors; \d+ others \(the attacker\.\* copy and the normalizer\.\* buffers\) left out/);
      const fitted = fitState(foreign.tensors, spec, path).state;
      expect(arr(fitted.get('conv2.weight')!)).toEqual(arr(pre.get('conv2.weight')!));
    });

    test('fine-tuning with another normalisation than the checkpoint records is refused, naming the options that match', () => {
      const path = write('robustness-norm.safetensors', 0.5, 0.25);
      expect(() => fineTuneState(path, fineTune(3), 0)).toThrow(/normalises its inputs with mean \[0\.5\], std \[0\.25\].*pass --mean 0\.5 --std 0\.25/);
    });

    test('opening it for evaluation adopts its normaliser unless --mean/--std are given, and refuses different ones', async () => {
      const path = write('robustness-eval.safetensors', 0.5, 0.25);
      const arch = { arch: 'small-cnn', width: 4, inChannels: 1, imageSize: 12, numClasses: 5 };
      const opened = await openModel(path, { arch, graphsDir: dir });
      expect(opened.spec.mean).toEqual([0.5]);
      expect(opened.spec.std).toEqual([0.25]);
      expect(opened.notes.join('\n')).toMatch(/mean \[0\.5\], std \[0\.25\] \(the checkpoint's normalizer/);
      expect(opened.notes.join('\n')).toMatch(/robustness-library checkpoint/);
      await expect(openModel(path, { arch: { ...arch, mean: '0.3', std: '0.3' }, graphsDir: dir })).rejects.toThrow(/pass --mean 0\.5 --std 0\.25, or leave them out/);
    });

    test('a normalizer with new_mean but no new_std is a one-line error', () => {
      const path = join(dir, 'robustness-half.safetensors');
      writeSafetensors(path, { 'model.conv1.weight': pre.get('conv1.weight')!, 'attacker.model.conv1.weight': pre.get('conv1.weight')!, 'normalizer.new_mean': makeTensor('float32', [1, 1, 1], [0.5]) });
      expect(() => readForeignState(path)).toThrow(/its normalizer has new_mean \[0\.5\] and no new_std/);
    });
  });
});
