// CIFAR-10 / CIFAR-100 from the official *binary* releases. Records are label byte(s) followed by
// 3072 pixel bytes already in CHW order (1024 R, 1024 G, 1024 B, rows top to bottom), so a record
// maps straight onto our NCHW layout.
// Search order: --data-dir / ADVRUN_DATA (the extracted folder or its parent), the download cache,
// then a verified download of the official tar.gz, extracted into the cache.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { UserError } from '../util/errors.js';
import { downloadVerified } from './download.js';
import { toUnitFloat } from './fashion-mnist.js';
import { cacheDir, displayPath, downloadAllowed, envOf, exists, tempSibling, userDataDir } from './paths.js';
import { readTar, TarError } from './tar.js';
import type { Dataset, DatasetMeta, LoadOptions, Split } from './types.js';

const PIXELS = 3072;

export const CIFAR10_META: DatasetMeta = {
  channels: 3,
  height: 32,
  width: 32,
  classNames: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
  // Per-channel statistics of the 50k training images (true std, not the often-quoted 0.2023...).
  mean: [0.4914, 0.4822, 0.4465],
  std: [0.247, 0.2435, 0.2616],
};

export const CIFAR100_FINE = [
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
];

export const CIFAR100_COARSE = [
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables', 'household_electrical_devices',
  'household_furniture', 'insects', 'large_carnivores', 'large_man-made_outdoor_things', 'large_natural_outdoor_scenes',
  'large_omnivores_and_herbivores', 'medium_mammals', 'non-insect_invertebrates', 'people', 'reptiles',
  'small_mammals', 'trees', 'vehicles_1', 'vehicles_2',
];

export const CIFAR100_META: DatasetMeta = {
  channels: 3,
  height: 32,
  width: 32,
  classNames: CIFAR100_FINE,
  mean: [0.5071, 0.4865, 0.4409],
  std: [0.2673, 0.2564, 0.2762],
};

export type CifarName = 'cifar10' | 'cifar100';

interface CifarSpec {
  dirName: string;
  archive: string;
  url: string;
  /** SHA-256 of the official archive (from TensorFlow Datasets' url_checksums; the CIFAR page
   *  publishes MD5s c32a1d4ab5d03f1284b67883e8d87530 / 03b5dce01913d631647c71ecec9e9cb8). */
  sha256: string;
  envUrl: string;
  files: Record<'train' | 'test', string[]>;
  labelBytes: number;
}

export const CIFAR_SPECS: Record<CifarName, CifarSpec> = {
  cifar10: {
    dirName: 'cifar-10-batches-bin',
    archive: 'cifar-10-binary.tar.gz',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
    envUrl: 'ADVRUN_CIFAR10_URL',
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    labelBytes: 1,
  },
  cifar100: {
    dirName: 'cifar-100-binary',
    archive: 'cifar-100-binary.tar.gz',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    sha256: '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec',
    envUrl: 'ADVRUN_CIFAR100_URL',
    files: { train: ['train.bin'], test: ['test.bin'] },
    labelBytes: 2,
  },
};

export interface CifarRecords {
  images: Float32Array;
  /** CIFAR-10: the label; CIFAR-100: fine labels. */
  labels: Int32Array;
  /** CIFAR-100 only. */
  coarse?: Int32Array;
}

/**
 * Parse one binary batch file. `labelBytes` is 1 (CIFAR-10: label) or 2 (CIFAR-100: coarse, fine).
 */
export function parseCifarBatch(buf: Uint8Array, labelBytes: number, file: string, fix: string): CifarRecords {
  const rec = labelBytes + PIXELS;
  if (buf.length === 0 || buf.length % rec !== 0) {
    const whole = Math.floor(buf.length / rec);
    throw new UserError(
      `${displayPath(file)}: truncated or wrong CIFAR file (${buf.length} bytes is not a whole number of ${rec}-byte records; ` +
        `${whole} complete, expected e.g. ${10000 * rec} bytes for 10000 records); ${fix}`,
    );
  }
  const n = buf.length / rec;
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  const coarse = labelBytes === 2 ? new Int32Array(n) : undefined;
  const maxLabel = labelBytes === 2 ? 100 : 10;
  for (let i = 0; i < n; i++) {
    const o = i * rec;
    const label = buf[o + labelBytes - 1]!;
    if (label >= maxLabel || (coarse && buf[o]! >= 20)) {
      throw new UserError(`${displayPath(file)}: record ${i} has label ${label} out of range (not a CIFAR-${maxLabel} file?); ${fix}`);
    }
    labels[i] = label;
    if (coarse) coarse[i] = buf[o]!;
    pixels.set(buf.subarray(o + labelBytes, o + rec), i * PIXELS);
  }
  return { images: toUnitFloat(pixels), labels, coarse };
}

function fixFor(kind: 'user' | 'cache'): string {
  return kind === 'cache' ? 'delete it and re-run to download again' : 'replace it with the file from the official binary release';
}

interface Located {
  dir: string;
  kind: 'user' | 'cache';
}

