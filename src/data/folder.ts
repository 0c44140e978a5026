// Image folders in torchvision ImageFolder layout: root/<class>/**/<image>. Classes are the
// sub-directory names sorted by code point (Python's sorted()), files in sorted(os.walk()) order
// (walkImages), so label ids and example order match torchvision for the same tree.
// If root has train/, val/ or test/ sub-directories, each split reads its own; otherwise the root
// itself serves every split (a flat folder is one pool of images, e.g. for evaluation).
//
// Two modes with identical pixels: small folders are decoded once into memory; large ones (ImageNet's
// train/ and val/) are streamed: only the file list is kept, each batch decodes its images (resize to
// cover, centre crop to the requested size) with a bounded cache, and mean/std come from a fixed sample.

import { promises as fsp, type Dirent } from 'node:fs';
import * as path from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { UserError } from '../util/errors.js';
import { displayPath } from './paths.js';
import { deriveRng, SALT } from './seeds.js';
import type { Dataset, ImageSource, LoadOptions, Split } from './types.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff'];
const SPLIT_DIRS: Split[] = ['train', 'val', 'test'];
/** Decode this many images at once: enough to keep libvips' threads busy without piling up buffers. */
const CONCURRENCY = 16;

function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return d;
  }
  return x.length - y.length;
}

async function readDir(dir: string): Promise<Dirent[]> {
  try {
    return (await fsp.readdir(dir, { withFileTypes: true })).sort((a, b) => byCodePoint(a.name, b.name));
  } catch (e) {
    throw new UserError(`${displayPath(dir)}: cannot read directory (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
}

/** Follows symlinks like torchvision (os.walk(followlinks=True)). */
async function isDir(p: string, d: Dirent): Promise<boolean> {
  if (d.isDirectory()) return true;
  if (!d.isSymbolicLink()) return false;
  return (await fsp.stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** torchvision's ImageFolder loads these too; advrun's decoder (libvips) cannot, so they are an error, never skipped. */
const UNSUPPORTED_IMAGE_EXTENSIONS = ['.bmp', '.ppm', '.pgm'];

/**
 * The images under `dir` in torchvision's order: `sorted(os.walk(dir))` visits directories by their full
 * path strings (so a directory's own files come before its sub-directories', and "a/b-c" before "a/b/d"),
 * each directory's files sorted by name.
 */
async function walkImages(dir: string, out: string[]): Promise<void> {
  const dirs: { dir: string; files: string[] }[] = [];
  const visit = async (d: string): Promise<void> => {
    const files: string[] = [];
    dirs.push({ dir: d, files });
    for (const e of await readDir(d)) {
      const p = path.join(d, e.name);
      if (await isDir(p, e)) await visit(p);
      else {
        const ext = path.extname(e.name).toLowerCase();
        if (IMAGE_EXTENSIONS.includes(ext)) files.push(p);
        else if (UNSUPPORTED_IMAGE_EXTENSIONS.includes(ext)) throw new UserError(`${displayPath(p)}: ${ext} images cannot be decoded by advrun (torchvision would load them); convert them to .png`);
      }
    }
  };
  await visit(dir);
  for (const { files } of dirs.sort((a, b) => byCodePoint(a.dir, b.dir))) out.push(...files);
}

/** The directory holding the class folders for `split` (see the header comment). */
export async function folderSplitDir(root: string, split: Split): Promise<string | undefined> {
  const entries = await readDir(root);
  const splits: string[] = [];
  for (const d of entries) if (SPLIT_DIRS.includes(d.name as Split) && (await isDir(path.join(root, d.name), d))) splits.push(d.name);
  if (splits.length === 0) return root;
  return splits.includes(split) ? path.join(root, split) : undefined;
}

export async function scanImageFolder(dir: string): Promise<{ classNames: string[]; files: string[]; labels: number[] }> {
  const classNames: string[] = [];
  for (const d of await readDir(dir)) if (await isDir(path.join(dir, d.name), d)) classNames.push(d.name);
  if (classNames.length === 0) {
    throw new UserError(`${displayPath(dir)}: no class sub-directories; expected <root>/<class>/*.jpg|png`);
  }
  const files: string[] = [];
  const labels: number[] = [];
  for (const [label, name] of classNames.entries()) {
    const before = files.length;
    await walkImages(path.join(dir, name), files);
    if (files.length === before) {
      throw new UserError(`${displayPath(path.join(dir, name))}: class folder has no images (${IMAGE_EXTENSIONS.join(' ')})`);
    }
    for (let i = before; i < files.length; i++) labels.push(label);
  }
  return { classNames, files, labels };
}

/** Decode, resize (scale to cover, centre crop) one image: HWC bytes, `channels` per pixel. */
async function decodeRaw(file: string, height: number, width: number, channels: 1 | 3): Promise<Buffer> {
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(file)
      .resize(width, height, { fit: 'cover', position: 'centre' })
      .removeAlpha()
      .toColourspace(channels === 3 ? 'srgb' : 'b-w')
      .raw()
      .toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new UserError(`${displayPath(file)}: cannot decode image (${(e as Error).message.split('\n')[0]}); remove or replace it`);
  }
  if (info.channels !== channels || info.width !== width || info.height !== height) {
    throw new Error(`decodeImage: sharp returned ${info.width}x${info.height}x${info.channels} for ${file}`);
  }
  return data;
}

/** HWC bytes -> CHW floats in [0, 1]. */
function toChw(data: Uint8Array, channels: number, plane: number, out: Float32Array): void {
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < channels; c++) out[c * plane + p] = data[p * channels + c]! / 255;
  }
}

