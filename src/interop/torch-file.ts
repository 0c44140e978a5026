// PyTorch's torch.save zip format, read and written without PyTorch.
//
// Layout (torch/serialization.py `_save`): a ZIP archive whose entries share one top-level folder
// (torch names it after the file; any name is accepted): `<dir>/data.pkl` is the pickled object with
// every storage replaced by a persistent id ('storage', torch.<T>Storage, key, location, numel),
// `<dir>/data/<key>` holds each storage's raw little-endian bytes, `<dir>/version` the format
// version ("3"), and newer writers add `<dir>/byteorder` ("little"). Tensors are views into storages:
// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks).

import { makeTensor, tensorBytes, type Tensor } from '../ir/tensor.js';
import { UserError } from '../util/errors.js';
import { pickleStateDict, restrictedUnpickle, STORAGE_ELEMENT_BYTES, TensorRef, torchPersistentLoad, type PickledTensor, type PyValue, type StorageDType } from './pickle.js';
import { isZip, writeZip, ZipReader } from './zip.js';
import type { RawTensor } from './raw-tensor.js';
import { readInputFile, writeFileAtomic } from '../util/fs.js';

const LEGACY_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

export interface TorchFile {
  /** The unpickled object; tensors appear as TensorRef. */
  root: PyValue;
  /** Materialises a tensor (contiguous, little-endian raw bytes in its own dtype). */
  raw(t: TensorRef): RawTensor;
}

export function readTorchFile(path: string): TorchFile {
  return decodeTorchFile(readInputFile(path), path);
}

export function decodeTorchFile(buf: Uint8Array, source: string): TorchFile {
  if (!isZip(buf)) {
    if (LEGACY_MAGIC.every((b, i) => buf[i] === b)) {
      throw new UserError(`${source} uses PyTorch's legacy (pre-1.6) serialization; load it in PyTorch and re-save it with torch.save(state_dict, path) (the default zip format)`);
    }
    throw new UserError(`${source} is not a PyTorch checkpoint (torch.save writes a ZIP archive; this file does not start with one)`);
  }
  const zip = new ZipReader(buf, source);
  const pkl = zip.names().filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    if (zip.names().some((n) => /^[^/]+\/constants\.pkl$/.test(n))) {
      throw new UserError(`${source} is a TorchScript archive (torch.jit.save), not a state_dict; save model.state_dict() with torch.save, or export to ONNX`);
    }
    throw new UserError(`${source} is a ZIP archive but not a torch.save checkpoint (no <dir>/data.pkl entry)`);
  }
  const dir = pkl[0]!.slice(0, -'data.pkl'.length);
  const byteorder = zip.has(`${dir}byteorder`) ? Buffer.from(zip.read(`${dir}byteorder`)).toString('latin1').trim() : 'little';
  if (byteorder !== 'little') throw new UserError(`${source} was saved on a ${byteorder}-endian machine; advrun reads little-endian checkpoints only`);
  const root = restrictedUnpickle(zip.read(pkl[0]!), source, { persistentLoad: torchPersistentLoad });
  const storages = new Map<string, Uint8Array>();
  const storage = (key: string) => {
    let s = storages.get(key);
    if (!s) {
      const name = `${dir}data/${key}`;
      if (!zip.has(name)) throw new UserError(`${source}: storage "${key}" is missing from the archive (entry ${name})`);
      s = zip.read(name);
      storages.set(key, s);
    }
    return s;
  };
  return {
    root,
    raw: (t) => {
      const bytes = storage(t.storage.key);
      const el = STORAGE_ELEMENT_BYTES[t.dtype];
      if (bytes.length < t.storage.numel * STORAGE_ELEMENT_BYTES[t.storage.dtype]) {
        throw new UserError(`${source}: storage "${t.storage.key}" has ${bytes.length} bytes, fewer than its ${t.storage.numel} elements need`);
      }
      return { dtype: t.dtype, dims: t.size, bytes: gatherStrided(bytes, el, t.offset, t.size, t.stride, `${source}: tensor of storage "${t.storage.key}"`) };
    },
  };
}

/** Copies a strided view (element offset, size, stride) of `bytes` into a contiguous buffer. */
export function gatherStrided(bytes: Uint8Array, el: number, offset: number, size: number[], stride: number[], what: string): Uint8Array {
  const n = size.reduce((a, d) => a * d, 1);
  const out = new Uint8Array(n * el);
  if (n === 0) return out;
  let maxIndex = offset, minIndex = offset;
  size.forEach((d, i) => { const span = (d - 1) * stride[i]!; if (span > 0) maxIndex += span; else minIndex += span; });
  if (minIndex < 0 || (maxIndex + 1) * el > bytes.length) throw new UserError(`${what} reaches outside its storage`);
  const contiguous = size.every((d, i) => d === 1 || stride[i] === size.slice(i + 1).reduce((a, x) => a * x, 1));
  if (contiguous) {
    out.set(bytes.subarray(offset * el, (offset + n) * el));
    return out;
  }
  const idx = new Array<number>(size.length).fill(0);
  for (let k = 0; k < n; k++) {
    let src = offset;
    for (let i = 0; i < size.length; i++) src += idx[i]! * stride[i]!;
    out.set(bytes.subarray(src * el, src * el + el), k * el);
    for (let i = size.length - 1; i >= 0; i--) {
      if (++idx[i]! < size[i]!) break;
      idx[i] = 0;
    }
  }
  return out;
}

/** torch.save-compatible bytes of an OrderedDict state_dict (float32 / int64 tensors). */
export function encodeTorchStateDict(state: [string, Tensor][], archive = 'archive'): Uint8Array[] {
  const entries: [string, PickledTensor][] = [];
  const files: { name: string; data: Uint8Array }[] = [];
  const data: { name: string; data: Uint8Array }[] = [];
  state.forEach(([name, t], i) => {
    const dtype: StorageDType | undefined = t.dtype === 'float32' ? 'float32' : t.dtype === 'int64' ? 'int64' : t.dtype === 'float64' ? 'float64' : t.dtype === 'int32' ? 'int32' : undefined;
    if (!dtype) throw new UserError(`cannot write tensor "${name}" of dtype ${t.dtype} to a PyTorch checkpoint`);
    const key = String(i);
    entries.push([name, { key, dtype, dims: t.dims }]);
    data.push({ name: `${archive}/data/${key}`, data: tensorBytes(t) });
  });
  files.push({ name: `${archive}/data.pkl`, data: pickleStateDict(entries) });
  files.push({ name: `${archive}/byteorder`, data: Buffer.from('little', 'latin1') });
  files.push(...data);
  files.push({ name: `${archive}/version`, data: Buffer.from('3\n', 'latin1') });
  return writeZip(files);
}

export function writeTorchStateDict(path: string, state: [string, Tensor][]): void {
  writeFileAtomic(path, encodeTorchStateDict(state));
}

/** A scalar int64 tensor (PyTorch's num_batches_tracked is 0-dimensional). */
export function int64Scalar(v: number): Tensor {
  return makeTensor('int64', [], [v]);
}
