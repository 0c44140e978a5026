// Batching, epoch-dependent shuffling and in-Node augmentation. Every random choice is a pure
// function of (seed, epoch[, batch]) so a resumed run sees exactly the batches it would have seen.

import type { Rng } from '../util/random.js';
import { deriveRng, SALT } from './seeds.js';
import type { Dataset } from './types.js';

/** Visiting order for one epoch: order = f(seed, epoch), independent of any earlier draws. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return deriveRng(seed, SALT.shuffle, epoch).permutation(n);
}

export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

export interface AugmentOptions {
  /** Zero padding for random crops (pixels each side); 0 disables cropping. */
  pad: number;
  /** Random horizontal flip with probability 1/2. */
  flip: boolean;
}

/** The conventional crop padding: 4 for 32x32 (CIFAR), 2 for 28x28 (Fashion-MNIST). */
export function defaultAugment(ds: Pick<Dataset, 'height' | 'width'>): AugmentOptions {
  return { pad: Math.min(ds.height, ds.width) >= 32 ? 4 : 2, flip: true };
}

export interface BatchOptions {
  batchSize: number;
  /** Shuffle with epochOrder(seed, epoch) (default true); false keeps dataset order (evaluation). */
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
  /** Skip a final batch smaller than batchSize. */
  dropLast?: boolean;
  augment?: AugmentOptions | false;
  /** Start at this batch index (resume mid-epoch); earlier batches are not materialised. */
  startBatch?: number;
}

export interface Batch {
  /** n * C * H * W values; sized exactly to n (the last batch may be smaller unless dropLast). */
  x: Float32Array;
  y: Int32Array;
  n: number;
  /** Dataset indices of the examples, for logging or per-example bookkeeping. */
  indices: Uint32Array;
  /** Batch number within the epoch. */
  index: number;
}

/** The dataset indices of each batch of an epoch, in visiting order. */
function* batchIndices(ds: Dataset, o: BatchOptions): Generator<{ indices: Uint32Array; index: number }> {
  const { batchSize } = o;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batches: bad batch size ${batchSize}`);
  const order = (o.shuffle ?? true) ? epochOrder(ds.n, o.seed ?? 0, o.epoch ?? 0) : identity(ds.n);
  const count = numBatches(ds.n, batchSize, o.dropLast);
  for (let b = o.startBatch ?? 0; b < count; b++) yield { indices: order.subarray(b * batchSize, Math.min(ds.n, (b + 1) * batchSize)), index: b };
}

/** Labels of a batch, and its images augmented in place (the rng depends only on seed, epoch, batch). */
function finishBatch(ds: Dataset, o: BatchOptions, x: Float32Array, indices: Uint32Array, index: number): Batch {
  const n = indices.length;
  const y = Int32Array.from(indices, (j) => ds.labels[j]!);
  if (o.augment) augmentBatch(x, n, ds.channels, ds.height, ds.width, o.augment, deriveRng(o.seed ?? 0, SALT.augment, o.epoch ?? 0, index));
  return { x, y, n, indices, index };
}

/** Batches of an in-memory dataset (streamed ones: streamBatches, which serves both). */
export function* batches(ds: Dataset, o: BatchOptions): Generator<Batch> {
  if (ds.stream) throw new Error(`${ds.name} is streamed: iterate it with streamBatches()`);
  const per = ds.channels * ds.height * ds.width;
  for (const { indices, index } of batchIndices(ds, o)) {
    const x = new Float32Array(indices.length * per);
    indices.forEach((j, i) => x.set(ds.images.subarray(j * per, (j + 1) * per), i * per));
    yield finishBatch(ds, o, x, indices, index);
  }
}

/**
 * The same batches as batches(), for in-memory and streamed datasets alike. A streamed dataset's next
 * batch is decoded while the caller works on the current one (sharp decodes on libuv's threads, so it
 * overlaps ONNX Runtime's work).
 */
export async function* streamBatches(ds: Dataset, o: BatchOptions): AsyncGenerator<Batch> {
  const stream = ds.stream;
  if (!stream) { yield* batches(ds, o); return; }
  const plan = [...batchIndices(ds, o)];
  const load = (k: number) => {
    const p = stream.read(plan[k]!.indices).then((x) => finishBatch(ds, o, x, plan[k]!.indices, plan[k]!.index));
    p.catch(() => {}); // a prefetch the caller never awaits (it stopped early) must not become an unhandled rejection
    return p;
  };
  let next = plan.length ? load(0) : undefined;
  for (let k = 0; k < plan.length; k++) {
    const current = await next!;
    next = k + 1 < plan.length ? load(k + 1) : undefined;
    yield current;
  }
}

function identity(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/**
 * In-place random crop (with zero padding) and horizontal flip of a batch of NCHW images.
 * Each image draws its offsets and flip from `rng`, so results depend only on the rng's seed.
 */
export function augmentBatch(x: Float32Array, n: number, c: number, h: number, w: number, o: AugmentOptions, rng: Rng): void {
  const per = c * h * w;
  const tmp = new Float32Array(per);
  for (let i = 0; i < n; i++) {
    const dy = o.pad > 0 ? rng.int(2 * o.pad + 1) - o.pad : 0;
    const dx = o.pad > 0 ? rng.int(2 * o.pad + 1) - o.pad : 0;
    const flip = o.flip && rng.next() < 0.5;
    if (dx === 0 && dy === 0 && !flip) continue;
    const img = x.subarray(i * per, (i + 1) * per);
    tmp.set(img);
    shiftFlip(tmp, img, c, h, w, dy, dx, flip);
  }
}

/** out[y][x] = src[y + dy][x' + dx] with x' the (optionally mirrored) column; zero outside. */
function shiftFlip(src: Float32Array, out: Float32Array, c: number, h: number, w: number, dy: number, dx: number, flip: boolean): void {
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      const row = base + y * w;
      if (sy < 0 || sy >= h) {
        out.fill(0, row, row + w);
        continue;
      }
      const srow = base + sy * w;
      for (let xx = 0; xx < w; xx++) {
        const sx = (flip ? w - 1 - xx : xx) + dx;
        out[row + xx] = sx >= 0 && sx < w ? src[srow + sx]! : 0;
      }
    }
  }
}
