import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import { encodeIdx, parseIdx } from '../../src/data/idx.js';
import { expectUserError, fakeFashion, tempDir, writeFashionFiles } from './helpers.js';

// Loader options that never touch the Debian copy, the repo cache or the network.
const isolated = (dataDir: string, cacheDir: string) => ({ dataDir, cacheDir, systemDir: null, download: false, env: {} });

describe('IDX parsing', () => {
  test('round-trips dims and payload', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const r = parseIdx(encodeIdx([2, 3, 4], data), 3, 'x', 'fix');
    expect(r.dims).toEqual([2, 3, 4]);
    expect([...r.data]).toEqual([...data]);
  });

  test('wrong magic, truncation and trailing bytes are one-line UserErrors naming file and fix', async () => {
    const good = encodeIdx([10, 28, 28], new Uint8Array(7840));
    await expectUserError(() => parseIdx(good, 1, 'datasets/x', 'delete it'), /datasets\/x: not an IDX label file \(magic 0x00000803, expected 0x00000801\); delete it/);
    await expectUserError(() => parseIdx(good.subarray(0, 1000), 3, 'datasets/x', 'delete it'), /truncated IDX file \(expected 7856 bytes, got 1000\); delete it/);
    await expectUserError(() => parseIdx(good.subarray(0, 6), 3, 'f', 'fix'), /shorter than its header/);
    await expectUserError(() => parseIdx(Buffer.concat([good, Buffer.alloc(3)]), 3, 'f', 'fix'), /too long \(expected 7856 bytes, got 7859\)/);
  });
});

describe('fashion-mnist from a data dir', () => {
  let dir: string;
  let cache: string;
  beforeAll(async () => {
    dir = await tempDir();
    cache = await tempDir();
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.rm(cache, { recursive: true, force: true });
  });

  test('loads gzipped files with exact pixel values, labels and metadata', async () => {
    const d = path.join(dir, 'gz');
    await writeFashionFiles(d, 30, 20);
    const ds = await loadDataset('fashion-mnist', 'train', isolated(d, cache));
    expect([ds.n, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([30, 1, 28, 28, 10]);
    expect(ds.images.length).toBe(30 * 784);
    const { images, labels } = fakeFashion(30);
    expect(ds.images[5 * 784 + 17]).toBeCloseTo(images[5 * 784 + 17]! / 255, 7);
    expect([...ds.labels]).toEqual([...labels]);
    expect(ds.classNames[9]).toBe('Ankle boot');
    expect(ds.mean).toEqual([0.286]);
    expect(ds.std).toEqual([0.353]);
    const test = await loadDataset('fashion-mnist', 'test', isolated(d, cache));
    expect(test.n).toBe(20);
    expect(test.split).toBe('test');
  });

  test('loads uncompressed files and files in <data-dir>/fashion-mnist', async () => {
    const d = path.join(dir, 'raw');
    await writeFashionFiles(path.join(d, 'fashion-mnist'), 12, 11, false);
    const ds = await loadDataset('fashion-mnist', 'test', isolated(d, cache));
    expect(ds.n).toBe(11);
    expect(ds.source).toBe(path.join(d, 'fashion-mnist'));
  });

  test('ADVRUN_DATA is used when no --data-dir is given', async () => {
    const d = path.join(dir, 'env');
    await writeFashionFiles(d, 10, 10);
    const ds = await loadDataset('fashion-mnist', 'train', { cacheDir: cache, systemDir: null, download: false, env: { ADVRUN_DATA: d } });
    expect(ds.n).toBe(10);
  });

  test('truncated gzip, truncated IDX, wrong file and mismatched counts are UserErrors', async () => {
    const d = path.join(dir, 'bad');
    await writeFashionFiles(d, 10, 10);
    const f = path.join(d, 'train-images-idx3-ubyte.gz');
    const gz = await fsp.readFile(f);
    await fsp.writeFile(f, gz.subarray(0, gz.length - 200));
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /train-images-idx3-ubyte\.gz: corrupt gzip data/, /replace it with the original file/);

    // A gzip that is fine but holds a short IDX payload.
    await fsp.writeFile(f, gzipSync(encodeIdx([10, 28, 28], new Uint8Array(7840)).subarray(0, 1000)));
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /truncated IDX file \(expected 7856 bytes, got 1000\)/);

    // Labels file where images belong.
    await fsp.copyFile(path.join(d, 'train-labels-idx1-ubyte.gz'), f);
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /not an IDX image file/);

    // 9 images, 10 labels.
    await fsp.writeFile(f, gzipSync(encodeIdx([9, 28, 28], fakeFashion(9).images)));
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /has 10 labels but .* has 9 images/);

    // Wrong geometry.
    await fsp.writeFile(f, gzipSync(encodeIdx([10, 32, 32], new Uint8Array(10240))));
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /images are 32x32, Fashion-MNIST is 28x28/);
  });

  test('label out of range is a UserError', async () => {
    const d = path.join(dir, 'badlabel');
    await writeFashionFiles(d, 10, 10);
    const labels = fakeFashion(10).labels;
    labels[3] = 12;
    await fsp.writeFile(path.join(d, 't10k-labels-idx1-ubyte.gz'), gzipSync(encodeIdx([10], labels)));
    await expectUserError(loadDataset('fashion-mnist', 'test', isolated(d, cache)), /label 12 at index 3 is not in 0\.\.9/);
  });

  test('half a dataset in the data dir is reported, not silently skipped', async () => {
    const d = path.join(dir, 'half');
    await writeFashionFiles(d, 10, 10);
    await fsp.rm(path.join(d, 'train-labels-idx1-ubyte.gz'));
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(d, cache)), /has train-images-idx3-ubyte\.gz but not train-labels-idx1-ubyte/);
  });

  test('nothing found and downloads disabled: error lists where it looked', async () => {
    const empty = await tempDir();
    await expectUserError(loadDataset('fashion-mnist', 'train', { cacheDir: empty, systemDir: null, download: false, env: {} }), /not found in .* downloads are disabled/);
    await fsp.rm(empty, { recursive: true });
  });

  test('an explicit --data-dir without the files is an error, not passed over for other places', async () => {
    const empty = await tempDir();
    await expectUserError(loadDataset('fashion-mnist', 'train', isolated(empty, cache)), /--data-dir .* holds no train IDX files/);
    await fsp.rm(empty, { recursive: true });
  });
});