/** Decode, resize (scale to cover, centre crop) and convert one image into CHW floats in [0, 1]. */
export async function decodeImage(file: string, height: number, width: number, channels: 1 | 3, out: Float32Array): Promise<void> {
  toChw(await decodeRaw(file, height, width, channels), channels, height * width, out);
}

// ---------- streaming ----------

/** Above this decoded size a folder is streamed rather than held in memory (ImageNet's 1.28M images). */
export const STREAM_THRESHOLD_BYTES = 1 << 30;
const DEFAULT_CACHE_MB = 512;
/** Images whose pixels give a streamed folder's mean/std (a fixed seeded sample; reading all would take hours). */
const STATS_SAMPLE = 256;

/**
 * Decoded images by file, least recently used first out, bounded in bytes. Stored as the decoder's bytes
 * (a quarter of the floats' size); the validation prefix evaluated every epoch stays decoded.
 */
class DecodedCache {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly capacity: number) {}

  get(file: string): Buffer | undefined {
    const v = this.map.get(file);
    if (v) { this.map.delete(file); this.map.set(file, v); } // most recently used last
    return v;
  }

  set(file: string, v: Buffer): void {
    if (v.length > this.capacity || this.map.has(file)) return;
    this.map.set(file, v);
    this.bytes += v.length;
    for (const [k, old] of this.map) {
      if (this.bytes <= this.capacity) break;
      this.map.delete(k);
      this.bytes -= old.length;
    }
  }
}

/** A streamed folder (or a subset of one): files decoded when a batch asks for them. */
class FolderImages implements ImageSource {
  constructor(
    private readonly files: readonly string[],
    private readonly geometry: { height: number; width: number; channels: 1 | 3 },
    private readonly cache: DecodedCache,
  ) {}

  async read(indices: ArrayLike<number>): Promise<Float32Array> {
    const { height, width, channels } = this.geometry;
    const plane = height * width, per = channels * plane;
    const out = new Float32Array(indices.length * per);
    const one = async (i: number) => {
      const file = this.files[indices[i]!];
      if (file === undefined) throw new Error(`streamed folder: index ${indices[i]} out of range 0..${this.files.length - 1}`);
      let raw = this.cache.get(file);
      if (!raw) {
        raw = await decodeRaw(file, height, width, channels);
        this.cache.set(file, raw);
      }
      toChw(raw, channels, plane, out.subarray(i * per, (i + 1) * per));
    };
    for (let i = 0; i < indices.length; i += CONCURRENCY) {
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, indices.length - i) }, (_, k) => one(i + k)));
    }
    return out;
  }

  subset(indices: ArrayLike<number>): ImageSource {
    return new FolderImages(Array.from(indices, (j) => this.files[j]!), this.geometry, this.cache);
  }
}

