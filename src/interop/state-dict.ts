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

/** A safetensors file: u64 header length, then a JSON object that fits in the file. */
export function looksLikeSafetensors(buf: Uint8Array): boolean {
  if (buf.length < 10) return false;
  const n = Number(Buffer.from(buf.buffer, buf.byteOffset, 8).readBigUInt64LE(0));
  return n >= 2 && n <= buf.length - 8 && buf[8] === 0x7b;
}

// ---------- finding the state_dict in an unpickled checkpoint ----------

function tensorEntries(d: PyDict): [string, TensorRef][] {
  return [...d.map].filter((e): e is [string, TensorRef] => typeof e[0] === 'string' && e[1] instanceof TensorRef);
}

/** The dict of tensors inside a checkpoint object, and the keys followed to reach it. */
export function findStateDict(root: PyValue, source: string): { entries: [string, TensorRef][]; path: string[] } {
  const visit = (v: PyValue, path: string[], depth: number): { entries: [string, TensorRef][]; path: string[] } | undefined => {
    if (!(v instanceof PyDict) || depth > 4) return undefined;
    const direct = tensorEntries(v);
    if (direct.length > 0) return { entries: direct, path };
    for (const k of NESTED_KEYS) {
      const hit = v.map.has(k) ? visit(v.map.get(k)!, [...path, k], depth + 1) : undefined;
      if (hit) return hit;
    }
    return undefined;
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
    return { tensors: robustnessLibraryModel(tensors), format: 'pt', metadata: {}, unwrapped: path };
  }
  const st = decodeForeignSafetensors(buf, source);
  for (const [k, raw] of st.tensors) tensors.set(k, convertRaw(raw));
  return { tensors: robustnessLibraryModel(tensors), format: 'safetensors', metadata: st.metadata, unwrapped: [] };
}

/**
 * The MadryLab robustness library's checkpoints (Salman et al.'s robust ImageNet models, which TWINS
 * fine-tunes) hold the network twice, as `model.*` and `attacker.model.*`, beside `normalizer.*` and
 * `attacker.normalizer.*` constants, usually under a DataParallel `module.` prefix. Keep the `model.*`
 * copy (normalisation lives in advrun's model; wrapper prefixes are stripped later, as for any
 * state_dict); other layouts are returned unchanged.
 */
function robustnessLibraryModel(tensors: Map<string, Tensor>): Map<string, Tensor> {
  const bare = (k: string) => (k.startsWith('module.') ? k.slice('module.'.length) : k);
  const keys = [...tensors.keys()].map(bare);
  const isLayout = keys.some((k) => k.startsWith('model.')) && keys.some((k) => k.startsWith('attacker.'))
    && keys.every((k) => /^(model|attacker|normalizer)\./.test(k));
  return isLayout ? new Map([...tensors].filter(([k]) => bare(k).startsWith('model.'))) : tensors;
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
  let names = [...foreign.keys()];
  const stripped: string[] = [];
  const expectedNames = [...expected.keys()];
  for (;;) {
    const prefix = WRAPPER_PREFIXES.find((p) => names.length > 0 && names.every((n) => n.startsWith(p)) && !expectedNames.every((n) => n.startsWith(p)));
    if (!prefix) break;
    stripped.push(prefix);
    names = names.map((n) => n.slice(prefix.length));
  }
  const strip = (n: string) => { for (const p of stripped) n = n.slice(p.length); return n; };
  const state = new Map<string, Tensor>();
  for (const [k, t] of foreign) {
    const name = strip(k);
    if (isBatchCounter(name)) continue;
    state.set(name, t);
  }
  const arch = describeArch(spec);
  checkStateMatches(state, expected, source, arch);
  for (const [name, t] of state) {
    if (!expected.has(name)) throw new UserError(`${source} does not fit ${arch}: tensor "${name}" [${t.dims}] is unexpected (the architecture has no such parameter or buffer)${hintFor(name)}`);
    if (t.dtype !== 'float32') throw new UserError(`${source} does not fit ${arch}: tensor "${name}" is ${t.dtype}, expected a floating-point tensor`);
  }
  return { state: new Map([...expected.keys()].map((k) => [k, state.get(k)!])), stripped };
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
