// Fashion-MNIST (Zalando, MIT licence) from its IDX files. Search order: --data-dir / ADVRUN_DATA,
// the Debian package dir (dataset-fashion-mnist), the download cache, then a verified download.

import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { downloadVerified } from './download.js';
import { readIdxFile } from './idx.js';
import { cacheDir, displayPath, downloadAllowed, envOf, exists, userDataDir } from './paths.js';
import type { Dataset, DatasetMeta, LoadOptions, Split } from './types.js';

export const FASHION_MNIST_META: DatasetMeta = {
  channels: 1,
  height: 28,
  width: 28,
  classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  // Computed over the 60k training images (0.28604, 0.35302).
  mean: [0.286],
  std: [0.353],
};

export const FASHION_MNIST_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';
export const FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * Checksums of the official files. `gz`: SHA-256 of the upstream .gz files as served by the mirror
 * (published in TensorFlow Datasets' url_checksums; the label files also equal the copies in the
 * zalandoresearch/fashion-mnist git repo). `debianGz`: Debian's copies, which carry the very same
 * deflate streams with a rewritten gzip header (no file name, new mtime) — accepted from mirrors
 * too. `raw`: SHA-256 of the decompressed IDX bytes, identical for both.
 */
export const FASHION_MNIST_FILES = {
  'train-images-idx3-ubyte': {
    gz: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
    debianGz: 'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7',
    raw: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
    rawBytes: 47040016,
  },
  'train-labels-idx1-ubyte': {
    gz: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
    debianGz: '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056',
    raw: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
    rawBytes: 60008,
  },
  't10k-images-idx3-ubyte': {
    gz: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
    debianGz: 'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa',
    raw: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
    rawBytes: 7840016,
  },
  't10k-labels-idx1-ubyte': {
    gz: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
    debianGz: '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05',
    raw: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
    rawBytes: 10008,
  },
} as const;

export type FashionFile = keyof typeof FASHION_MNIST_FILES;

/** Base names (without .gz) of the image and label files of a split; 'val' is carved from train. */
export function fashionFiles(split: Split): { images: FashionFile; labels: FashionFile } {
  const p = split === 'test' ? 't10k' : 'train';
  return { images: `${p}-images-idx3-ubyte`, labels: `${p}-labels-idx1-ubyte` };
}

/** How the user fixes a bad file depends on where it came from. */
export type SourceKind = 'user' | 'system' | 'cache' | 'shipped';

export function fixHint(kind: SourceKind): string {
  switch (kind) {
    case 'cache':
      return 'delete it and re-run to download again';
    case 'system':
      return "reinstall it with 'apt-get install --reinstall dataset-fashion-mnist'";
    case 'shipped':
      return "restore it from the repository or regenerate it with 'node dist/data/make-subset.js'";
    case 'user':
      return 'replace it with the original file (or point --data-dir elsewhere)';
  }
}

export interface IdxPair {
  n: number;
  height: number;
  width: number;
  images: Float32Array;
  labels: Int32Array;
}

/** Load and cross-validate an images/labels IDX pair (same count, labels < numClasses). */
export async function loadIdxPair(imagesFile: string, labelsFile: string, numClasses: number, fix: string): Promise<IdxPair> {
  // Both are read at once, but a failure is reported in a fixed order (images first), not whichever came first.
  const reads = [readIdxFile(imagesFile, 3, fix), readIdxFile(labelsFile, 1, fix)] as const;
  await Promise.allSettled(reads);
  const img = await reads[0], lab = await reads[1];
  const [n, height, width] = img.dims as [number, number, number];
  if (lab.dims[0] !== n) {
    throw new UserError(
      `${displayPath(labelsFile)}: has ${lab.dims[0]} labels but ${displayPath(imagesFile)} has ${n} images; ${fix}`,
    );
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const l = lab.data[i]!;
    if (l >= numClasses) {
      throw new UserError(`${displayPath(labelsFile)}: label ${l} at index ${i} is not in 0..${numClasses - 1}; ${fix}`);
    }
    labels[i] = l;
  }
  return { n, height, width, images: toUnitFloat(img.data), labels };
}

export function toUnitFloat(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / 255;
  return out;
}

/** The path of `<dir>/<base>` or `<dir>/<base>.gz` (uncompressed preferred), if either exists. */
export async function findIdx(dir: string, base: string): Promise<string | undefined> {
  for (const f of [base, `${base}.gz`]) {
    const p = path.join(dir, f);
    if (await exists(p)) return p;
  }
  return undefined;
}

interface Located {
  images: string;
  labels: string;
  kind: SourceKind;
}

