// The safetensors format: u64 little-endian header length, a JSON header naming each tensor's dtype,
// shape and byte range, then the raw little-endian data. Read by PyTorch, JAX and the HF tools.

import { tensorBytes, tensorFromBytes, type DType, type Tensor } from '../ir/tensor.js';
import { UserError } from '../util/errors.js';
import { readInputFile, writeFileAtomic } from '../util/fs.js';

const TO_ST: Partial<Record<DType, string>> = { float32: 'F32', float64: 'F64', float16: 'F16', int64: 'I64', int32: 'I32', int8: 'I8', uint8: 'U8', bool: 'BOOL' };
const FROM_ST: Record<string, DType> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

export function encodeSafetensors(tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array[] {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Uint8Array[] = [];
  for (const [name, t] of entries) {
    const bytes = tensorBytes(t);
    header[name] = { dtype: TO_ST[t.dtype], shape: t.dims, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    chunks.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
  return [len, headerBytes, ...chunks];
}

export function writeSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** A safetensors buffer split into its tensor entries (header order), __metadata__ and data section. */
export interface SafetensorsLayout {
  entries: [string, any][];
  metadata: Record<string, string>;
  data: Buffer;
  /** The format error for this buffer ("<source> is not a valid safetensors file: <why>"). */
  bad(why: string): UserError;
}

/** Checks the header length and JSON header, shared by advrun's reader and the foreign-dtype one (src/interop/state-dict.ts). */
export function parseSafetensorsLayout(buf: Uint8Array, source: string): SafetensorsLayout {
  const bad = (why: string) => new UserError(`${source} is not a valid safetensors file: ${why}`);
  if (buf.byteLength < 8) throw bad('shorter than its 8-byte header length');
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(view.readBigUInt64LE(0));
  if (n > buf.byteLength - 8) throw bad(`header length ${n} exceeds the file size`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(view.subarray(8, 8 + n).toString('utf8'));
  } catch {
    throw bad('header is not JSON');
  }
  const entries = Object.entries(header).filter(([name]) => name !== '__metadata__');
  return { entries, metadata: header.__metadata__ ?? {}, data: view.subarray(8 + n), bad };
}

export function decodeSafetensors(buf: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const { entries, metadata, data, bad } = parseSafetensorsLayout(buf, source);
  const tensors = new Map<string, Tensor>();
  for (const [name, info] of entries) {
    const dtype = FROM_ST[info.dtype];
    if (!dtype) throw bad(`tensor "${name}" has unsupported dtype ${info.dtype}`);
    const [begin, end] = info.data_offsets as [number, number];
    if (!(begin >= 0 && end >= begin && end <= data.byteLength)) throw bad(`tensor "${name}" data range [${begin}, ${end}) is outside the file (truncated?)`);
    tensors.set(name, tensorFromBytes(dtype, info.shape, data.subarray(begin, end)));
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  return decodeSafetensors(readInputFile(path), path);
}
