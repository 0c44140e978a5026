// Download paths against an HTTP server on 127.0.0.1 started by the test (never the real mirrors).

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import { encodeIdx } from '../../src/data/idx.js';
import { cifarRecords, expectUserError, fakeFashion, listFiles, makeTar, serve, sha256, tempDir, type TestServer } from './helpers.js';

let server: TestServer;
let root: string;
const fashion: Record<string, Uint8Array> = {};
let cifarTgz: Uint8Array;
let cifarTgzMissing: Uint8Array;

beforeAll(async () => {
  root = await tempDir();
  for (const [prefix, n] of [['train', 12], ['t10k', 8]] as const) {
    const { images, labels } = fakeFashion(n);
    fashion[`${prefix}-images-idx3-ubyte.gz`] = gzipSync(encodeIdx([n, 28, 28], images));
    fashion[`${prefix}-labels-idx1-ubyte.gz`] = gzipSync(encodeIdx([n], labels));
  }
  const batches = [1, 2, 3, 4, 5].map((b) => ({ name: `cifar-10-batches-bin/data_batch_${b}.bin`, data: cifarRecords([[b], [b - 1]]) }));
  const files = [
    { name: 'cifar-10-batches-bin/', type: '5' },
    ...batches,
    { name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords([[7], [8], [9]]) },
    { name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from('airplane\n') },
  ];
  cifarTgz = gzipSync(makeTar(files));
  cifarTgzMissing = gzipSync(makeTar(files.filter((f) => !f.name.endsWith('test_batch.bin'))));
  const routes: Record<string, Uint8Array> = {
    '/cifar.tar.gz': cifarTgz,
    '/cifar-missing.tar.gz': cifarTgzMissing,
    '/cifar-truncated.tar.gz': cifarTgz.subarray(0, cifarTgz.length - 100),
  };
  for (const [k, v] of Object.entries(fashion)) routes[`/fm/${k}`] = v;
  server = await serve(routes);
});

afterAll(async () => {
  await server.close();
  await fsp.rm(root, { recursive: true, force: true });
});

const quiet = { systemDir: null, env: {}, log: () => {} };
const fashionSums = () => Object.fromEntries(Object.entries(fashion).map(([k, v]) => [k, sha256(v)]));