async function locateIn(dir: string, split: Split, kind: SourceKind): Promise<Located | undefined> {
  const f = fashionFiles(split);
  const images = await findIdx(dir, f.images);
  const labels = await findIdx(dir, f.labels);
  if (images && labels) return { images, labels, kind };
  if ((images || labels) && kind === 'user') {
    // Half a dataset in the user's own directory is a mistake worth stopping for.
    const missing = images ? f.labels : f.images;
    throw new UserError(`${displayPath(dir)}: has ${path.basename((images ?? labels)!)} but not ${missing}(.gz); add it or remove the other file`);
  }
  return undefined;
}

export function fashionMnistSearchDirs(opts: LoadOptions): { dir: string; kind: SourceKind }[] {
  const dirs: { dir: string; kind: SourceKind }[] = [];
  const user = userDataDir(opts);
  if (user) dirs.push({ dir: user, kind: 'user' }, { dir: path.join(user, 'fashion-mnist'), kind: 'user' });
  const system = opts.systemDir === undefined ? FASHION_MNIST_SYSTEM_DIR : opts.systemDir;
  if (system) dirs.push({ dir: system, kind: 'system' });
  dirs.push({ dir: path.join(cacheDir(opts), 'fashion-mnist'), kind: 'cache' });
  return dirs;
}

async function locate(split: Split, opts: LoadOptions): Promise<Located> {
  const dirs = fashionMnistSearchDirs(opts);
  for (const { dir, kind } of dirs) {
    const found = await locateIn(dir, split, kind);
    if (found) return found;
    // An explicit --data-dir is what the user wants read: not a hint to be passed over silently.
    if (kind === 'user' && opts.dataDir && dir === path.join(userDataDir(opts)!, 'fashion-mnist')) {
      throw new UserError(`fashion-mnist: --data-dir ${displayPath(userDataDir(opts)!)} holds no ${split} IDX files (in it or in fashion-mnist/); point it at them, or leave --data-dir out to use Debian's files or the download cache`);
    }
  }
  const cache = dirs[dirs.length - 1]!.dir;
  if (!downloadAllowed(opts)) {
    const where = dirs.map((d) => displayPath(d.dir)).join(', ');
    throw new UserError(`fashion-mnist: not found in ${where} and downloads are disabled; install dataset-fashion-mnist or pass --data-dir`);
  }
  await downloadSplit(split, cache, opts);
  return (await locateIn(cache, split, 'cache'))!;
}

async function downloadSplit(split: Split, cache: string, opts: LoadOptions): Promise<void> {
  const base = opts.fashionMnistUrl ?? envOf(opts).ADVRUN_FASHION_MNIST_URL ?? FASHION_MNIST_URL;
  const f = fashionFiles(split);
  for (const name of [f.images, f.labels]) {
    if (await findIdx(cache, name)) continue; // kept from an earlier, partly failed run
    const file = `${name}.gz`;
    const known = FASHION_MNIST_FILES[name];
    const override = opts.sha256?.[file];
    await downloadVerified(new URL(file, base.endsWith('/') ? base : `${base}/`).href, path.join(cache, file), {
      sha256: override ?? [known.gz, known.debianGz],
      log: opts.log,
      hint: "set ADVRUN_FASHION_MNIST_URL to a mirror, install the Debian package dataset-fashion-mnist, or use --data-dir",
    });
  }
}

export async function loadFashionMnist(split: Split, opts: LoadOptions): Promise<Dataset> {
  const loc = await locate(split, opts);
  return fashionMnistDataset('fashion-mnist', split, loc.images, loc.labels, fixHint(loc.kind), path.dirname(loc.images));
}

/**
 * An IDX image/label pair read as Fashion-MNIST (28x28, its ten classes). Normalisation is always the
 * full training set's statistics, also for fashion-mnist-mini: it stands in for Fashion-MNIST, and
 * models trained on it should normalise the same way as models trained on the full set.
 */
export async function fashionMnistDataset(name: string, split: Split, images: string, labels: string, fix: string, source: string): Promise<Dataset> {
  const pair = await loadIdxPair(images, labels, 10, fix);
  checkGeometry(pair, images, fix);
  return {
    name,
    split,
    ...pair,
    channels: 1,
    numClasses: 10,
    classNames: [...FASHION_MNIST_META.classNames],
    originalClassIds: FASHION_MNIST_META.classNames.map((_, i) => i),
    mean: [...FASHION_MNIST_META.mean],
    std: [...FASHION_MNIST_META.std],
    source,
  };
}

export function checkGeometry(pair: IdxPair, file: string, fix: string): void {
  if (pair.height !== 28 || pair.width !== 28) {
    throw new UserError(`${displayPath(file)}: images are ${pair.height}x${pair.width}, Fashion-MNIST is 28x28; ${fix}`);
  }
}
