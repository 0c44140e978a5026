// Shared fixtures for the data tests: temp dirs, synthetic IDX/CIFAR/tar files, a loopback HTTP server.

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { encodeIdx } from '../../src/data/idx.js';
import type { Dataset } from '../../src/data/types.js';
import { UserError } from '../../src/util/errors.js';

export async function tempDir(prefix = 'advrun-data-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** n synthetic 28x28 images whose pixel bytes encode (index, position) so mix-ups are detectable. */
export function fakeFashion(n: number): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(n * 784);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 10;
    for (let p = 0; p < 784; p++) images[i * 784 + p] = (i * 7 + p) % 256;
  }
  return { images, labels };
}

/** Write Fashion-MNIST-style IDX files (gzipped unless gz=false) for both splits into dir. */
export async function writeFashionFiles(dir: string, nTrain = 30, nTest = 20, gz = true): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (const [prefix, n] of [['train', nTrain], ['t10k', nTest]] as const) {
    const { images, labels } = fakeFashion(n);
    const img = encodeIdx([n, 28, 28], images);
    const lab = encodeIdx([n], labels);
    await fsp.writeFile(path.join(dir, `${prefix}-images-idx3-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(img) : img);
    await fsp.writeFile(path.join(dir, `${prefix}-labels-idx1-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(lab) : lab);
  }
}

/** CIFAR binary records: label byte(s) then 3072 pixels; pixel value depends on (record, channel). */
export function cifarRecords(labels: number[][]): Uint8Array {
  const rec = labels[0]!.length + 3072;
  const out = new Uint8Array(labels.length * rec);
  labels.forEach((ls, i) => {
    out.set(ls, i * rec);
    for (let p = 0; p < 3072; p++) out[i * rec + ls.length + p] = (i * 31 + Math.floor(p / 1024) * 80 + (p % 7)) % 256;
  });
  return out;
}

/** A minimal ustar writer (the counterpart of src/data/tar.ts) for building test archives. */
export function makeTar(entries: { name: string; data?: Uint8Array; type?: string }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const e of entries) {
    const data = e.data ?? new Uint8Array(0);
    const h = new Uint8Array(512);
    const put = (s: string, off: number): void => h.set(Buffer.from(s, 'latin1'), off);
    put(e.name, 0);
    put('0000644\0', 100);
    put('0000000\0', 108);
    put('0000000\0', 116);
    put(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
    put('00000000000\0', 136);
    put(e.type ?? '0', 156);
    put('ustar\0', 257);
    put('00', 263);
    put('        ', 148);
    const sum = h.reduce((a, b) => a + b, 0);
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}

export interface TestServer {
  url: string;
  requests: string[];
  close(): Promise<void>;
}

/** Serve fixed bodies on 127.0.0.1 (random port); unknown paths get 404. */
export async function serve(routes: Record<string, Uint8Array>): Promise<TestServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const body = routes[req.url ?? ''];
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Expect a one-line UserError whose message matches every pattern. */
export async function expectUserError(p: Promise<unknown> | (() => unknown), ...patterns: RegExp[]): Promise<UserError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a UserError').toBeInstanceOf(UserError);
  const msg = (err as UserError).message;
  expect(msg).not.toContain('\n');
  for (const re of patterns) expect(msg).toMatch(re);
  return err as UserError;
}

/** All files below dir (relative), to check that nothing half-written was left behind. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/** A small in-memory dataset with distinguishable images (image i is filled with i/n + small pattern). */
export function toyDataset(n: number, numClasses: number, opts: { channels?: number; size?: number; labels?: number[] } = {}): Dataset {
  const c = opts.channels ?? 1;
  const s = opts.size ?? 8;
  const per = c * s * s;
  const images = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < per; p++) images[i * per + p] = ((i * 13 + p * 5) % 97) / 96;
    images[i * per] = i / n; // unique first pixel: identifies the example after any selection
  }
  const labels = Int32Array.from(opts.labels ?? Array.from({ length: n }, (_, i) => i % numClasses));
  return {
    name: 'toy',
    split: 'train',
    n,
    channels: c,
    height: s,
    width: s,
    numClasses,
    classNames: Array.from({ length: numClasses }, (_, i) => `c${i}`),
    originalClassIds: Array.from({ length: numClasses }, (_, i) => i),
    mean: new Array(c).fill(0.5),
    std: new Array(c).fill(0.25),
    images,
    labels,
    source: 'memory',
  };
}