describe('Fashion-MNIST download', () => {
  test('correct checksum: files cached, loaded, and reused without a second download', async () => {
    const cache = path.join(root, 'fm-ok');
    const opts = { ...quiet, cacheDir: cache, fashionMnistUrl: `${server.url}/fm`, sha256: fashionSums() };
    const ds = await loadDataset('fashion-mnist', 'train', opts);
    expect(ds.n).toBe(12);
    expect(await listFiles(cache)).toEqual(['fashion-mnist/train-images-idx3-ubyte.gz', 'fashion-mnist/train-labels-idx1-ubyte.gz']);
    const before = server.requests.length;
    expect((await loadDataset('fashion-mnist', 'train', opts)).n).toBe(12);
    expect(server.requests.length).toBe(before);
  });

  test('ADVRUN_FASHION_MNIST_URL sets the mirror', async () => {
    const cache = path.join(root, 'fm-env');
    const opts = { ...quiet, cacheDir: cache, sha256: fashionSums(), env: { ADVRUN_FASHION_MNIST_URL: `${server.url}/fm/` } };
    expect((await loadDataset('fashion-mnist', 'test', opts)).n).toBe(8);
  });

  test('wrong checksum: clear error and no file left behind', async () => {
    const cache = path.join(root, 'fm-bad');
    const sums = { ...fashionSums(), 'train-images-idx3-ubyte.gz': '0'.repeat(64) };
    const opts = { ...quiet, cacheDir: cache, fashionMnistUrl: `${server.url}/fm`, sha256: sums };
    await expectUserError(loadDataset('fashion-mnist', 'train', opts), /train-images-idx3-ubyte\.gz: checksum mismatch \(sha256 [0-9a-f]{64}, expected 0{64}\); nothing was saved/);
    expect(await listFiles(cache)).toEqual([]);
  });

  test('built-in checksums reject files that are not the official release', async () => {
    const cache = path.join(root, 'fm-builtin');
    const opts = { ...quiet, cacheDir: cache, fashionMnistUrl: `${server.url}/fm` };
    await expectUserError(loadDataset('fashion-mnist', 'test', opts), /checksum mismatch .*expected 346e55b9/);
    expect(await listFiles(cache)).toEqual([]);
  });

  test('HTTP errors and unreachable servers are UserErrors with a hint', async () => {
    const cache = path.join(root, 'fm-404');
    await expectUserError(
      loadDataset('fashion-mnist', 'train', { ...quiet, cacheDir: cache, fashionMnistUrl: `${server.url}/nothing-here` }),
      /download failed \(HTTP 404/,
      /ADVRUN_FASHION_MNIST_URL/,
    );
    await expectUserError(
      loadDataset('fashion-mnist', 'train', { ...quiet, cacheDir: cache, fashionMnistUrl: 'http://127.0.0.1:9/' }),
      /download failed/,
    );
    expect(await listFiles(cache)).toEqual([]);
  });
});

describe('CIFAR-10 download', () => {
  const sums = () => ({ 'cifar-10-binary.tar.gz': sha256(cifarTgz) });

  test('correct checksum: archive verified, batches extracted, archive removed', async () => {
    const cache = path.join(root, 'c10-ok');
    const opts = { ...quiet, cacheDir: cache, cifarUrl: `${server.url}/cifar.tar.gz`, sha256: sums() };
    const ds = await loadDataset('cifar10', 'train', opts);
    expect([...ds.labels]).toEqual([1, 0, 2, 1, 3, 2, 4, 3, 5, 4]);
    expect(await listFiles(cache)).toEqual([
      ...[1, 2, 3, 4, 5].map((b) => `cifar-10-batches-bin/data_batch_${b}.bin`),
      'cifar-10-batches-bin/test_batch.bin',
    ]);
    const test = await loadDataset('cifar10', 'test', { ...opts, env: { ADVRUN_CIFAR10_URL: 'http://127.0.0.1:9/unused' } });
    expect([...test.labels]).toEqual([7, 8, 9]);
  });

  test('wrong checksum: clear error and nothing left in the cache', async () => {
    const cache = path.join(root, 'c10-bad');
    const opts = { ...quiet, cacheDir: cache, cifarUrl: `${server.url}/cifar.tar.gz`, sha256: { 'cifar-10-binary.tar.gz': 'f'.repeat(64) } };
    await expectUserError(loadDataset('cifar10', 'train', opts), /cifar\.tar\.gz: checksum mismatch/, /ADVRUN_CIFAR10_URL/);
    expect(await listFiles(cache)).toEqual([]);
  });

  test('corrupt or incomplete archives with a matching checksum fail cleanly', async () => {
    const cache = path.join(root, 'c10-corrupt');
    const truncated = cifarTgz.subarray(0, cifarTgz.length - 100);
    await expectUserError(
      loadDataset('cifar10', 'train', { ...quiet, cacheDir: cache, cifarUrl: `${server.url}/cifar-truncated.tar.gz`, sha256: { 'cifar-10-binary.tar.gz': sha256(truncated) } }),
      /cifar-10-binary\.tar\.gz: corrupt gzip data/,
    );
    await expectUserError(
      loadDataset('cifar10', 'train', { ...quiet, cacheDir: cache, cifarUrl: `${server.url}/cifar-missing.tar.gz`, sha256: { 'cifar-10-binary.tar.gz': sha256(cifarTgzMissing) } }),
      /archive lacks test_batch\.bin/,
    );
    expect(await listFiles(cache)).toEqual([]);
  });
});

describe('servers that encode the body', () => {
  test('the request asks for the bytes as they are; a gzip Content-Encoding anyway is judged by the checksum alone', async () => {
    const { createServer } = await import('node:http');
    const { downloadVerified } = await import('../../src/data/download.js');
    const body = Buffer.from('the archive bytes '.repeat(500));
    const encoded = gzipSync(body);
    let asked: string | undefined;
    const srv = createServer((req, res) => {
      asked = req.headers['accept-encoding'] as string | undefined;
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(encoded.length) });
      res.end(encoded);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const dest = path.join(root, 'encoded', 'file.bin');
      await downloadVerified(`http://127.0.0.1:${port}/file.bin`, dest, { sha256: sha256(body) });
      expect(asked).toBe('identity');
      expect(Buffer.from(await fsp.readFile(dest)).equals(body)).toBe(true);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
