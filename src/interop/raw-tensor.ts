// Tensors as stored in foreign files (raw little-endian bytes of some element type) and their
// conversion to advrun's tensors: every floating type becomes float32 (advrun's models are float32),
// integers become int64.

import { halfToFloat, makeTensor, numel, type Tensor } from '../ir/tensor.js';
import type { StorageDType } from './pickle.js';

export interface RawTensor {
  dtype: StorageDType;
  dims: number[];
  bytes: Uint8Array;
}

export const isFloatDType = (d: StorageDType) => d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';


const bf16 = new Uint32Array(1);
const bf16f = new Float32Array(bf16.buffer);

export function convertRaw(r: RawTensor): Tensor {
  const n = numel(r.dims);
  const v = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
  if (isFloatDType(r.dtype)) {
    const out = new Float32Array(n);
    switch (r.dtype) {
      case 'float32': for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true); break;
      case 'float64': for (let i = 0; i < n; i++) out[i] = v.getFloat64(8 * i, true); break;
      case 'float16': for (let i = 0; i < n; i++) out[i] = halfToFloat(v.getUint16(2 * i, true)); break;
      case 'bfloat16':
        for (let i = 0; i < n; i++) { bf16[0] = v.getUint16(2 * i, true) << 16; out[i] = bf16f[0]!; }
        break;
    }
    return makeTensor('float32', r.dims, out);
  }
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    switch (r.dtype) {
      case 'int64': out[i] = v.getBigInt64(8 * i, true); break;
      case 'int32': out[i] = BigInt(v.getInt32(4 * i, true)); break;
      case 'int16': out[i] = BigInt(v.getInt16(2 * i, true)); break;
      case 'int8': out[i] = BigInt(v.getInt8(i)); break;
      default: out[i] = BigInt(v.getUint8(i)); break;
    }
  }
  return makeTensor('int64', r.dims, out);
}
