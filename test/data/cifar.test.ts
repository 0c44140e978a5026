import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CIFAR100_COARSE } from '../../src/data/cifar.js';
import { loadDataset } from '../../src/data/index.js';
import { cifarRecords, expectUserError, tempDir } from './helpers.js';

let root: string;
beforeAll(async () => {
  root = await tempDir();
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const opts = (dataDir: string) => ({ dataDir, cacheDir: path.join(root, 'no-cache'), download: false, env: {} });

async function writeCifar10(dir: string, perBatch = 4): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (let b = 1; b <= 5; b++) {
    const labels = Array.from({ length: perBatch }, (_, i) => [(b + i) % 10]);
    await fsp.writeFile(path.join(dir, `data_batch_${b}.bin`), cifarRecords(labels));
  }
  await fsp.writeFile(path.join(dir, 'test_batch.bin'), cifarRecords([[3], [9], [0]]));
}

describe('CIFAR-10 binary batches', () => {
  test('loads all five training batches in order, CHW pixels in [0,1]', async () => {
    const dir = path.join(root, 'c10', 'cifar-10-batches-bin');
    await writeCifar10(dir);
    // The parent of cifar-10-batches-bin works as --data-dir too.
    const ds = await loadDataset('cifar10', 'train', opts(path.dirname(dir)));
    expect([ds.n, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([20, 3, 32, 32, 10]);
    expect(ds.labels[0]).toBe(1); // batch 1, record 0
    expect(ds.labels[4]).toBe(2); // batch 2, record 0
    // Record 5 (batch 2, record 1 => i=1 in its file): green plane starts at 1024.
    const rec = cifarRecords([[0], [0]]);
    expect(ds.images[5 * 3072 + 1024]).toBeCloseTo(rec[3073 + 1 + 1024]! / 255, 7);
    expect(ds.classNames[0]).toBe('airplane');
    expect(ds.mean).toHaveLength(3);
    const test = await loadDataset('cifar10', 'test', opts(dir));
    expect([...test.labels]).toEqual([3, 9, 0]);
  });

  test('truncated batch, bad label and missing batch are UserErrors', async () => {
    const dir = path.join(root, 'c10bad');
    await writeCifar10(dir);
    const f = path.join(dir, 'test_batch.bin');
    await fsp.writeFile(f, cifarRecords([[1], [2]]).subarray(0, 5000));
    await expectUserError(loadDataset('cifar10', 'test', opts(dir)), /test_batch\.bin: truncated or wrong CIFAR file \(5000 bytes is not a whole number of 3073-byte records/);
    await fsp.writeFile(f, cifarRecords([[1], [12]]));
    await expectUserError(loadDataset('cifar10', 'test', opts(dir)), /record 1 has label 12 out of range/);
    await fsp.rm(path.join(dir, 'data_batch_3.bin'));
    await expectUserError(loadDataset('cifar10', 'train', opts(dir)), /incomplete cifar-10-batches-bin \(missing data_batch_3\.bin\)/);
    // An explicit --data-dir without CIFAR files is an error (not a silent fall back to the cache or a download).
    const empty = path.join(root, 'empty');
    await fsp.mkdir(empty, { recursive: true });
    await expectUserError(loadDataset('cifar10', 'test', opts(empty)), /cifar10: --data-dir .*empty holds no cifar-10-batches/);
  });
});

describe('CIFAR-100 binary', () => {
  test('fine labels by default, coarse on request', async () => {
    const dir = path.join(root, 'c100');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'train.bin'), cifarRecords([[4, 99], [19, 0], [0, 57]]));
    await fsp.writeFile(path.join(dir, 'test.bin'), cifarRecords([[1, 2]]));
    const fine = await loadDataset('cifar100', 'train', opts(dir));
    expect([...fine.labels]).toEqual([99, 0, 57]);
    expect(fine.numClasses).toBe(100);
    expect(fine.classNames[99]).toBe('worm');
    const coarse = await loadDataset('cifar100', 'train', { ...opts(dir), cifar100Labels: 'coarse' });
    expect([...coarse.labels]).toEqual([4, 19, 0]);
    expect(coarse.classNames).toEqual(CIFAR100_COARSE);
    // Pixels follow the 2 label bytes.
    expect(fine.images[3072 + 2048]).toBeCloseTo(cifarRecords([[0, 0], [0, 0]])[3074 + 2 + 2048]! / 255, 7);
  });

  test('a CIFAR-10 file in place of CIFAR-100 is rejected', async () => {
    const dir = path.join(root, 'c100bad');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'train.bin'), cifarRecords([[1], [2], [3]]));
    await fsp.writeFile(path.join(dir, 'test.bin'), cifarRecords([[1, 2]]));
    await expectUserError(loadDataset('cifar100', 'train', opts(dir)), /train\.bin: truncated or wrong CIFAR file .*3074-byte records/);
  });
});