async function locateIn(dir: string, spec: CifarSpec, kind: 'user' | 'cache'): Promise<Located | undefined> {
  const all = [...spec.files.train, ...spec.files.test];
  const present = await Promise.all(all.map((f) => exists(path.join(dir, f))));
  if (present.every(Boolean)) return { dir, kind };
  if (present.some(Boolean)) {
    const missing = all.filter((_, i) => !present[i]);
    const fix = kind === 'cache' ? 'delete the folder and re-run to download again' : 'restore them from the official binary release';
    throw new UserError(`${displayPath(dir)}: incomplete ${spec.dirName} (missing ${missing.join(', ')}); ${fix}`);
  }
  return undefined;
}

async function locate(name: CifarName, opts: LoadOptions): Promise<Located> {
  const spec = CIFAR_SPECS[name];
  const user = userDataDir(opts);
  const candidates: Located[] = [];
  if (user) candidates.push({ dir: user, kind: 'user' }, { dir: path.join(user, spec.dirName), kind: 'user' });
  const cached = path.join(cacheDir(opts), spec.dirName);
  candidates.push({ dir: cached, kind: 'cache' });
  for (const c of candidates) {
    const found = await locateIn(c.dir, spec, c.kind);
    if (found) return found;
  }
  // An explicit --data-dir is what the user wants read: not a hint to be passed over silently.
  if (opts.dataDir) {
    throw new UserError(`${name}: --data-dir ${displayPath(user!)} holds no ${spec.dirName}/ batch files (in it or in ${spec.dirName}/); point it at the extracted ${spec.archive}, or leave --data-dir out to use the download cache`);
  }
  if (!downloadAllowed(opts)) {
    throw new UserError(
      `${name}: not found in ${candidates.map((c) => displayPath(c.dir)).join(', ')} and downloads are disabled; extract ${spec.archive} and pass --data-dir`,
    );
  }
  await downloadAndExtract(name, opts);
  return { dir: cached, kind: 'cache' };
}

/** Download the archive (verified), extract the batch files into a temp dir, then rename it into place. */
export async function downloadAndExtract(name: CifarName, opts: LoadOptions): Promise<string> {
  const spec = CIFAR_SPECS[name];
  const cache = cacheDir(opts);
  const target = path.join(cache, spec.dirName);
  const archive = tempSibling(path.join(cache, spec.archive));
  const staging = tempSibling(target);
  try {
    await downloadVerified(opts.cifarUrl ?? envOf(opts)[spec.envUrl] ?? spec.url, archive, {
      sha256: opts.sha256?.[spec.archive] ?? spec.sha256,
      log: opts.log,
      hint: `set ${spec.envUrl} to a mirror, or extract ${spec.archive} yourself and pass --data-dir`,
    });
    await extractBatches(archive, spec, staging);
    try {
      await fsp.rename(staging, target);
    } catch (e) {
      // Another process finished first: its copy is as good as ours.
      if (!(await locateIn(target, spec, 'cache'))) throw e;
    }
    return target;
  } finally {
    await fsp.rm(archive, { force: true });
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

async function extractBatches(archive: string, spec: CifarSpec, outDir: string): Promise<void> {
  const fix = `the archive ${spec.archive} is damaged; re-run to download again`;
  let tar: Uint8Array;
  try {
    tar = await promisify(gunzip)(await fsp.readFile(archive));
  } catch (e) {
    throw new UserError(`${spec.archive}: corrupt gzip data (${(e as Error).message}); ${fix}`);
  }
  const wanted = new Set([...spec.files.train, ...spec.files.test]);
  await fsp.mkdir(outDir, { recursive: true });
  try {
    for (const entry of readTar(tar)) {
      const base = path.posix.basename(entry.name);
      if (entry.type !== '0' || !wanted.has(base)) continue;
      await fsp.writeFile(path.join(outDir, base), entry.data);
      wanted.delete(base);
    }
  } catch (e) {
    if (e instanceof TarError) throw new UserError(`${spec.archive}: ${e.message}; ${fix}`);
    throw e;
  }
  if (wanted.size) throw new UserError(`${spec.archive}: archive lacks ${[...wanted].join(', ')} (not the binary release?)`);
}

export async function loadCifar(name: CifarName, split: Split, opts: LoadOptions): Promise<Dataset> {
  const spec = CIFAR_SPECS[name];
  const loc = await locate(name, opts);
  const parts: CifarRecords[] = [];
  for (const f of spec.files[split === 'test' ? 'test' : 'train']) {
    const file = path.join(loc.dir, f);
    parts.push(parseCifarBatch(await fsp.readFile(file), spec.labelBytes, file, fixFor(loc.kind)));
  }
  const images = concatF32(parts.map((p) => p.images));
  const coarse = name === 'cifar100' && opts.cifar100Labels === 'coarse';
  const labels = concatI32(parts.map((p) => (coarse ? p.coarse! : p.labels)));
  const meta = name === 'cifar10' ? CIFAR10_META : CIFAR100_META;
  const classNames = coarse ? CIFAR100_COARSE : meta.classNames;
  return {
    name,
    split,
    n: labels.length,
    channels: 3,
    height: 32,
    width: 32,
    numClasses: classNames.length,
    classNames: [...classNames],
    originalClassIds: classNames.map((_, i) => i),
    mean: [...meta.mean],
    std: [...meta.std],
    images,
    labels,
    source: loc.dir,
  };
}

function concatF32(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatI32(parts: Int32Array[]): Int32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
