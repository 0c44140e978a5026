// Class subsets, train/val split, limit, and the loadDataset pipeline that chains them.

import { describe, expect, test } from 'vitest';
import { applyLimit, loadDataset, parseClassSpec, selectClasses, splitTrainVal } from '../../src/data/index.js';
import { largestRemainder } from '../../src/data/transforms.js';
import { expectUserError, toyDataset } from './helpers.js';

const offline = { download: false, systemDir: null, env: {} };
const per = (ds: { channels: number; height: number; width: number }) => ds.channels * ds.height * ds.width;

describe('--classes parser', () => {
  test('ranges, lists, mixes, names, arrays; sorted and de-duplicated', () => {
    expect(parseClassSpec('0-4', 10)).toEqual([0, 1, 2, 3, 4]);
    expect(parseClassSpec('5,7,9', 10)).toEqual([5, 7, 9]);
    expect(parseClassSpec(' 9, 0-2 ,7,7 ', 10)).toEqual([0, 1, 2, 7, 9]);
    expect(parseClassSpec('Bag,Trouser', 10, ['T', 'Trouser', 'x', 'x', 'x', 'x', 'x', 'x', 'Bag', 'y'])).toEqual([1, 8]);
    expect(parseClassSpec([3, 1], 10)).toEqual([1, 3]);
  });

  test('bad specs are UserErrors', async () => {
    await expectUserError(() => parseClassSpec('0-10', 10), /'0-10' is not a class id in 0\.\.9/);
    await expectUserError(() => parseClassSpec('4-0', 10), /reversed/);
    await expectUserError(() => parseClassSpec('1,,2', 10), /empty entry/);
    await expectUserError(() => parseClassSpec('cats', 10), /cannot parse 'cats'/);
    await expectUserError(() => parseClassSpec([], 10), /no classes selected/);
    await expectUserError(() => parseClassSpec([-1], 10), /not a class id/);
  });
});

describe('class subsets', () => {
  test('re-index labels 0..k-1, keep original ids and names, keep images with their labels', () => {
    const ds = toyDataset(50, 10);
    const sub = selectClasses(ds, '5,7,9');
    expect(sub.numClasses).toBe(3);
    expect(sub.originalClassIds).toEqual([5, 7, 9]);
    expect(sub.classNames).toEqual(['c5', 'c7', 'c9']);
    expect(sub.n).toBe(15);
    for (let i = 0; i < sub.n; i++) {
      expect(sub.labels[i]).toBeGreaterThanOrEqual(0);
      expect(sub.labels[i]).toBeLessThan(3);
    }
    // Example 0 of the subset is toy example 5 (label 5 -> 0).
    expect(sub.labels[0]).toBe(0);
    expect(sub.images.subarray(0, per(ds))).toEqual(ds.images.subarray(5 * per(ds), 6 * per(ds)));
    // A subset of a subset maps back to the original ids.
    const sub2 = selectClasses(sub, '1-2');
    expect(sub2.originalClassIds).toEqual([7, 9]);
  });
});

describe('train/val split', () => {
  const ds = toyDataset(200, 4, { labels: Array.from({ length: 200 }, (_, i) => (i < 140 ? 0 : i < 180 ? 1 : i < 195 ? 2 : 3)) });
  const ids = (d: { images: Float32Array; n: number }, size: number) => Array.from({ length: d.n }, (_, i) => d.images[i * size]!);

  test('disjoint, covering, seeded and reproducible', () => {
    const a = splitTrainVal(ds, { val: 0.2, seed: 3 });
    const b = splitTrainVal(ds, { val: 0.2, seed: 3 });
    const c = splitTrainVal(ds, { val: 0.2, seed: 4 });
    expect([a.train.n, a.val.n]).toEqual([160, 40]);
    const size = per(ds);
    const tr = new Set(ids(a.train, size));
    const va = ids(a.val, size);
    expect(va.filter((x) => tr.has(x))).toEqual([]);
    expect(tr.size + va.length).toBe(200);
    expect(a.val.images).toEqual(b.val.images);
    expect(a.val.images).not.toEqual(c.val.images);
    expect(a.val.split).toBe('val');
  });

  test('stratified keeps class proportions; plain random does not try to', () => {
    const { val } = splitTrainVal(ds, { val: 40, seed: 1 });
    const h = [0, 0, 0, 0];
    for (const l of val.labels) h[l]!++;
    expect(h).toEqual([28, 8, 3, 1]);
    const plain = splitTrainVal(ds, { val: 40, seed: 1, stratified: false });
    expect(plain.val.n).toBe(40);
    expect(largestRemainder([140, 40, 15, 5], 40)).toEqual([28, 8, 3, 1]);
    expect(largestRemainder([1, 1, 1], 2)).toEqual([1, 1, 0]);
  });

  test('bad sizes are UserErrors', async () => {
    await expectUserError(() => splitTrainVal(ds, { val: 200 }), /validation split 200: .*1\.\.199/);
    await expectUserError(() => splitTrainVal(ds, { val: 1.5 }), /validation split 1\.5/);
    await expectUserError(() => splitTrainVal(ds, { val: 0 }), /validation split 0/);
  });
});

