// Shared shapes of the data layer. Images are NCHW float32 in [0, 1]; normalisation (mean/std) is
// the model's job, so each dataset only *reports* its conventional mean/std for the model to embed.

export type Split = 'train' | 'val' | 'test';

export interface Dataset {
  /** Canonical dataset name, e.g. 'fashion-mnist', 'cifar10', 'folder:/data/pets'. */
  name: string;
  split: Split;
  n: number;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  /** classNames[label] for the (possibly re-indexed) labels of this dataset. */
  classNames: string[];
  /** originalClassIds[label] = class id in the full dataset (identity unless a class subset was taken). */
  originalClassIds: number[];
  /** Conventional per-channel mean/std of the full training set, for the model to embed. */
  mean: number[];
  std: number[];
  /**
   * n * channels * height * width values in [0, 1], NCHW. Empty for streamed datasets (`stream` set):
   * read images through readExamples / readRange / streamBatches (stream.ts), which serve both kinds.
   */
  images: Float32Array;
  /** Large image folders: images decoded on demand, per batch, with a bounded cache (folder.ts). */
  stream?: ImageSource;
  /** n labels in 0..numClasses-1. */
  labels: Int32Array;
  /** Where the data came from (directory or file), for run logs and provenance. */
  source: string;
}

/** Images read on demand instead of held in memory. */
export interface ImageSource {
  /** The images at `indices` (positions in this source), NCHW floats in [0, 1]. */
  read(indices: ArrayLike<number>): Promise<Float32Array>;
  /** The same images restricted to `indices`, in that order (class subsets, splits, limits). */
  subset(indices: ArrayLike<number>): ImageSource;
}

export interface LoadOptions {
  /** Directory holding the dataset files (CLI --data-dir); falls back to env ADVRUN_DATA. */
  dataDir?: string;
  /** Where downloads are cached; env ADVRUN_CACHE_DIR; default <repo>/datasets/cache. */
  cacheDir?: string;
  /** Allow downloading when no local copy is found (default true; env ADVRUN_OFFLINE=1 disables). */
  download?: boolean;
  /** Base URL of the Fashion-MNIST mirror (env ADVRUN_FASHION_MNIST_URL). */
  fashionMnistUrl?: string;
  /** Full URL of the CIFAR tar.gz (env ADVRUN_CIFAR10_URL / ADVRUN_CIFAR100_URL). */
  cifarUrl?: string;
  /** Expected SHA-256 per downloaded file name, overriding the built-in ones (for mirrors and tests). */
  sha256?: Record<string, string>;
  /** System directory searched for Fashion-MNIST after dataDir; null disables it. */
  systemDir?: string | null;
  /** Class subset: '0-4', '5,7,9', '0-2,7', class names, or ids. Labels are re-indexed 0..k-1. */
  classes?: string | number[];
  /** Hold out this fraction (<1) or count (>=1) of the training set as split 'val'. */
  val?: number;
  /** Stratify the train/val split by class (default true). */
  stratified?: boolean;
  /** Keep only the first `limit` examples after a fixed seeded shuffle (kept in original order). */
  limit?: number;
  /** Data-selection seed for val split and limit (default 0). Deliberately separate from the training seed. */
  seed?: number;
  /** folder: output size (square number or [height, width]); default 32. */
  imageSize?: number | [number, number];
  /** folder: 3 = RGB (default), 1 = grayscale. */
  channels?: 1 | 3;
  /**
   * folder: decode images per batch instead of loading the folder into memory. Default: stream when the
   * decoded folder would exceed 1 GiB (ImageNet); env ADVRUN_FOLDER_STREAM=1/0 forces either way.
   */
  stream?: boolean;
  /** folder, streamed: decoded images kept in memory, in MiB (env ADVRUN_FOLDER_CACHE_MB; default 512). */
  cacheMb?: number;
  /** cifar100: which label set to use (default 'fine'). */
  cifar100Labels?: 'fine' | 'coarse';
  /** Progress lines (downloads); default writes to stderr. */
  log?: (line: string) => void;
  /** Environment to read ADVRUN_* variables from (default process.env). */
  env?: Record<string, string | undefined>;
}

/** Static facts about a built-in dataset, available without loading it. */
export interface DatasetMeta {
  channels: number;
  height: number;
  width: number;
  classNames: string[];
  mean: number[];
  std: number[];
}
