// PyTorch state_dicts (torch.save .pt/.pth files and .safetensors) mapped onto advrun's built-in
// architectures by parameter name.
//
// - The state_dict is found inside common checkpoint layouts: the object itself, or nested under
//   "state_dict", "model_state_dict", "model", "net", "state", "ema"... (first one holding tensors).
// - Wrapper prefixes are stripped while every key has one and the architecture's names do not:
//   "module." (DataParallel), "model." (Lightning-style wrappers), "_orig_mod." (torch.compile).
// - num_batches_tracked is ignored (advrun does not use it; export writes it back).
// - Floating tensors of any precision become float32.
// - A checkpoint that does not fit names the first missing, mis-shaped or unexpected tensor.

import { checkStateMatches } from '../checkpoint/checkpoint.js';
import { parseSafetensorsLayout } from '../checkpoint/safetensors.js';
import type { Tensor } from '../ir/tensor.js';
import { buildModel, type ModelSpec } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { readInputFile } from '../util/fs.js';
import { PyDict, TensorRef, type PyValue } from './pickle.js';
import { convertRaw, type RawTensor } from './raw-tensor.js';
import { decodeTorchFile } from './torch-file.js';
import type { StorageDType } from './pickle.js';

const NESTED_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'network', 'state', 'module', 'ema', 'model_ema', 'params', 'weights'];
const WRAPPER_PREFIXES = ['module.', 'model.', '_orig_mod.'];

export interface ForeignState {
  /** Tensors by (stripped) name, converted to float32/int64. */
  tensors: Map<string, Tensor>;
  format: 'pt' | 'safetensors';
  /** The safetensors header's __metadata__ (empty for .pt files). */
  metadata: Record<string, string>;
  /** What was unwrapped to reach the state_dict, e.g. ['state_dict'] or ['module.' prefix]. */
  unwrapped: string[];
  /** The input normalisation the checkpoint itself records (the robustness library's normalizer.* buffers). */
  normalizer?: { mean: number[]; std: number[] };
  /** What was left out of `tensors` and why, for the user (e.g. the robustness library's attacker.* copy). */
  notes: string[];
}

// ---------- safetensors with every dtype PyTorch writes ----------

const ST_DTYPES: Record<string, StorageDType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const ST_BYTES: Record<StorageDType, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1 };

export function decodeForeignSafetensors(buf: Uint8Array, source: string): { tensors: Map<string, RawTensor>; metadata: Record<string, string> } {
  const { entries, metadata, data, bad } = parseSafetensorsLayout(buf, source);
  const tensors = new Map<string, RawTensor>();
  for (const [name, info] of entries) {
    const dtype = ST_DTYPES[info?.dtype];
    if (!dtype) throw bad(`tensor "${name}" has unsupported dtype ${info?.dtype}`);
    const shape = info.shape as number[];
    const [begin, end] = info.data_offsets as [number, number];
    const need = shape.reduce((a, d) => a * d, 1) * ST_BYTES[dtype];
    if (!(begin >= 0 && end - begin === need && end <= data.byteLength)) throw bad(`tensor "${name}" data range [${begin}, ${end}) does not hold ${need} bytes inside the file`);
    tensors.set(name, { dtype, dims: [...shape], bytes: data.subarray(begin, end) });
  }
  return { tensors, metadata };
}

/** A safetensors file: u64 header length, then a JSON object that fits in the file (`fileSize`: when `buf` is only its start). */
export function looksLikeSafetensors(buf: Uint8Array, fileSize = buf.length): boolean {
  if (buf.length < 9 || fileSize < 10) return false;
  const n = Number(Buffer.from(buf.buffer, buf.byteOffset, 8).readBigUInt64LE(0));
  return n >= 2 && n <= fileSize - 8 && buf[8] === 0x7b;
}

// ---------- finding the state_dict in an unpickled checkpoint ----------

function tensorEntries(d: PyDict): [string, TensorRef][] {
  return [...d.map].filter((e): e is [string, TensorRef] => typeof e[0] === 'string' && e[1] instanceof TensorRef);
}