describe('limit', () => {
  test('first N of a fixed seeded shuffle, in original order, nested for growing N', () => {
    const ds = toyDataset(100, 10);
    const a = applyLimit(ds, 10);
    const b = applyLimit(ds, 30);
    expect(a.n).toBe(10);
    expect(applyLimit(ds, 10).images).toEqual(a.images);
    const key = (d: typeof ds) => Array.from({ length: d.n }, (_, i) => d.images[i * per(d)]!);
    const ka = key(a);
    const kb = new Set(key(b));
    expect(ka.every((k) => kb.has(k))).toBe(true);
    // Not simply the first 10 examples.
    expect(a.images).not.toEqual(ds.images.subarray(0, 10 * per(ds)));
    expect(applyLimit(ds, 500)).toBe(ds);
    expect(applyLimit(ds, 10, 1).images).not.toEqual(a.images);
  });
});

describe('loadDataset', () => {
  test('unknown names and splits list the valid ones', async () => {
    await expectUserError(loadDataset('cifar-10', 'train'), /unknown dataset 'cifar-10'; valid: fashion-mnist, fashion-mnist-mini, cifar10, cifar100, folder:<path> \(did you mean cifar10\?\)/);
    await expectUserError(loadDataset('fashion-mnist-mini', 'training' as never), /unknown split 'training'; valid: train, val, test/);
    await expectUserError(loadDataset('fashion-mnist-mini', 'val', offline), /pass --val/);
    await expectUserError(loadDataset('folder:', 'train'), /needs a path/);
  });

  test('classes, val and limit chain on the shipped subset', async () => {
    const opts = { ...offline, classes: '0-4', val: 0.1, limit: 100, seed: 7 };
    const train = await loadDataset('fashion-mnist-mini', 'train', opts);
    const val = await loadDataset('fashion-mnist-mini', 'val', { ...opts, limit: undefined });
    expect(val.n).toBe(100); // 10% of 5 classes x 200
    expect(train.n).toBe(100);
    expect(train.numClasses).toBe(5);
    expect(train.originalClassIds).toEqual([0, 1, 2, 3, 4]);
    expect(Math.max(...train.labels)).toBeLessThan(5);
    const h = [0, 0, 0, 0, 0];
    for (const l of val.labels) h[l]!++;
    expect(h).toEqual([20, 20, 20, 20, 20]);
    // val and the full train part are disjoint.
    const fullTrain = await loadDataset('fashion-mnist-mini', 'train', { ...opts, limit: undefined });
    expect(fullTrain.n).toBe(900);
    const key = (d: typeof val, i: number) => d.images.subarray(i * 784, (i + 1) * 784).join(',');
    const trainKeys = new Set(Array.from({ length: fullTrain.n }, (_, i) => key(fullTrain, i)));
    const overlap = Array.from({ length: val.n }, (_, i) => key(val, i)).filter((k) => trainKeys.has(k));
    expect(overlap).toEqual([]);
    const test = await loadDataset('fashion-mnist-mini', 'test', opts);
    expect(test.n).toBe(100);
    expect(test.split).toBe('test');
  });
});
