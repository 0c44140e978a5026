// The data layer's one entry point. loadDataset(name, split, opts) loads a split, then applies, in
// this order: class subset (--classes), train/val hold-out (--val, training splits only), and
// limit (--limit). The order matters: val is carved from the chosen classes only, and limit
// samples from the final split.

import { closest } from 'fastest-levenshtein';
import { UserError } from '../util/errors.js';
import { CIFAR10_META, CIFAR100_META, loadCifar } from './cifar.js';
import { FASHION_MNIST_META, loadFashionMnist } from './fashion-mnist.js';
import { loadImageFolder } from './folder.js';
import { loadFashionMnistMini } from './mini.js';
import { applyLimit, selectClasses, splitTrainVal } from './transforms.js';
import type { Dataset, DatasetMeta, LoadOptions, Split } from './types.js';

export * from './types.js';
export { applyLimit, head, parseClassSpec, selectClasses, splitTrainVal, subset } from './transforms.js';
export { augmentBatch, batches, defaultAugment, epochOrder, numBatches, streamBatches } from './batches.js';
export { materialize, readExamples, readRange } from './stream.js';
export type { AugmentOptions, Batch, BatchOptions } from './batches.js';
export { CIFAR10_META, CIFAR100_META, CIFAR100_COARSE } from './cifar.js';
export { FASHION_MNIST_META } from './fashion-mnist.js';

export type DatasetName = 'fashion-mnist' | 'fashion-mnist-mini' | 'cifar10' | 'cifar100' | `folder:${string}`;

const BUILTIN = ['fashion-mnist', 'fashion-mnist-mini', 'cifar10', 'cifar100'] as const;
export const DATASET_NAMES: readonly string[] = [...BUILTIN, 'folder:<path>'];
/** The embedded dataset: real data, shipped in the repo, loads offline. */
export const DEFAULT_DATASET: DatasetName = 'fashion-mnist-mini';
const SPLITS: Split[] = ['train', 'val', 'test'];

/** Static metadata of a built-in dataset (shape, class names, mean/std) without loading it. */
export function datasetMeta(name: string): DatasetMeta {
  switch (name) {
    case 'fashion-mnist':
    case 'fashion-mnist-mini':
      return FASHION_MNIST_META;
    case 'cifar10':
      return CIFAR10_META;
    case 'cifar100':
      return CIFAR100_META;
  }
  throw unknownName(name);
}

function unknownName(name: string): UserError {
  const guess = closest(name, [...BUILTIN, 'folder:']);
  return new UserError(`unknown dataset '${name}'; valid: ${DATASET_NAMES.join(', ')} (did you mean ${guess}?)`);
}

/** Load the source split ('val' reads the training files unless a folder has its own val/). */
async function loadBase(name: string, split: Split, opts: LoadOptions): Promise<Dataset> {
  if (name.startsWith('folder:')) {
    const dir = name.slice('folder:'.length);
    if (!dir) throw new UserError(`dataset 'folder:' needs a path, e.g. folder:./images`);
    const native = split === 'val' && opts.val === undefined;
    return loadImageFolder(dir, native ? 'val' : split === 'test' ? 'test' : 'train', opts);
  }
  const source: Split = split === 'test' ? 'test' : 'train';
  switch (name) {
    case 'fashion-mnist':
      return loadFashionMnist(source, opts);
    case 'fashion-mnist-mini':
      return loadFashionMnistMini(source, opts);
    case 'cifar10':
    case 'cifar100':
      return loadCifar(name, source, opts);
  }
  throw unknownName(name);
}

export async function loadDataset(name: DatasetName | string, split: Split, opts: LoadOptions = {}): Promise<Dataset> {
  if (!SPLITS.includes(split)) throw new UserError(`unknown split '${split}'; valid: ${SPLITS.join(', ')}`);
  const seed = opts.seed ?? 0;
  const nativeVal = split === 'val' && opts.val === undefined;
  if (nativeVal && !name.startsWith('folder:')) {
    throw new UserError(`split 'val' of ${name} is held out from its training set: pass --val (a fraction like 0.1 or a count)`);
  }
  let ds = await loadBase(name, split, opts);
  if (opts.classes !== undefined) ds = selectClasses(ds, opts.classes);
  if (split !== 'test' && opts.val !== undefined) {
    ds = splitTrainVal(ds, { val: opts.val, seed, stratified: opts.stratified })[split];
  }
  if (opts.limit !== undefined) ds = applyLimit(ds, opts.limit, seed);
  return { ...ds, split };
}
