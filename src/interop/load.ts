// One entry point for every model file advrun evaluates, attacks or exports:
//   - advrun checkpoints (.safetensors with advrun metadata): the recorded architecture;
//   - PyTorch state_dicts (.pt/.pth/.bin written by torch.save, or .safetensors without advrun
//     metadata): mapped onto a built-in architecture given by --arch/--width/... options;
//   - ONNX classifiers (.onnx): imported as they are (see onnx-import.ts).
// Each becomes artifacts + state that ModelRuntime runs.

import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import type { Argv } from 'yargs';
import { CHECKPOINT_FORMAT, checkStateMatches, decodeCheckpoint, type Checkpoint } from '../checkpoint/checkpoint.js';
import { modelSpecFrom } from '../cli/options.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { archNames, type ModelSpec } from '../models/index.js';
import { ensureArtifacts, type BuiltArtifacts } from '../train/artifacts.js';
import { initialState } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { ensureImportedArtifacts, type ImportedArtifactOptions } from './imported-artifacts.js';
import { IMPORTED_ARCH, importOnnx, importedState, type ImportedOnnx } from './onnx-import.js';
import { decodeForeignSafetensors, decodeForeignState, fitState, looksLikeSafetensors, normalizerMismatch } from './state-dict.js';
import { isZip } from './zip.js';
import { sha256Hex } from '../util/hash.js';
import { readInputFile, readInputHead } from '../util/fs.js';

export type ModelKind = 'advrun' | 'pytorch' | 'onnx';

/** Architecture options for PyTorch state_dicts (no defaults: unset ones come from the dataset). */
export interface ArchOptions {
  arch?: string;
  width?: number;
  depth?: number;
  activation?: string;
  inChannels?: number;
  imageSize?: number;
  inputResize?: number;
  numClasses?: number;
  mean?: string;
  std?: string;
}

/** What a dataset says about the model it needs, used for unset architecture options. */
export interface DataDefaults {
  channels: number;
  height: number;
  numClasses: number;
  mean: number[];
  std: number[];
}

const FALLBACK: DataDefaults = { channels: 1, height: 28, numClasses: 10, mean: [0.286], std: [0.353] };

export function withArchOptions<T>(y: Argv<T>) {
  return y
    .option('arch', { type: 'string', describe: `PyTorch state_dicts: architecture (${archNames().join(', ')})` })
    .option('width', { type: 'number', describe: 'PyTorch state_dicts: base width (preact-resnet18: 64; wrn: widen factor)' })
    .option('depth', { type: 'number', describe: 'PyTorch state_dicts: WideResNet depth' })
    .option('activation', { type: 'string', describe: 'PyTorch state_dicts: activation (relu)' })
    .option('in-channels', { type: 'number', describe: "PyTorch state_dicts: input channels (default: the dataset's)" })
    .option('image-size', { type: 'number', describe: "PyTorch state_dicts: input height = width (default: the dataset's)" })
    .option('input-resize', { type: 'number', describe: 'PyTorch state_dicts: bilinear upsampling to this size inside the model (e.g. 224)' })
    .option('num-classes', { type: 'number', describe: "PyTorch state_dicts: classes (default: the dataset's)" })
    .option('mean', { type: 'string', describe: "PyTorch state_dicts: per-channel mean applied inside the model (default: the dataset's; 0 for none)" })
    .option('std', { type: 'string', describe: "PyTorch state_dicts: per-channel std (default: the dataset's; 1 for none)" });
}

export function specFromArchOptions(a: ArchOptions, source: string, d: DataDefaults = FALLBACK): ModelSpec {
  if (!a.arch) throw new UserError(`${source} is a PyTorch state_dict, which does not record its architecture: pass --arch (${archNames().join(', ')}) and --width etc. as used in PyTorch`);
  const spec = modelSpecFrom({
    arch: a.arch, width: a.width, activation: a.activation ?? 'relu',
    inChannels: a.inChannels ?? d.channels, imageSize: a.imageSize ?? d.height, numClasses: a.numClasses ?? d.numClasses,
    mean: a.mean ?? d.mean.join(','), std: a.std ?? d.std.join(','),
  });
  if (a.depth !== undefined) spec.depth = a.depth;
  if (a.inputResize !== undefined) {
    if (!Number.isInteger(a.inputResize) || a.inputResize < 1) throw new UserError(`--input-resize must be a positive integer, got ${a.inputResize}`);
    spec.inputResize = a.inputResize;
  }
  if (!archNames().includes(spec.arch)) throw new UserError(`unknown architecture "${spec.arch}"; available: ${archNames().join(', ')}`);
  return spec;
}

/**
 * What a model file is, from its content (and the .onnx extension). The file is read once: its bytes (and,
 * for an advrun checkpoint, the decoded checkpoint) come back for openModel to use.
 */
