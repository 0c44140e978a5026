// Streamed image folders (ImageNet-size train/ and val/): the same pixels, labels, selections and batches
// as the in-memory mode, decoded per batch with a bounded cache; and `advrun train` / `advrun eval` on a
// streamed folder at the model's input size.

import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { batches, loadDataset, readExamples, readRange, streamBatches, type Batch, type LoadOptions } from '../../src/data/index.js';
import { Rng } from '../../src/util/random.js';
import { runCli } from '../helpers/cli.js';
import { expectUserError, tempDir } from './helpers.js';

let root: string;
const CLASSES = ['ant', 'bee', 'cat'];

/** A noisy image (every pixel differs, so crops and mix-ups show) as PNG or JPEG. */
async function writeNoise(file: string, w: number, h: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const px = Buffer.from(Array.from({ length: w * h * 3 }, () => Math.floor(rng.uniform(0, 256))));
  const img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 90 })).toFile(file);
}

beforeAll(async () => {
  root = await tempDir('advrun-stream-');
  let seed = 1;
  for (const split of ['train', 'val']) {
    for (const c of CLASSES) {
      const dir = join(root, split, c);
      await fsp.mkdir(dir, { recursive: true });
      const count = split === 'train' ? 7 : 3;
      for (let i = 0; i < count; i++) await writeNoise(join(dir, `${i}.${i % 2 ? 'jpg' : 'png'}`), 20 + i, 14 + 2 * i, seed++);
    }
  }
});

afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const load = (split: 'train' | 'val' | 'test', o: LoadOptions = {}) => loadDataset(`folder:${root}`, split, { imageSize: 12, ...o });

function expectSameBatches(a: Batch[], b: Batch[]): void {
  expect(b.map((x) => x.index)).toEqual(a.map((x) => x.index));
  a.forEach((x, i) => {
    expect(Array.from(b[i]!.indices)).toEqual(Array.from(x.indices));
    expect(Array.from(b[i]!.y)).toEqual(Array.from(x.y));
    expect(b[i]!.x).toEqual(x.x);
  });
}

describe('streamed image folders', () => {
  test('same pixels and labels as the in-memory mode; images are not held', async () => {
    const mem = await load('train', { stream: false });
    const str = await load('train', { stream: true });
    expect(mem.stream).toBeUndefined();
    expect(str.stream).toBeDefined();
    expect(str.images.length).toBe(0);
    expect([str.n, str.channels, str.height, str.width, str.numClasses]).toEqual([21, 3, 12, 12, 3]);
    expect(str.classNames).toEqual(CLASSES);
    expect(Array.from(str.labels)).toEqual(Array.from(mem.labels));
    expect(await readRange(str, 0, str.n)).toEqual(mem.images);
    expect(await readExamples(str, [20, 3, 3, 0])).toEqual(await readExamples(mem, [20, 3, 3, 0]));
    // Mean/std come from a sample of up to 256 images: all of them here.
    str.mean.forEach((m, c) => expect(m).toBeCloseTo(mem.mean[c]!, 5));
  });

  test('shuffled, augmented batches equal the in-memory batches exactly', async () => {
    const mem = await load('train', { stream: false });
    const str = await load('train', { stream: true });
    const o = { batchSize: 8, seed: 3, epoch: 2, augment: { pad: 2, flip: true } };
    const want = [...batches(mem, o)];
    const got: Batch[] = [];
    for await (const b of streamBatches(str, o)) got.push(b);
    expect(got).toHaveLength(3);
    expectSameBatches(want, got);
    expect(() => [...batches(str, o)]).toThrow(/is streamed: iterate it with streamBatches/);
  });

  test('class subsets, validation hold-out and limits stay streamed and select the same images', async () => {
    const opts = { classes: '1-2', val: 3, limit: 9 };
    for (const split of ['train', 'val'] as const) {
      const mem = await load(split, { ...opts, stream: false });
      const str = await load(split, { ...opts, stream: true });
      expect(str.stream).toBeDefined();
      expect(str.n).toBe(mem.n);
      expect(str.classNames).toEqual(['bee', 'cat']);
      expect(Array.from(str.labels)).toEqual(Array.from(mem.labels));
      expect(await readRange(str, 0, str.n)).toEqual(mem.images);
    }
  });

  test('decoding happens per read, behind a bounded cache', async () => {
    const copy = join(await tempDir('advrun-stream-cache-'), 'data');
    await fsp.cp(root, copy, { recursive: true });
    const name = `folder:${copy}`;
    const cached = await loadDataset(name, 'val', { imageSize: 12, stream: true, cacheMb: 64 });
    const uncached = await loadDataset(name, 'val', { imageSize: 12, stream: true, cacheMb: 0 });
    const before = await readExamples(cached, [0]);
    // Replace the first image: the cache still serves what it decoded; without a cache the new file is read.
    await writeNoise(join(copy, 'val', 'ant', '0.png'), 20, 14, 999);
    expect(await readExamples(cached, [0])).toEqual(before);
    expect(await readExamples(uncached, [0])).not.toEqual(before);
    await fsp.rm(copy, { recursive: true, force: true });
  });

  test('ADVRUN_FOLDER_STREAM forces either mode; small folders load into memory by default', async () => {
    expect((await load('val')).stream).toBeUndefined();
    expect((await load('val', { env: { ADVRUN_FOLDER_STREAM: '1' } })).stream).toBeDefined();
    expect((await load('val', { env: { ADVRUN_FOLDER_STREAM: '0' } })).stream).toBeUndefined();
    await expectUserError(load('val', { env: { ADVRUN_FOLDER_STREAM: 'yes' } }), /ADVRUN_FOLDER_STREAM must be 1 or 0/);
  });

  test('advrun train and eval on a streamed folder decode at --image-size (eval: the checkpoint\'s size)', async () => {
    const out = join(await tempDir('advrun-stream-run-'), 'run');
    const env = { ADVRUN_FOLDER_STREAM: '1', ADVRUN_GRAPHS_DIR: join(out, '..', 'graphs') };
    const r = runCli(['train', '--dataset', `folder:${root}`, '--image-size', '16', '--arch', 'small-cnn', '--width', '4', '--method', 'pgd-at', '--eps', '4/255', '--steps', '1',
      '--epochs', '1', '--batch-size', '8', '--val-limit', '6', '--val-steps', '1', '--out', out, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const config = JSON.parse(await fsp.readFile(join(out, 'config.json'), 'utf8'));
    expect(config.model.imageSize).toBe(16);
    expect(config.train.imageSize).toBe(16);
    // As the paper presets evaluate on ImageNet: the val/ folder itself, as a flat folder's test split.
    const e = runCli(['eval', '--model', join(out, 'checkpoint.safetensors'), '--dataset', `folder:${join(root, 'val')}`, '--split', 'test', '--attack', 'pgd', '--steps', '2', '--eps', '4/255', '--json'], env);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).n).toBe(9);
  });
});
