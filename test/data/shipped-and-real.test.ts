// The embedded fashion-mnist-mini subset, and the real Fashion-MNIST from the Debian package.

import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { FASHION_MNIST_FILES, FASHION_MNIST_SYSTEM_DIR } from '../../src/data/fashion-mnist.js';
import { loadDataset } from '../../src/data/index.js';
import { makeSubset } from '../../src/data/make-subset.js';
import { loadFashionMnistMini, MINI_DIR, readMiniManifest } from '../../src/data/mini.js';
import { expectUserError, sha256, tempDir } from './helpers.js';

const offline = { download: false, systemDir: null, env: {} };

function histogram(labels: Int32Array, k: number): number[] {
  const h = new Array<number>(k).fill(0);
  for (const l of labels) h[l]!++;
  return h;
}

describe('fashion-mnist-mini (shipped in datasets/)', () => {
  const tmp: string[] = [];
  afterAll(async () => {
    for (const d of tmp) await fsp.rm(d, { recursive: true, force: true });
  });

  test('loads offline with the documented counts and balanced classes', async () => {
    const train = await loadDataset('fashion-mnist-mini', 'train', offline);
    const test = await loadDataset('fashion-mnist-mini', 'test', offline);
    expect([train.n, test.n]).toEqual([2000, 500]);
    expect(histogram(train.labels, 10)).toEqual(new Array(10).fill(200));
    expect(histogram(test.labels, 10)).toEqual(new Array(10).fill(50));
    expect([train.channels, train.height, train.width]).toEqual([1, 28, 28]);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const v of train.images) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    expect(min).toBe(0);
    expect(max).toBe(1);
    // Real Fashion-MNIST images average ~0.286; noise or blank data would not.
    expect(sum / train.images.length).toBeGreaterThan(0.25);
    expect(sum / train.images.length).toBeLessThan(0.33);
    expect(train.name).toBe('fashion-mnist-mini');
  });

  test('manifest is consistent with the files and records provenance', async () => {
    const m = await readMiniManifest();
    for (const [name, f] of Object.entries(m.files)) {
      const bytes = await fsp.readFile(path.join(MINI_DIR, name));
      expect(sha256(bytes), name).toBe(f.sha256);
      expect(bytes.length).toBe(f.bytes);
    }
    expect(m.splits.train.indices).toHaveLength(2000);
    expect(m.splits.test.indices).toHaveLength(500);
    for (const [base, h] of Object.entries(m.source.rawSha256)) {
      expect(h).toBe(FASHION_MNIST_FILES[base as keyof typeof FASHION_MNIST_FILES].raw);
    }
    const total = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
    expect(total).toBeLessThan(3e6);
  });

  test('a damaged shipped file is detected by checksum', async () => {
    const d = await tempDir();
    tmp.push(d);
    await fsp.cp(MINI_DIR, d, { recursive: true });
    const f = path.join(d, 't10k-labels-idx1-ubyte.gz');
    const bytes = await fsp.readFile(f);
    bytes[bytes.length - 10]! ^= 0xff;
    await fsp.writeFile(f, bytes);
    await expectUserError(loadFashionMnistMini('test', { miniDir: d }), /t10k-labels-idx1-ubyte\.gz: checksum does not match manifest\.json/, /make-subset/);
    await fsp.rm(path.join(d, 'train-images-idx3-ubyte.gz'));
    await expectUserError(loadFashionMnistMini('train', { miniDir: d }), /train-images-idx3-ubyte\.gz: missing/);
  });
});

const hasDebian = existsSync(path.join(FASHION_MNIST_SYSTEM_DIR, 'train-images-idx3-ubyte.gz'));
const reason = hasDebian ? '' : ` (SKIPPED: ${FASHION_MNIST_SYSTEM_DIR} absent; apt-get install dataset-fashion-mnist)`;
if (!hasDebian) console.warn(`[data tests] real Fashion-MNIST tests skipped: ${FASHION_MNIST_SYSTEM_DIR} is absent`);

describe('real Fashion-MNIST from the Debian package', () => {
  test.skipIf(!hasDebian)(`loads 60000 + 10000 images with the official content${reason}`, async () => {
    const opts = { download: false, env: {}, cacheDir: '/nonexistent-advrun-cache' };
    const train = await loadDataset('fashion-mnist', 'train', opts);
    const test = await loadDataset('fashion-mnist', 'test', opts);
    expect([train.n, test.n]).toEqual([60000, 10000]);
    expect(train.source).toBe(FASHION_MNIST_SYSTEM_DIR);
    expect(histogram(train.labels, 10)).toEqual(new Array(10).fill(6000));
    expect(histogram(test.labels, 10)).toEqual(new Array(10).fill(1000));
    let sum = 0;
    for (const v of train.images) sum += v;
    expect(sum / train.images.length).toBeCloseTo(train.mean[0]!, 3);
  });

  test.skipIf(!hasDebian)(`Debian files decompress to the official release bytes${reason}`, async () => {
    for (const [base, h] of Object.entries(FASHION_MNIST_FILES)) {
      const gz = await fsp.readFile(path.join(FASHION_MNIST_SYSTEM_DIR, `${base}.gz`));
      expect(sha256(gz), `${base}.gz`).toBe(h.debianGz);
      const raw = gunzipSync(gz);
      expect(raw.length).toBe(h.rawBytes);
      expect(sha256(raw), base).toBe(h.raw);
    }
  });

  test.skipIf(!hasDebian)(`make-subset reproduces the shipped subset byte for byte${reason}`, async () => {
    const out = await tempDir();
    try {
      const m = await makeSubset({ out });
      const shipped = await readMiniManifest();
      expect(m.files).toEqual(shipped.files);
      expect(m.splits).toEqual(shipped.splits);
      // And the shipped images are the Debian images at the recorded indices.
      const full = await loadDataset('fashion-mnist', 'test', { download: false, env: {} });
      const mini = await loadDataset('fashion-mnist-mini', 'test', offline);
      const j = shipped.splits.test.indices[123]!;
      expect(mini.images.subarray(123 * 784, 124 * 784)).toEqual(full.images.subarray(j * 784, (j + 1) * 784));
      expect(mini.labels[123]).toBe(full.labels[j]);
    } finally {
      await fsp.rm(out, { recursive: true, force: true });
    }
  });
});