/** The dict of tensors inside a checkpoint object, and the keys followed to reach it. */
export function findStateDict(root: PyValue, source: string): { entries: [string, TensorRef][]; path: string[] } {
  const visit = (v: PyValue, path: string[], depth: number): { entries: [string, TensorRef][]; path: string[] } | undefined => {
    if (!(v instanceof PyDict) || depth > 4) return undefined;
    // The dict with the most tensors: {'net': state_dict, 'acc': tensor(93.1)} is the nested one.
    let best: { entries: [string, TensorRef][]; path: string[] } | undefined;
    const direct = tensorEntries(v);
    if (direct.length > 0) best = { entries: direct, path };
    for (const k of NESTED_KEYS) {
      const hit = v.map.has(k) ? visit(v.map.get(k)!, [...path, k], depth + 1) : undefined;
      if (hit && hit.entries.length > (best?.entries.length ?? 0)) best = hit;
    }
    return best;
  };
  const found = visit(root, [], 0);
  if (found) return found;
  const keys = root instanceof PyDict ? [...root.map.keys()].map(String).slice(0, 8).join(', ') : undefined;
  throw new UserError(`${source} holds no state_dict${keys !== undefined ? ` (top-level keys: ${keys || 'none'})` : ' (it is not a dict)'}; save model.state_dict() with torch.save`);
}

// ---------- reading ----------

export function readForeignState(path: string): ForeignState {
  return decodeForeignState(readInputFile(path), path);
}

export function decodeForeignState(buf: Uint8Array, source: string): ForeignState {
  const tensors = new Map<string, Tensor>();
  if (!looksLikeSafetensors(buf)) {
    const f = decodeTorchFile(buf, source);
    const { entries, path } = findStateDict(f.root, source);
    for (const [k, ref] of entries) tensors.set(k, convertRaw(f.raw(ref)));
    return { ...robustnessLibraryModel(tensors, source), format: 'pt', metadata: {}, unwrapped: path };
  }
  const st = decodeForeignSafetensors(buf, source);
  for (const [k, raw] of st.tensors) tensors.set(k, convertRaw(raw));
  return { ...robustnessLibraryModel(tensors, source), format: 'safetensors', metadata: st.metadata, unwrapped: [] };
}

/**
 * The MadryLab robustness library's checkpoints (Salman et al.'s robust ImageNet models, which TWINS
 * fine-tunes) hold the network twice, as `model.*` and `attacker.model.*`, beside the input normaliser's
 * `normalizer.new_mean/new_std` buffers ([C, 1, 1]; again under `attacker.`), usually under a DataParallel
 * `module.` prefix. Keep the `model.*` copy (wrapper prefixes are stripped later, as for any state_dict),
 * return the normaliser separately (advrun normalises inside its model from ModelSpec.mean/std; callers
 * check or adopt it: normalizerMismatch) and say what was left out. Other layouts are returned unchanged.
 */
function robustnessLibraryModel(tensors: Map<string, Tensor>, source: string): Pick<ForeignState, 'tensors' | 'normalizer' | 'notes'> {
  const bare = (k: string) => (k.startsWith('module.') ? k.slice('module.'.length) : k);
  const keys = [...tensors.keys()].map(bare);
  const isLayout = keys.some((k) => k.startsWith('model.')) && keys.some((k) => k.startsWith('attacker.'))
    && keys.every((k) => /^(model|attacker|normalizer)\./.test(k));
  if (!isLayout) return { tensors, notes: [] };
  const byBare = new Map([...tensors].map(([k, t]) => [bare(k), t]));
  const values = (name: string) => { const t = byBare.get(name); return t ? Array.from(t.data as Float32Array) : undefined; };
  const mean = values('normalizer.new_mean'), std = values('normalizer.new_std');
  if ((mean === undefined) !== (std === undefined) || (mean && std && mean.length !== std.length)) {
    throw new UserError(`${source}: its normalizer has ${mean ? `new_mean [${mean}]` : 'no new_mean'} and ${std ? `new_std [${std}]` : 'no new_std'}; a robustness-library checkpoint needs both, one value per input channel`);
  }
  const kept = new Map([...tensors].filter(([k]) => bare(k).startsWith('model.')));
  const left = tensors.size - kept.size;
  return {
    tensors: kept,
    normalizer: mean && std ? { mean, std } : undefined,
    notes: [`robustness-library checkpoint: using its model.* tensors; ${left} others (the attacker.* copy and the normalizer.* buffers) left out`],
  };
}

