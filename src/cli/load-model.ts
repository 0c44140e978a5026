// From a model file on the command line to something that runs: the dataset it is evaluated on
// (by default the one an advrun checkpoint records), the opened model (advrun checkpoint, PyTorch
// state_dict with --arch, or ONNX), checked against the dataset's geometry, and a ModelRuntime.
// Shared by `advrun eval`, `advrun transfer` and `advrun sharpness`.

import { loadDataset, type Dataset, type Split } from '../data/index.js';
import { detectModelKind, openModel, type ArchOptions, type OpenedModel } from '../interop/load.js';
import type { ExecutionProvider } from '../runtime/session.js';
import { TRAIN_DEFAULTS } from '../train/config.js';
import { ModelRuntime } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { GRAPHS_DIR } from './train.js';

export interface DatasetChoice {
  /** Dataset name (default: the one the checkpoint records). */
  dataset?: string;
  dataDir?: string;
  /** Class subset (default: the checkpoint's). */
  classes?: string;
  split: Split;
  /** Held-out fraction or count for split 'val' and for the train part of split 'train' (default for 'val': the checkpoint's --val-split, else 0.1; none for 'train'). */
  val?: number;
  /** Split 'train' as the checkpoint's run saw it: without what it held out (default as for 'val'). */
  trainAsSeen?: boolean;
  limit?: number;
  /** folder: datasets: decoded size (default: the model's input size). */
  imageSize?: number;
}

export interface LoadModelOptions extends DatasetChoice {
  /** Architecture options for PyTorch state_dicts (the --arch/--width/... options). */
  arch?: ArchOptions;
  ep?: ExecutionProvider;
  threads?: number;
  /** Artifacts root (default: graphs/ or $ADVRUN_GRAPHS_DIR). */
  graphsDir?: string;
  /** Use this dataset instead of loading one (several models evaluated on the same data). */
  ds?: Dataset;
  /** Where import notes go (default: stderr). */
  note?: (line: string) => void;
}

/** What a model is evaluated on: the options given, else what its checkpoint records. */
export function resolveDataChoice(path: string, o: DatasetChoice): DatasetChoice & { dataset: string; valFrom: 'option' | 'checkpoint' | 'default' | 'none' } {
  const meta = detectModelKind(path).checkpoint?.meta;
  const extra = meta?.extra ?? {};
  const dataset = o.dataset ?? (extra.dataset as string | undefined);
  if (!dataset) throw new UserError(`${path} does not record its dataset; pass --dataset`);
  // Split 'val' is the hold-out the checkpoint's run validated on (it records the fraction or count).
  const recordedVal = extra.valSplit as number | undefined;
  const holdsOut = o.split === 'val' || (o.split === 'train' && o.trainAsSeen === true);
  const val = o.val ?? (holdsOut ? (recordedVal ?? TRAIN_DEFAULTS.valSplit) : undefined);
  return {
    ...o,
    dataset,
    classes: o.classes ?? (extra.classes as string | null) ?? undefined,
    val: val === 0 ? undefined : val, // 0: nothing held out
    // The training images as the run saw them: also its --limit subset (the same seeded selection).
    limit: o.limit ?? (o.split === 'train' && o.trainAsSeen === true ? ((extra.limit as number | null | undefined) ?? undefined) : undefined),
    valFrom: o.val !== undefined ? 'option' : !holdsOut ? 'none' : recordedVal !== undefined ? 'checkpoint' : 'default',
    // Image folders are decoded at the size the model takes (a checkpoint records it).
    imageSize: o.imageSize ?? meta?.model?.imageSize,
  };
}

/** The dataset a model is evaluated on (resolveDataChoice). */
export async function datasetForModel(path: string, o: DatasetChoice): Promise<Dataset> {
  return loadChosenDataset(resolveDataChoice(path, o));
}

/** The dataset of a choice resolveDataChoice already made (for callers that also report the choice). */
export function loadChosenDataset({ dataset, split, dataDir, classes, val, limit, imageSize }: ReturnType<typeof resolveDataChoice>): Promise<Dataset> {
  return loadDataset(dataset, split, { dataDir, classes, val, limit, ...(dataset.startsWith('folder:') && imageSize ? { imageSize } : {}) });
}

/** Open a model file for `ds` and check that it takes the dataset's images and classes. */
export async function openForDataset(path: string, ds: Dataset, o: Pick<LoadModelOptions, 'arch' | 'graphsDir' | 'note'> = {}): Promise<OpenedModel> {
  const model = await openModel(path, {
    arch: o.arch, data: { channels: ds.channels, height: ds.height, numClasses: ds.numClasses, mean: ds.mean, std: ds.std }, graphsDir: o.graphsDir ?? GRAPHS_DIR,
  });
  const note = o.note ?? ((l: string) => process.stderr.write(`${l}\n`));
  for (const n of model.notes) note(`advrun: ${path}: ${n}`);
  const spec = model.spec;
  if (ds.channels !== spec.inChannels || ds.height !== spec.imageSize || ds.numClasses !== spec.numClasses) {
    throw new UserError(`${path} expects ${spec.inChannels}x${spec.imageSize}x${spec.imageSize} images and ${spec.numClasses} classes but ${ds.name} has ${ds.channels}x${ds.height}x${ds.width} and ${ds.numClasses}`);
  }
  return model;
}

/** A checkpoint (or state_dict / ONNX model) as a ModelRuntime (eval-mode BN for logits and attacks), with its dataset. */
export async function runtimeFromCheckpoint(path: string, o: LoadModelOptions): Promise<{ rt: ModelRuntime; model: OpenedModel; ds: Dataset }> {
  const ds = o.ds ?? (await datasetForModel(path, { imageSize: o.arch?.imageSize, ...o }));
  const model = await openForDataset(path, ds, o);
  const rt = new ModelRuntime(model.artifacts, model.state, { ep: o.ep, threads: o.threads });
  return { rt, model, ds };
}
