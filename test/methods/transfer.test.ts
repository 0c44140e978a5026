// Transfer (RFN / LGV protocol): the example selection (first n that EVERY target classifies
// correctly), success = 1 − target accuracy on the crafted examples (checked against an independent
// computation), white-box cells, the report files, step-size parsing and labels.

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { Bim } from '../../src/attacks/bim.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { runtimeFromCheckpoint } from '../../src/cli/load-model.js';
import { batches, loadDataset, type Dataset } from '../../src/data/index.js';
import { parseStepSize, transferMatrix, uniqueLabels, type TransferModel } from '../../src/methods/transfer.js';
import { parseActivation, type ModelSpec } from '../../src/models/index.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { runCli } from '../helpers/cli.js';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));
const graphsDir = tmp('advrun-graphs-');
const SPEC: ModelSpec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };

/** A small-cnn (width 4) trained for one epoch from init seed `seed` (test accuracy ~25-40 %), saved as an advrun checkpoint. */
async function trainedCheckpoint(path: string, seed: number): Promise<string> {
  const art = ensureArtifacts({ model: SPEC, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, graphsDir);
  const rt = new ModelRuntime(art, initialState(art.manifest, seed));
  const train = await loadDataset('fashion-mnist-mini', 'train');
  for (const b of batches(train, { batchSize: 64, seed, epoch: 0 })) await rt.trainStep(b.x, b.y, b.n, 0.02);
  saveCheckpoint(path, rt.getState(), { model: SPEC, epoch: 1, step: rt.step, extra: { dataset: 'fashion-mnist-mini', classes: null } });
  await rt.release();
  return path;
}

/** Strictly correct (true-class logit above every other), computed here independently. */
function correctFlags(logits: Float32Array, y: ArrayLike<number>, k: number): boolean[] {
  return Array.from({ length: y.length }, (_, i) => {
    const row = logits.subarray(i * k, (i + 1) * k);
    return row.every((v, j) => j === y[i] || v < row[y[i]!]!);
  });
}

let dir: string, A: string, B: string, C: string, ds: Dataset;
beforeAll(async () => {
  dir = tmp('advrun-transfer-');
  [A, B, C] = await Promise.all([trainedCheckpoint(join(dir, 'a.safetensors'), 1), trainedCheckpoint(join(dir, 'b.safetensors'), 2), trainedCheckpoint(join(dir, 'c.safetensors'), 3)]);
  ds = await loadDataset('fashion-mnist-mini', 'test');
});

describe('transferMatrix', () => {
  test('selects the first n examples every target gets right; success = 1 − target accuracy on them', async () => {
    const rts = new Map<string, ModelRuntime>();
    for (const p of [A, B, C]) rts.set(p, (await runtimeFromCheckpoint(p, { split: 'test', ds, graphsDir })).rt);
    const asModel = (p: string): TransferModel => ({ label: p, source: p, id: p, model: rts.get(p)! });
    const eps = 8 / 255, steps = 5, stepSize = eps / 4, n = 40, batchSize = 16;
    const r = await transferMatrix([A, B].map(asModel), [B, C].map(asModel), ds, { attack: 'bim', eps, norm: 'linf', steps, stepSize, seed: 0, n, batchSize });

    // Independent selection: every target's logits over a prefix of the split in one call.
    const k = ds.numClasses, per = 784, m = ds.n;
    const x = ds.images.subarray(0, m * per), y = ds.labels.subarray(0, m);
    const okB = correctFlags(await rts.get(B)!.logits(x, m), y, k);
    const okC = correctFlags(await rts.get(C)!.logits(x, m), y, k);
    const want = okB.map((_, i) => i).filter((i) => okB[i] && okC[i]).slice(0, n);
    expect(want).toHaveLength(n);
    expect(Array.from(r.selection.indices)).toEqual(want);
    expect(r.selection.scanned).toBe(want[n - 1]! + 1);
    // teeth: in the scanned prefix each target alone would have admitted examples the other gets wrong
    const prefix = [...Array(r.selection.scanned).keys()];
    expect(prefix.some((i) => okB[i] && !okC[i])).toBe(true);
    expect(prefix.some((i) => !okB[i] && okC[i])).toBe(true);

    // Independent success rates: BIM on each surrogate over the selected examples, targets' accuracy on the result.
    const xs = new Float32Array(n * per), ys = new Int32Array(n);
    want.forEach((src, i) => { xs.set(ds.images.subarray(src * per, (src + 1) * per), i * per); ys[i] = ds.labels[src]!; });
    const bim = new Bim({ eps, norm: 'linf', steps, stepSize, seed: 0 });
    const expected: number[][] = [];
    for (const s of [A, B]) {
      const adv = new Float32Array(n * per);
      for (let o = 0; o < n; o += batchSize) {
        const mm = Math.min(batchSize, n - o);
        adv.set((await bim.run(rts.get(s)!, xs.subarray(o * per, (o + mm) * per), ys.subarray(o, o + mm), mm)).xAdv, o * per);
      }
      const row: number[] = [];
      for (const t of [B, C]) {
        const acc = correctFlags(await rts.get(t)!.logits(adv, n), ys, k).filter(Boolean).length / n;
        row.push(1 - acc);
      }
      expected.push(row);
    }
    expect(r.success).toEqual(expected);
    expect(r.success.flat().some((v) => v > 0 && v < 1)).toBe(true);
    // B is surrogate and target: its cell is the white-box rate, kept, and left out of mean_transfer.
    expect(r.whiteBox).toEqual([[false, false], [true, false]]);
    expect(r.success[1]![0]!).toBeGreaterThan(r.success[1]![1]!);
    expect(r.mean[1]).toBeCloseTo((expected[1]![0]! + expected[1]![1]!) / 2, 12);
    expect(r.meanTransfer).toEqual([(expected[0]![0]! + expected[0]![1]!) / 2, expected[1]![1]!]);
    for (const rt of rts.values()) await rt.release();
  });
});

describe('advrun transfer', () => {
  test('a missing target is a one-line error before any data is loaded', () => {
    const r = runCli(['transfer', '--surrogates', A, '--targets', `${B},${join(dir, 'missing.safetensors')}`, '--out', join(dir, 'never')], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^advrun: cannot read .*missing\.safetensors: no such file$/);
  });

  test('writes the surrogate x target matrix (CSV, Markdown) and a JSON with every setting', () => {
    const out = join(dir, 'report');
    const r = runCli(['transfer', '--surrogates', `${A},${B}`, '--targets', `${B},${C}`, '--n', '30', '--steps', '3', '--batch-size', '16', '--out', out, '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r.code, r.stderr).toBe(0);
    const csv = readFileSync(join(out, 'transfer.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    expect(csv).toHaveLength(3);
    expect(csv[0]).toEqual(['surrogate', 'b', 'c', 'mean', 'mean_transfer']);
    expect(csv.map((row) => row[0])).toEqual(['surrogate', 'a', 'b']);
    for (const row of csv.slice(1)) {
      expect(row).toHaveLength(5);
      for (const v of row.slice(1)) expect(Number(v) >= 0 && Number(v) <= 1).toBe(true);
    }
    const md = readFileSync(join(out, 'transfer.md'), 'utf8').split('\n').filter((l) => l.startsWith('|'));
    expect(md).toHaveLength(4);
    expect(md[3]).toMatch(/^\| b \| [0-9.]+ \(wb\) \| [0-9.]+ \|/);
    const json = JSON.parse(readFileSync(join(out, 'transfer.json'), 'utf8'));
    expect(JSON.parse(r.stdout)).toEqual(json);
    expect(json).toMatchObject({ kind: 'transfer', attack: 'bim', norm: 'linf', steps: 3, n: 30, n_requested: 30, seed: 0, bn_mode: 'eval', random_start: false, dataset: 'fashion-mnist-mini', split: 'test' });
    expect(json.eps).toBeCloseTo(4 / 255, 12);
    expect(json.step_size).toBeCloseTo(4 / 2550, 12);
    expect(Object.keys(json.success)).toEqual(['a', 'b']);
    expect(Object.keys(json.success.a)).toEqual(['b', 'c']);
    expect(Number(csv[1]![1])).toBeCloseTo(json.success.a.b, 5);
    expect(json.white_box).toEqual([{ surrogate: 'b', target: 'b' }]);
    expect(json.selection.rule).toMatch(/every target classifies correctly/);
    expect(json.selection.indices).toHaveLength(30);
    expect(json.surrogates.map((s: { sha256: string }) => s.sha256)).toHaveLength(2);
    expect(json.surrogates[0].sha256).toBe(createHash('sha256').update(readFileSync(A)).digest('hex')); // the file's own hash
    expect(json.surrogates[1].sha256).toBe(json.targets[0].sha256);
    expect(json.advrun_version).toBeTypeOf('string');
    expect('git_commit' in json).toBe(true);
    expect(existsSync(join(out, 'transfer.md'))).toBe(true);
  });
});

describe('helpers', () => {
  test("a model's class spec is compared by the classes it names: '0,1,...,9' trained, --classes 0-9 used, no warning", () => {
    const ck = loadCheckpoint(A);
    const spelled = join(dir, 'spelled.safetensors');
    saveCheckpoint(spelled, ck.state, { ...ck.meta, extra: { ...ck.meta.extra, classes: '0,1,2,3,4,5,6,7,8,9' } });
    const r = runCli(['transfer', '--surrogates', spelled, '--targets', B, '--classes', '0-9', '--n', '10', '--steps', '1', '--out', join(dir, 'spelled'), '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).warnings.filter((w: string) => /trained on classes/.test(w))).toEqual([]);
    // A model trained on another dataset is named.
    const other = join(dir, 'other.safetensors');
    saveCheckpoint(other, ck.state, { ...ck.meta, extra: { ...ck.meta.extra, dataset: 'fashion-mnist' } });
    const r2 = runCli(['transfer', '--surrogates', A, '--targets', other, '--n', '10', '--steps', '1', '--out', join(dir, 'other'), '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout).warnings.join('\n')).toMatch(/other\.safetensors was trained on fashion-mnist but the data is fashion-mnist-mini/);
  });

  test('step sizes: numbers, fractions and multiples of eps', () => {
    const eps = 4 / 255;
    expect(parseStepSize('eps/10', eps)).toBeCloseTo(eps / 10, 15);
    expect(parseStepSize('0.1*eps', eps)).toBeCloseTo(eps / 10, 15);
    expect(parseStepSize('eps*0.25', eps)).toBeCloseTo(eps / 4, 15);
    expect(parseStepSize('eps', eps)).toBe(eps);
    expect(parseStepSize('1/255', eps)).toBeCloseTo(1 / 255, 15);
    expect(parseStepSize('0.3', 3)).toBeCloseTo(0.3, 15);
    expect(() => parseStepSize('eps/', eps)).toThrow(/--step-size "eps\/" is not understood/);
    expect(() => parseStepSize('-1', eps)).toThrow(/must be a positive number/);
  });

  test('labels are file names, with parent directories where they clash', () => {
    expect(uniqueLabels(['runs/a/final.safetensors', 'runs/b/final.safetensors', 'x/sam.safetensors'])).toEqual(['a/final', 'b/final', 'sam']);
    // Same directory, same name, other format: the extension tells them apart.
    expect(uniqueLabels(['x/t.pt', 'x/t.safetensors', 'x/u.pt'])).toEqual(['x/t.pt', 'x/t.safetensors', 'u']);
  });
});