export function detectModelKind(path: string): DetectedModel {
  // A command asks about the same file more than once (its dataset, then the model): read it once.
  const stamp = fileStamp(path);
  if (lastDetected && lastDetected.path === path && lastDetected.stamp === stamp) return lastDetected.model;
  const model = detectFromBytes(path, readInputFile(path));
  lastDetected = stamp === undefined ? undefined : { path, stamp, model };
  return model;
}

export interface DetectedModel { kind: ModelKind; format: 'safetensors' | 'pt' | 'onnx'; bytes: Buffer; checkpoint?: Checkpoint }

let lastDetected: { path: string; stamp: string; model: DetectedModel } | undefined;

/** Drop the remembered read of `path` once it is opened: its bytes (and decoded checkpoint) are not kept for the rest of the process. */
export function forgetModelFile(path: string): void {
  if (lastDetected?.path === path) lastDetected = undefined;
}

function fileStamp(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined; // readInputFile reports it
  }
}

function detectFromBytes(path: string, bytes: Buffer): DetectedModel {
  const format = formatOf(path, bytes, bytes.length);
  if (format === 'safetensors') {
    const { metadata } = decodeForeignSafetensors(bytes, path);
    if (metadata.format === CHECKPOINT_FORMAT) return { kind: 'advrun', format, bytes, checkpoint: decodeCheckpoint(bytes, path) };
    return { kind: 'pytorch', format, bytes };
  }
  return { kind: format === 'pt' ? 'pytorch' : 'onnx', format, bytes };
}

/** A model file's container format from its first bytes (`head`) and size, or the one-line error for anything else. */
function formatOf(path: string, head: Uint8Array, size: number): DetectedModel['format'] {
  if (looksLikeSafetensors(head, size)) return 'safetensors';
  // A safetensors start (header length, then '{') whose header runs past the end of the file: cut short.
  if (head.length >= 9 && head[8] === 0x7b && extname(path).toLowerCase() === '.safetensors') {
    throw new UserError(`${path} is a truncated safetensors file (its header alone needs ${Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0) + 8n} bytes, the file has ${size}); copy it again`);
  }
  if (isZip(head) || (head[0] === 0x80 && head[1] === 0x02)) return 'pt';
  if (extname(path).toLowerCase() === '.onnx' || head[0] === 0x08) return 'onnx';
  throw new UserError(`${path} is neither an advrun checkpoint, a PyTorch checkpoint (.pt zip or .safetensors) nor an ONNX model (.onnx)`);
}

/**
 * Fails with the error opening `path` would give first (missing, unreadable, not a model file) while reading
 * only its first bytes: commands that open several models check them all before loading any data.
 */
export function checkModelFile(path: string): void {
  const { head, size } = readInputHead(path, 16);
  formatOf(path, head, size);
}

export interface OpenedModel {
  kind: ModelKind;
  source: string;
  spec: ModelSpec;
  artifacts: BuiltArtifacts;
  /** Everything ModelRuntime needs: parameters, buffers, zero momentum. */
  state: Map<string, Tensor>;
  /** advrun checkpoints: their metadata (dataset, classes, epochs...). */
  meta?: Checkpoint['meta'];
  imported?: ImportedOnnx;
  /** What the import did (prefixes stripped, opset upgraded...). */
  notes: string[];
  /** SHA-256 of the model file, for result files (hashed from the bytes openModel already read). */
  sha256: string;
}

export interface OpenOptions {
  arch?: ArchOptions;
  /** Defaults for unset architecture options (the dataset being evaluated). */
  data?: DataDefaults;
  /** Artifacts root (graphs/); imported ONNX models may use null (memory only). */
  graphsDir: string;
  /** Imported ONNX models: also build the fine-tuning train step. */
  train?: ImportedArtifactOptions['train'];
}

const EVAL_CONFIG = { loss: { kind: 'ce' as const, labelSmoothing: 0 }, optimizer: { kind: 'sgd' as const, momentum: 0, nesterov: false, weightDecay: 0 } };

/** Built-in architecture artifacts with `weights` (params and buffers) over the initial state. */
function builtinWithWeights(spec: ModelSpec, weights: Map<string, Tensor>, graphsDir: string, source: string): { artifacts: BuiltArtifacts; state: Map<string, Tensor> } {
  const artifacts = ensureArtifacts({ model: spec, ...EVAL_CONFIG }, graphsDir);
  const state = initialState(artifacts.manifest, 0);
  checkStateMatches(weights, new Map([...state].filter(([k]) => !k.startsWith('momentum.'))), source, spec.arch);
  for (const k of state.keys()) if (weights.has(k)) state.set(k, weights.get(k)!);
  return { artifacts, state };
}

/**
 * What a fine-tuning run of an imported ONNX model (`advrun train --init model.onnx`) records in its
 * checkpoints' `extra.onnx`: the graph is not in the checkpoint, so it is rebuilt from this file.
 */
export interface ImportedCheckpointSource {
  /** Absolute path of the ONNX file the run was initialised from. */
  file: string;
  /** Its SHA-256: the checkpoint's tensors only fit the graph of that exact file. */
  sha256: string;
}

