// Clean and deterministic-PGD accuracy on fashion-mnist-mini's test split (500 images) against
// PyTorch's references (bench/torch_eval.py via make_interop_fixtures.py), through `advrun compare`'s
// code path: same data (SHA-256), same attack settings, logits within 1e-4, accuracies within 0.5
// points — in fact identical example by example.

import { afterAll, describe, expect, test } from 'vitest';
import { attackOptionsFrom, compareWithReference, evaluatePerExample, firstExamples, readReference } from '../../src/interop/compare.js';
import { openModel, type ArchOptions } from '../../src/interop/load.js';
import { ModelRuntime } from '../../src/train/runtime.js';
import { fix, fmnistTest, PREACT_ARCH, tempDir } from './helpers.js';

const graphsDir = tempDir('advrun-graphs-');
const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

async function runtimeFor(file: string, arch?: ArchOptions) {
  const m = await openModel(fix(file), { arch, graphsDir });
  const rt = new ModelRuntime(m.artifacts, m.state);
  runtimes.push(rt);
  return rt;
}

describe('accuracy against PyTorch on fashion-mnist-mini test', () => {
  // act_cnn.onnx gets the same full comparison through the CLI (cli.test.ts, `advrun compare`).
  const cases: [string, string, ArchOptions | undefined][] = [['preact18_w4.pt', 'preact18_w4_ref.json', PREACT_ARCH]];
  test.each(cases)('%s: clean and PGD-10 (no random start) within 0.5 points, logits within 1e-4', async (file, refFile, arch) => {
    const ref = readReference(fix(refFile));
    expect(ref.attack).toMatchObject({ attack: 'pgd', norm: 'linf', eps: 0.03, steps: 10, randomStart: false });
    const ds = await fmnistTest(ref.data.n);
    const rt = await runtimeFor(file, arch);
    const atk = attackOptionsFrom(ref.attack!);
    const r = await evaluatePerExample(rt, ds, atk.name, atk.options, 256);
    const c = compareWithReference(r, ds, ref, { logits: 1e-4, accPoints: 0.5 });
    expect(c.checks.filter((ch) => !ch.pass)).toEqual([]);
    expect(c.pass).toBe(true);
    expect(c.advrun.robust_acc!).toBeLessThan(c.advrun.clean_acc - 0.2); // the attack does something
    expect(c.diff.clean_disagree).toBe(0);
    expect(c.diff.robust_disagree).toBe(0);
  });

  // The other two forms of the PreActResNet fixture: PGD on the first 64 examples
  // checked example by example against the reference (each example's attack is independent of the others).
  test.each([['preact18_w4.safetensors', PREACT_ARCH], ['preact18_w4.onnx', undefined]] as [string, ArchOptions | undefined][])('%s: same per-example outcomes as PyTorch', async (file, arch) => {
    const ref = readReference(fix('preact18_w4_ref.json'));
    const ds = await firstExamples(await fmnistTest(), 64);
    const rt = await runtimeFor(file, arch);
    const atk = attackOptionsFrom(ref.attack!);
    const r = await evaluatePerExample(rt, ds, atk.name, atk.options, 64);
    expect([...r.clean].join('')).toBe(ref.per_example!.clean.slice(0, 64));
    expect([...r.robust!].join('')).toBe(ref.per_example!.robust!.slice(0, 64));
  });

  test('compare refuses different data and different attack settings', async () => {
    const ref = readReference(fix('preact18_w4_ref.json'));
    const ds = await firstExamples(await fmnistTest(), 20);
    const rt = await runtimeFor('preact18_w4.pt', PREACT_ARCH);
    const r = await evaluatePerExample(rt, ds, 'fgsm', { eps: 0.03, norm: 'linf', seed: 0 }, 20);
    const c = compareWithReference(r, ds, ref, { logits: 1e-4, accPoints: 0.5 });
    expect(c.pass).toBe(false);
    expect(c.checks.find((ch) => ch.name === 'data')).toMatchObject({ value: 'different', pass: false });
    expect(c.checks.find((ch) => ch.name === 'attack settings')).toMatchObject({ pass: false });
    expect(c.checks.find((ch) => ch.name === 'logits max abs diff')).toMatchObject({ pass: true }); // the first 16 rows are the same images
  });
});
