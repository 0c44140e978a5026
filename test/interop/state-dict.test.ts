// PyTorch state_dicts (.pt and .safetensors) mapped onto advrun's PreActResNet-18: same logits and
// input gradients as PyTorch, and one-line errors naming the first tensor that does not fit.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { openModel } from '../../src/interop/load.js';
import { fitState, readForeignState } from '../../src/interop/state-dict.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { ModelRuntime } from '../../src/train/runtime.js';
import { UserError } from '../../src/util/errors.js';
import { expected, fix, fmnistTest, maxAbsDiff, PREACT_ARCH, PREACT_SPEC, relDiff, tempDir } from './helpers.js';

const graphsDir = tempDir('advrun-graphs-');
const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

describe('PyTorch state_dicts on built-in architectures', () => {
  test.each(['preact18_w4.pt', 'preact18_w4.safetensors'])('%s: logits and input gradient match PyTorch', async (file) => {
    const ds = await fmnistTest();
    const m = await openModel(fix(file), { arch: PREACT_ARCH, graphsDir });
    expect(m.kind).toBe('pytorch');
    expect(m.spec).toMatchObject({ arch: 'preact-resnet18', width: 4, inChannels: 1, imageSize: 28, numClasses: 10, mean: [0.286], std: [0.353] });
    expect(m.notes[0]).toMatch(/^normalisation inside the model: mean \[0\.286\], std \[0\.353\] \(the default; pass --mean\/--std/);
    if (file.endsWith('.pt')) expect(m.notes.slice(1)).toEqual(['state_dict found under ["state_dict"]', 'prefix "module." stripped from every key']);
    const rt = new ModelRuntime(m.artifacts, m.state);
    runtimes.push(rt);
    expect(maxAbsDiff(await rt.logits(ds.images, ds.n), expected().get('preact.logits')!)).toBeLessThanOrEqual(1e-4);
    const x = ds.images.subarray(0, 8 * 784), y = ds.labels.subarray(0, 8);
    const { grad } = await rt.lossGrad(x, 8, { kind: 'ce', labels: y });
    expect(relDiff(grad, expected().get('preact.grad_input')!)).toBeLessThan(1e-4);
  });

  test('num_batches_tracked is ignored; every other tensor must fit by name and shape', () => {
    const sd = readForeignState(fix('preact18_w4.safetensors')).tensors;
    expect(sd.has('bn.num_batches_tracked')).toBe(true);
    const { state } = fitState(sd, PREACT_SPEC, 'ck.safetensors');
    expect(state.has('bn.num_batches_tracked')).toBe(false);
    expect(state.get('conv1.weight')).toBe(sd.get('conv1.weight'));

    const fails = (s: Map<string, ReturnType<typeof makeTensor>>, spec = PREACT_SPEC) => {
      try {
        fitState(s, spec, 'ck.safetensors');
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      throw new Error('fitState accepted a state_dict that does not fit');
    };
    const arch = 'preact-resnet18 width 4 \\(1x28x28, 10 classes\\)';
    const missing = new Map(sd);
    missing.delete('layer2.0.shortcut.0.weight');
    expect(fails(missing)).toMatch(new RegExp(`^ck\\.safetensors does not fit ${arch}: tensor "layer2\\.0\\.shortcut\\.0\\.weight" \\[8,4,1,1\\] is missing$`));
    expect(fails(sd, { ...PREACT_SPEC, width: 8 })).toMatch(/does not fit preact-resnet18 width 8 .*: tensor "conv1\.weight" has shape \[4,1,3,3\] but the model needs \[8,1,3,3\]/);
    expect(fails(sd, { ...PREACT_SPEC, numClasses: 100 })).toMatch(/tensor "linear\.weight" has shape \[10,32\] but the model needs \[100,32\]/);
    const extra = new Map(sd).set('layer5.0.conv1.weight', makeTensor('float32', [2, 2]));
    expect(fails(extra)).toMatch(new RegExp(`does not fit ${arch}: tensor "layer5\\.0\\.conv1\\.weight" \\[2,2\\] is unexpected`));
    const norm = new Map(sd).set('mu', makeTensor('float32', [1, 1, 1, 1]));
    expect(fails(norm)).toMatch(/tensor "mu" \[1,1,1,1\] is unexpected.*pass --mean\/--std/);
    expect(fails(sd, { ...PREACT_SPEC, arch: 'small-cnn', width: 4 })).toMatch(/^ck\.safetensors does not fit small-cnn width 4 .*is missing$/);
  });

  test('wrapper prefixes are stripped only when every key has them', () => {
    const sd = readForeignState(fix('preact18_w4.safetensors')).tensors;
    const wrapped = new Map([...sd].map(([k, v]) => [`_orig_mod.module.${k}`, v]));
    expect(fitState(wrapped, PREACT_SPEC, 'w').stripped).toEqual(['_orig_mod.', 'module.']);
    const partly = new Map([...sd].map(([k, v], i) => [i === 0 ? k : `module.${k}`, v]));
    expect(() => fitState(partly, PREACT_SPEC, 'p')).toThrow(/is missing/);
  });

  test('a state_dict without --arch asks for it; a bad file names itself', async () => {
    await expect(openModel(fix('preact18_w4.pt'), { graphsDir })).rejects.toThrow(/preact18_w4\.pt is a PyTorch state_dict, which does not record its architecture: pass --arch/);
    const dir = tempDir();
    const bogus = join(dir, 'x.bin');
    writeSafetensors(join(dir, 'ok.safetensors'), { w: makeTensor('float32', [1], [1]) });
    writeFileSync(bogus, 'hello world, not a model');
    await expect(openModel(bogus, { graphsDir })).rejects.toThrow(/is neither an advrun checkpoint, a PyTorch checkpoint/);
    await expect(openModel(join(dir, 'ok.safetensors'), { graphsDir, arch: PREACT_ARCH })).rejects.toThrow(/tensor "conv1\.weight" \[4,1,3,3\] is missing/);
  });
});