/** Imported models: eval/attack (and optionally train-step) artifacts, with zero momentum added to `weights`. */
function importedWithWeights(im: ImportedOnnx, weights: Map<string, Tensor>, o: OpenOptions, source: string): { artifacts: BuiltArtifacts; state: Map<string, Tensor> } {
  const artifacts = ensureImportedArtifacts(im, o.graphsDir, { train: o.train });
  const state = importedState(im);
  checkStateMatches(weights, state, source, `the graph of ${im.source}`);
  for (const k of state.keys()) state.set(k, weights.get(k)!);
  for (const m of artifacts.manifest.momentum) state.set(m, weights.get(m) ?? makeTensor('float32', state.get(m.slice('momentum.'.length))!.dims));
  return { artifacts, state };
}

/** An advrun checkpoint of a fine-tuned imported ONNX model: the ONNX file it records, re-imported, with the checkpoint's tensors. */
async function openImportedCheckpoint(path: string, ck: Checkpoint, o: OpenOptions): Promise<Omit<OpenedModel, 'sha256'>> {
  const src = ck.meta.extra?.onnx as Partial<ImportedCheckpointSource> | undefined;
  if (!src || typeof src.file !== 'string' || typeof src.sha256 !== 'string') {
    throw new UserError(`${path} is a fine-tuned imported ONNX model but does not record which ONNX file it was initialised from (extra.onnx), so its graph cannot be rebuilt; fine-tune it again with this version of advrun`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(src.file);
  } catch (e) {
    throw new UserError(`${path} was fine-tuned from ${src.file}, whose graph it needs, but that file cannot be read (${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}); put the ONNX model back at that path`);
  }
  const sha256 = sha256Hex(bytes);
  if (sha256 !== src.sha256) {
    throw new UserError(`${path} was fine-tuned from ${src.file} with SHA-256 ${src.sha256.slice(0, 12)}…, but that file now has SHA-256 ${sha256.slice(0, 12)}… (a different model); restore the original ONNX file`);
  }
  const im = await importOnnx(bytes, src.file);
  const { artifacts, state } = importedWithWeights(im, ck.state, o, path);
  return { kind: 'advrun', source: path, spec: ck.meta.model, artifacts, state, meta: ck.meta, imported: im, notes: [] };
}

export async function openModel(path: string, o: OpenOptions): Promise<OpenedModel> {
  const detected = detectModelKind(path);
  forgetModelFile(path);
  return { ...(await openDetected(path, detected, o)), sha256: sha256Hex(detected.bytes) };
}

async function openDetected(path: string, kind: DetectedModel, o: OpenOptions): Promise<Omit<OpenedModel, 'sha256'>> {
  const notes: string[] = [];
  if (kind.kind === 'advrun') {
    const ck = kind.checkpoint!;
    if (ck.meta.model.arch === IMPORTED_ARCH) return openImportedCheckpoint(path, ck, o);
    const { artifacts, state } = builtinWithWeights(ck.meta.model, ck.state, o.graphsDir, path);
    return { kind: 'advrun', source: path, spec: ck.meta.model, artifacts, state, meta: ck.meta, notes };
  }
  if (kind.kind === 'pytorch') {
    const foreign = decodeForeignState(kind.bytes, path);
    const explicitNorm = o.arch?.mean !== undefined && o.arch?.std !== undefined;
    // A checkpoint that records its normaliser (robustness library) gets it unless --mean/--std say otherwise.
    const own = !explicitNorm && foreign.normalizer ? { mean: foreign.normalizer.mean.join(','), std: foreign.normalizer.std.join(',') } : {};
    const spec = specFromArchOptions({ ...o.arch, ...own }, path, o.data);
    const mismatch = normalizerMismatch(foreign, spec, path);
    if (mismatch) throw new UserError(`${mismatch}, or leave them out to use the checkpoint's`);
    if (!explicitNorm) {
      const from = foreign.normalizer ? "the checkpoint's normalizer" : o.data ? "the dataset's" : 'the default';
      notes.push(`normalisation inside the model: mean [${spec.mean}], std [${spec.std}] (${from}; pass --mean/--std as the PyTorch model uses them, --mean 0 --std 1 for none)`);
    }
    notes.push(...foreign.notes);
    if (foreign.unwrapped.length) notes.push(`state_dict found under ${foreign.unwrapped.map((k) => `["${k}"]`).join('')}`);
    const { state: weights, stripped } = fitState(foreign.tensors, spec, path);
    if (stripped.length) notes.push(`prefix ${stripped.map((p) => `"${p}"`).join(' then ')} stripped from every key`);
    const { artifacts, state } = builtinWithWeights(spec, weights, o.graphsDir, path);
    return { kind: 'pytorch', source: path, spec, artifacts, state, notes };
  }
  const im = await importOnnx(kind.bytes, path);
  notes.push(...im.notes);
  const { artifacts, state } = importedWithWeights(im, importedState(im), o, path);
  return { kind: 'onnx', source: path, spec: im.spec, artifacts, state, imported: im, notes };
}