/**
 * Whether a checkpoint's own normaliser (ForeignState.normalizer) is the one the model will apply: undefined
 * if so (or the checkpoint records none), else a one-line problem naming both and the options that match.
 */
export function normalizerMismatch(foreign: Pick<ForeignState, 'normalizer'>, spec: Pick<ModelSpec, 'mean' | 'std'>, source: string): string | undefined {
  const n = foreign.normalizer;
  if (!n) return undefined;
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= 1e-6 * Math.max(1, Math.abs(v)));
  if (same(n.mean, spec.mean) && same(n.std, spec.std)) return undefined;
  return `${source} normalises its inputs with mean [${n.mean}], std [${n.std}] (its normalizer buffers), but this model would use mean [${spec.mean}], std [${spec.std}]; pass --mean ${n.mean.join(',')} --std ${n.std.join(',')}`;
}

// ---------- fitting onto an architecture ----------

export const isBatchCounter = (name: string) => name === 'num_batches_tracked' || name.endsWith('.num_batches_tracked');

/** The tensors an architecture expects (parameters and BN statistics) with their initial values. */
export function expectedState(spec: ModelSpec): { state: Map<string, Tensor>; params: string[]; buffers: string[] } {
  const m = buildModel(spec, { bnMode: 'eval', seed: 0 });
  const state = new Map<string, Tensor>();
  for (const [name, t] of m.graph.initializers) if (m.params.some((p) => p.name === name) || m.buffers.includes(name)) state.set(name, t);
  return { state, params: m.params.map((p) => p.name), buffers: m.buffers };
}

/**
 * Map a foreign state_dict onto `spec`'s parameter names: strip wrapper prefixes, drop
 * num_batches_tracked, and check that every expected tensor is present with its shape and that
 * nothing else is. Returns the state (advrun names) and the prefixes stripped.
 */
export function fitState(foreign: Map<string, Tensor>, spec: ModelSpec, source: string): { state: Map<string, Tensor>; stripped: string[] } {
  const { state: expected } = expectedState(spec);
  const { tensors, stripped } = withoutWrapperPrefixes(foreign, [...expected.keys()]);
  const state = new Map([...tensors].filter(([name]) => !isBatchCounter(name)));
  const arch = describeArch(spec);
  checkStateMatches(state, expected, source, arch);
  for (const [name, t] of state) {
    if (!expected.has(name)) throw new UserError(`${source} does not fit ${arch}: tensor "${name}" [${t.dims}] is unexpected (the architecture has no such parameter or buffer)${hintFor(name)}`);
    if (t.dtype !== 'float32') throw new UserError(`${source} does not fit ${arch}: tensor "${name}" is ${t.dtype}, expected a floating-point tensor`);
  }
  return { state: new Map([...expected.keys()].map((k) => [k, state.get(k)!])), stripped };
}

/**
 * The tensors with the wrapper prefixes every key shares removed (DataParallel's `module.`, `model.`,
 * torch.compile's `_orig_mod.`, possibly nested), unless the model's own names (`expectedNames`) start
 * with that prefix too. Returns the prefixes removed, outermost first.
 */
export function withoutWrapperPrefixes(foreign: Map<string, Tensor>, expectedNames: string[]): { tensors: Map<string, Tensor>; stripped: string[] } {
  let tensors = foreign;
  const stripped: string[] = [];
  for (;;) {
    const names = [...tensors.keys()];
    const prefix = WRAPPER_PREFIXES.find((p) => names.length > 0 && names.every((n) => n.startsWith(p)) && !expectedNames.every((n) => n.startsWith(p)));
    if (!prefix) return { tensors, stripped };
    stripped.push(prefix);
    tensors = new Map([...tensors].map(([k, t]) => [k.slice(prefix.length), t]));
  }
}

function hintFor(name: string): string {
  if (/(^|\.)(mean|std|mu|sigma)$/.test(name)) return '; normalisation constants are not weights: drop them from the state_dict and pass --mean/--std';
  return '';
}

export function describeArch(spec: ModelSpec): string {
  const parts = [spec.arch];
  if (spec.width !== undefined) parts.push(`width ${spec.width}`);
  if (spec.depth !== undefined) parts.push(`depth ${spec.depth}`);
  return `${parts.join(' ')} (${spec.inChannels}x${spec.imageSize}x${spec.imageSize}, ${spec.numClasses} classes)`;
}