/** Whether to stream: the option, then ADVRUN_FOLDER_STREAM, then the decoded size. */
function shouldStream(opts: LoadOptions, decodedBytes: number): boolean {
  if (opts.stream !== undefined) return opts.stream;
  const env = (opts.env ?? process.env).ADVRUN_FOLDER_STREAM;
  if (env === '1' || env === '0') return env === '1';
  if (env !== undefined && env !== '') throw new UserError(`ADVRUN_FOLDER_STREAM must be 1 or 0, got "${env}"`);
  return decodedBytes > STREAM_THRESHOLD_BYTES;
}

function cacheBytes(opts: LoadOptions): number {
  const env = (opts.env ?? process.env).ADVRUN_FOLDER_CACHE_MB;
  const mb = opts.cacheMb ?? (env ? Number(env) : DEFAULT_CACHE_MB);
  if (!(mb >= 0)) throw new UserError(`ADVRUN_FOLDER_CACHE_MB must be a number of MiB >= 0, got "${env}"`);
  return mb * 2 ** 20;
}

/** A fixed seeded sample of a streamed folder, for its channel statistics. */
async function sampleStats(images: ImageSource, n: number, c: number, plane: number): Promise<{ mean: number[]; std: number[] }> {
  const perm = deriveRng(0, SALT.folderStats).permutation(n);
  const k = Math.min(n, STATS_SAMPLE);
  const sample = Array.from(perm.subarray(0, k)).sort((a, b) => a - b);
  return channelStats(await images.read(sample), k, c, plane);
}

function sizeOf(opts: LoadOptions): [number, number] {
  const s = opts.imageSize ?? 32;
  const [h, w] = Array.isArray(s) ? s : [s, s];
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || h > 4096 || w > 4096) {
    throw new UserError(`--image-size ${s}: must be a whole number of pixels (1..4096) or HxW`);
  }
  return [h, w];
}

/** Per-channel mean/std of the loaded images: folders have no conventional statistics. */
function channelStats(images: Float32Array, n: number, c: number, plane: number): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * c + ch) * plane;
      for (let p = 0; p < plane; p++) {
        const v = images[base + p]!;
        s += v;
        s2 += v * v;
      }
    }
    const m = s / (n * plane);
    mean.push(m);
    std.push(Math.sqrt(Math.max(s2 / (n * plane) - m * m, 0)) || 1);
  }
  return { mean, std };
}

export async function loadImageFolder(spec: string, split: Split, opts: LoadOptions): Promise<Dataset> {
  const root = path.resolve(spec);
  const st = await fsp.stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new UserError(`folder:${spec}: no such directory`);
  const dir = await folderSplitDir(root, split);
  if (!dir) {
    const hint = split === 'val' ? ' (or pass --val to hold out part of train/)' : '';
    throw new UserError(`folder:${spec}: has split sub-directories but no ${split}/${hint}`);
  }
  const { classNames, files, labels } = await scanImageFolder(dir);
  const [height, width] = sizeOf(opts);
  const channels = opts.channels ?? 3;
  const per = channels * height * width;
  const common = {
    name: `folder:${spec}`, split, n: files.length, channels, height, width, numClasses: classNames.length, classNames,
    originalClassIds: classNames.map((_, i) => i), labels: Int32Array.from(labels), source: dir,
  };
  if (shouldStream(opts, files.length * per * 4)) {
    const stream = new FolderImages(files, { height, width, channels }, new DecodedCache(cacheBytes(opts)));
    return { ...common, ...(await sampleStats(stream, files.length, channels, height * width)), images: new Float32Array(0), stream };
  }
  const images = new Float32Array(files.length * per);
  for (let i = 0; i < files.length; i += CONCURRENCY) {
    const chunk = files.slice(i, i + CONCURRENCY);
    await Promise.all(chunk.map((f, k) => decodeImage(f, height, width, channels, images.subarray((i + k) * per, (i + k + 1) * per))));
  }
  return { ...common, ...channelStats(images, files.length, channels, height * width), images };
}
