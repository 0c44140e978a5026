// Host-side tensors: a dtype, static dims and a typed array in row-major order.
// This is the currency between the IR (initializers, constants), checkpoints and the runtime.

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

export type TensorData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11,
};

const CODE_TO_DTYPE = new Map<number, DType>(Object.entries(ONNX_DTYPE_CODE).map(([k, v]) => [v, k as DType]));

export function dtypeFromOnnxCode(code: number): DType {
  const dtype = CODE_TO_DTYPE.get(code);
  if (!dtype) throw new Error(`unsupported ONNX tensor data type ${code} (advrun handles float32/float64/float16/int64/int32/int8/uint8/bool)`);
  return dtype;
}

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1,
};

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function allocate(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'float16': return new Uint16Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'int32': return new Int32Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint8': case 'bool': return new Uint8Array(n);
  }
}

/**
 * A tensor of `dtype`. Plain numbers are values: float16 ones are rounded to half precision (a Uint16Array
 * is taken as the bit patterns themselves), int64 ones are clamped to the int64 range (ONNX's INT64_MAX
 * sentinel arrives as the double 2^63, which would wrap to INT64_MIN).
 */
export function makeTensor(dtype: DType, dims: number[], data?: TensorData | ArrayLike<number> | bigint[]): Tensor {
  const n = numel(dims);
  let out: TensorData;
  if (data === undefined) out = allocate(dtype, n);
  else if (ArrayBuffer.isView(data) && sameKind(dtype, data as TensorData)) out = data as TensorData;
  else {
    out = allocate(dtype, n);
    const src = data as ArrayLike<number | bigint>;
    if (out instanceof BigInt64Array) for (let i = 0; i < n; i++) out[i] = toInt64(src[i]!);
    else if (dtype === 'float16') for (let i = 0; i < n; i++) out[i] = floatToHalf(Number(src[i]));
    else for (let i = 0; i < n; i++) (out as Float32Array)[i] = Number(src[i]);
  }
  if (out.length !== n) throw new Error(`tensor data has ${out.length} elements but dims [${dims}] need ${n}`);
  return { dtype, dims: [...dims], data: out };
}

const INT64_MAX = 2n ** 63n - 1n, INT64_MIN = -(2n ** 63n);

function toInt64(v: number | bigint): bigint {
  if (typeof v === 'bigint') return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : v;
  if (v >= 2 ** 63) return INT64_MAX;
  if (v <= -(2 ** 63)) return INT64_MIN;
  return BigInt(Math.trunc(v));
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** IEEE half bit pattern -> number. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** IEEE single -> half bit pattern, rounding to nearest even (overflow to infinity, underflow to zero). */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = f32Bits[0]!;
  const sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  const round = (m: number, shift: number) => {
    const h = m >>> shift, rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    return rem > half || (rem === half && (h & 1)) ? h + 1 : h;
  };
  if (e <= 0) return e < -10 ? sign : sign | round(mant | 0x800000, 14 - e); // subnormal half
  return sign | round((e << 23) | mant, 13); // a carry out of the mantissa bumps the exponent, as it should
}

function sameKind(dtype: DType, data: TensorData): boolean {
  return allocate(dtype, 0).constructor === data.constructor;
}

export function scalarTensor(value: number, dtype: DType = 'float32'): Tensor {
  return makeTensor(dtype, [], [value]);
}

/** Numeric view of any tensor as plain numbers (int64 converted), for shape arithmetic and tests. */
export function toNumbers(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}

export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

export function tensorFromBytes(dtype: DType, dims: number[], bytes: Uint8Array): Tensor {
  const n = numel(dims);
  const need = n * BYTES_PER_ELEMENT[dtype];
  if (bytes.byteLength !== need) throw new Error(`tensor of ${dtype}[${dims}] needs ${need} bytes, got ${bytes.byteLength}`);
  // Copy into a fresh aligned buffer: typed arrays need element alignment.
  const copy = new Uint8Array(need);
  copy.set(bytes);
  const data = allocate(dtype, 0).constructor as unknown as new (b: ArrayBuffer) => TensorData;
  return { dtype, dims: [...dims], data: new data(copy.buffer) };
}
