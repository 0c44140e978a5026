// A restricted unpickler for what PyTorch state_dict checkpoints contain, and a protocol-2 pickler
// for writing them.
//
// Nothing is ever executed: the unpickler is a stack machine over plain data (None, bools, ints,
// floats, strings, bytes, lists, tuples, dicts, sets) plus a short allow-list of globals whose effect
// it emulates itself:
//   collections.OrderedDict                -> a dict
//   torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter (+ _v3 with a dtype)
//                                          -> a tensor reference (storage key, dtype, offset, size, stride)
//   torch.<Dtype>Storage, torch.<dtype>    -> dtype markers, used inside persistent ids and _v3 calls
//   _codecs.encode(str, 'latin1')          -> bytes (how protocol 2 pickles a bytes object)
// Any other global (os.system, builtins.eval, argparse.Namespace, numpy scalars...) is refused with a
// UserError naming it, before anything else happens, as are the opcodes that construct arbitrary
// objects (INST, OBJ, NEWOBJ, extension codes).

import { UserError } from '../util/errors.js';

/** Element types of PyTorch storages advrun reads. */
export type StorageDType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const STORAGE_TYPES: Record<string, StorageDType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
};
const TORCH_DTYPES: Record<string, StorageDType> = {
  float32: 'float32', float: 'float32', float64: 'float64', double: 'float64', float16: 'float16', half: 'float16', bfloat16: 'bfloat16',
  int64: 'int64', long: 'int64', int32: 'int32', int: 'int32', int16: 'int16', short: 'int16', int8: 'int8', uint8: 'uint8', bool: 'bool',
};
export const STORAGE_ELEMENT_BYTES: Record<StorageDType, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export class PyTuple { constructor(readonly items: PyValue[]) {} }
export class PyDict {
  readonly map = new Map<unknown, PyValue>();
  /** State set by BUILD (an OrderedDict's _metadata); kept, never interpreted. */
  attrs?: PyValue;
}
export class PySet { constructor(readonly items: PyValue[]) {} }
export class PyGlobal { constructor(readonly module: string, readonly name: string) {} }
/** A storage as named by torch.save's persistent id ('storage', type, key, location, numel). */
export class StorageRef { constructor(readonly dtype: StorageDType, readonly key: string, readonly location: string, readonly numel: number) {} }
/** A tensor view of a storage, not yet materialised. */
export class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[], readonly dtype: StorageDType) {}
}
class DTypeMarker { constructor(readonly dtype: StorageDType) {} }

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyValue[] | PyTuple | PyDict | PySet | PyGlobal | StorageRef | TensorRef | DTypeMarker;

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_tensor_v3', 'torch._utils._rebuild_parameter',
  '_codecs.encode',
]);

function allowedGlobal(module: string, name: string): boolean {
  if (ALLOWED.has(`${module}.${name}`)) return true;
  if (module === 'torch' && (name in STORAGE_TYPES || name in TORCH_DTYPES)) return true;
  return false;
}

function toInt(v: PyValue, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)) return Number(v);
  throw new Error(`${what} is not an integer`);
}

function intList(v: PyValue, what: string): number[] {
  const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : undefined;
  if (!items) throw new Error(`${what} is not a tuple`);
  return items.map((x, i) => toInt(x, `${what}[${i}]`));
}

export interface UnpickleOptions {
  /** Resolves a persistent id (torch.save: a tuple ('storage', StorageType, key, location, numel)). */
  persistentLoad?: (pid: PyValue) => PyValue;
}

/** torch.save's persistent ids: ('storage', <dtype marker>, key, location, numel) -> StorageRef. */
export function torchPersistentLoad(pid: PyValue): PyValue {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') throw new Error('unknown persistent id (expected a torch storage)');
  const [, type, key, location, numel] = pid.items;
  if (!(type instanceof DTypeMarker)) throw new Error('storage type is not a torch storage class');
  if (typeof key !== 'string' || typeof location !== 'string') throw new Error('storage key/location are not strings');
  return new StorageRef(type.dtype, key, location, toInt(numel!, 'storage numel'));
}

function callGlobal(fn: PyGlobal, args: PyValue): PyValue {
  const full = `${fn.module}.${fn.name}`;
  const a = args instanceof PyTuple ? args.items : undefined;
  if (!a) throw new Error(`${full} called without an argument tuple`);
  switch (full) {
    case 'collections.OrderedDict': {
      const d = new PyDict();
      if (a.length > 0) {
        const src = a[0];
        const pairs = Array.isArray(src) ? src : src instanceof PyTuple ? src.items : undefined;
        if (!pairs) throw new Error('OrderedDict() with a non-list argument');
        for (const p of pairs) {
          const kv = p instanceof PyTuple ? p.items : Array.isArray(p) ? p : undefined;
          if (!kv || kv.length !== 2) throw new Error('OrderedDict() items are not pairs');
          d.map.set(dictKey(kv[0]!), kv[1]!);
        }
      }
      return d;
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor_v3': {
      const [storage, offset, size, stride] = a;
      if (!(storage instanceof StorageRef)) throw new Error(`${fn.name}: the first argument is not a storage`);
      let dtype = storage.dtype;
      if (full.endsWith('_v3')) {
        const d = a[6];
        if (!(d instanceof DTypeMarker)) throw new Error('_rebuild_tensor_v3: dtype is not a torch dtype');
        dtype = d.dtype;
      }
      const sz = intList(size!, 'tensor size'), st = intList(stride!, 'tensor stride');
      if (sz.length !== st.length) throw new Error('tensor size and stride differ in length');
      return new TensorRef(storage, toInt(offset!, 'storage offset'), sz, st, dtype);
    }
    case 'torch._utils._rebuild_parameter': {
      if (!(a[0] instanceof TensorRef)) throw new Error('_rebuild_parameter of a non-tensor');
      return a[0];
    }
    case '_codecs.encode': {
      const [s, enc] = a;
      if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) throw new Error('_codecs.encode is only accepted as (str, "latin1")');
      return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
    }
    default: {
      // Storage classes and dtypes are markers, not callables.
      throw new Error(`${full} is not callable`);
    }
  }
}

function dictKey(k: PyValue): unknown {
  if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'boolean') return k;
  if (typeof k === 'bigint') return Number(k);
  if (k instanceof PyTuple) return JSON.stringify(k.items.map((x) => (typeof x === 'bigint' ? Number(x) : x)));
  throw new Error('unhashable dict key');
}

/**
 * Unpickle `data` with the restrictions above. `source` names the file in errors. Errors are
 * UserErrors of one line.
 */
export function restrictedUnpickle(data: Uint8Array, source: string, opts: UnpickleOptions = {}): PyValue {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let p = 0;
  const fail = (why: string) => new UserError(`${source}: cannot unpickle (${why})`);
  const need = (n: number) => { if (p + n > data.length) throw fail('truncated pickle data'); };
  const byte = () => { need(1); return data[p++]!; };
  const u16 = () => { need(2); const v = view.getUint16(p, true); p += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(p, true); p += 4; return v; };
  const i32 = () => { need(4); const v = view.getInt32(p, true); p += 4; return v; };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(data.length)) throw fail('length field larger than the data');
    return Number(v);
  };
  const bytes = (n: number) => { need(n); const b = data.subarray(p, p + n); p += n; return b; };
  const line = () => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) throw fail('unterminated text field');
    const s = Buffer.from(data.subarray(p, e)).toString('latin1');
    p = e + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => Buffer.from(b).toString('utf8');
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw fail('stack underflow');
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw fail('stack underflow');
    return v;
  };
  const popMark = (): PyValue[] => {
    const items: PyValue[] = [];
    for (;;) {
      const v = stack.pop();
      if (v === undefined) throw fail('MARK not found');
      if (v === MARK) return items.reverse();
      items.push(v);
    }
  };
  const global = (module: string, name: string): PyGlobal | DTypeMarker => {
    if (!allowedGlobal(module, name)) {
      throw new UserError(`${source}: refusing to load global "${module}.${name}": advrun's restricted unpickler only accepts what state_dicts contain (OrderedDict, tensors and their storages), and never executes code; re-save the weights with torch.save(model.state_dict(), path)`);
    }
    if (module === 'torch' && name in STORAGE_TYPES) return new DTypeMarker(STORAGE_TYPES[name]!);
    if (module === 'torch' && name in TORCH_DTYPES) return new DTypeMarker(TORCH_DTYPES[name]!);
    return new PyGlobal(module, name);
  };
  const setItems = (target: PyValue, kv: PyValue[]) => {
    if (!(target instanceof PyDict)) throw fail('SETITEM(S) on a non-dict');
    if (kv.length % 2) throw fail('odd number of SETITEMS values');
    try {
      for (let i = 0; i < kv.length; i += 2) target.map.set(dictKey(kv[i]!), kv[i + 1]!);
    } catch (e) {
      throw fail((e as Error).message);
    }
  };
  const appendItems = (target: PyValue, items: PyValue[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PySet) target.items.push(...items);
    else throw fail('APPEND(S)/ADDITEMS on a non-list');
  };
  const call = (fn: PyValue, args: PyValue) => {
    if (!(fn instanceof PyGlobal)) throw fail('REDUCE on something that is not an allowed global');
    try {
      return callGlobal(fn, args);
    } catch (e) {
      throw fail((e as Error).message);
    }
  };

  for (;;) {
    const op = byte();
    switch (op) {
      case 0x80: byte(); break;                                   // PROTO
      case 0x95: u64(); break;                                    // FRAME (protocol 4): length, ignored
      case 0x2e: {                                                // STOP
        const v = pop();
        return v;
      }
      case 0x28: stack.push(MARK); break;                         // MARK
      case 0x30: pop(); break;                                    // POP
      case 0x31: popMark(); break;                                // POP_MARK
      case 0x32: stack.push(top()); break;                        // DUP
      case 0x4e: stack.push(null); break;                         // NONE
      case 0x88: stack.push(true); break;                         // NEWTRUE
      case 0x89: stack.push(false); break;                        // NEWFALSE
      case 0x4a: stack.push(i32()); break;                        // BININT
      case 0x4b: stack.push(byte()); break;                       // BININT1
      case 0x4d: stack.push(u16()); break;                        // BININT2
      case 0x8a: case 0x8b: {                                     // LONG1 / LONG4
        const n = op === 0x8a ? byte() : u32();
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x49: {                                                // INT (text)
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: stack.push(Number.parseInt(line().replace(/L$/, ''), 10)); break; // LONG (text)
      case 0x47: { need(8); stack.push(view.getFloat64(p, false)); p += 8; break; } // BINFLOAT (big-endian)
      case 0x46: stack.push(Number.parseFloat(line())); break;    // FLOAT (text)
      case 0x58: stack.push(utf8(bytes(u32()))); break;           // BINUNICODE
      case 0x8c: stack.push(utf8(bytes(byte()))); break;          // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(bytes(u64()))); break;           // BINUNICODE8
      case 0x56: stack.push(line()); break;                       // UNICODE (raw-unicode-escape; ASCII in practice)
      case 0x54: stack.push(Buffer.from(bytes(u32())).toString('latin1')); break; // BINSTRING
      case 0x55: stack.push(Buffer.from(bytes(byte())).toString('latin1')); break; // SHORT_BINSTRING
      case 0x53: stack.push(line().replace(/^(['"])(.*)\1$/, '$2')); break; // STRING (quoted)
      case 0x42: stack.push(bytes(u32()).slice()); break;         // BINBYTES
      case 0x43: stack.push(bytes(byte()).slice()); break;        // SHORT_BINBYTES
      case 0x8e: case 0x96: stack.push(bytes(u64()).slice()); break; // BINBYTES8 / BYTEARRAY8
      case 0x29: stack.push(new PyTuple([])); break;              // EMPTY_TUPLE
      case 0x74: stack.push(new PyTuple(popMark())); break;       // TUPLE
      case 0x85: stack.push(new PyTuple([pop()])); break;         // TUPLE1
      case 0x86: { const b = pop(), a = pop(); stack.push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); stack.push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x5d: stack.push([]); break;                           // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break;                    // LIST
      case 0x61: { const v = pop(); appendItems(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new PyDict()); break;                 // EMPTY_DICT
      case 0x64: { const d = new PyDict(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x8f: stack.push(new PySet([])); break;                // EMPTY_SET
      case 0x90: { const items = popMark(); appendItems(top(), items); break; } // ADDITEMS
      case 0x91: stack.push(new PySet(popMark())); break;         // FROZENSET
      case 0x71: memo.set(byte(), top()); break;                  // BINPUT
      case 0x72: memo.set(u32(), top()); break;                   // LONG_BINPUT
      case 0x70: memo.set(Number.parseInt(line(), 10), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break;               // MEMOIZE
      case 0x68: case 0x6a: case 0x67: {                          // BINGET / LONG_BINGET / GET
        const k = op === 0x68 ? byte() : op === 0x6a ? u32() : Number.parseInt(line(), 10);
        if (!memo.has(k)) throw fail(`memo key ${k} is undefined`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x63: {                                                // GLOBAL "module\nname\n"
        const module = line(), name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {                                                // STACK_GLOBAL
        const name = pop(), module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL needs two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x52: { const args = pop(), fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x62: {                                                // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyDict) obj.attrs = state;              // OrderedDict._metadata
        else if (!(obj instanceof TensorRef)) throw fail('BUILD on an object that is not a dict or tensor');
        break;
      }
      case 0x51: {                                                // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) throw fail('persistent id without a loader');
        try {
          stack.push(opts.persistentLoad(pid));
        } catch (e) {
          throw e instanceof UserError ? e : fail((e as Error).message);
        }
        break;
      }
      case 0x50: throw fail('text persistent ids (PERSID) are not used by torch.save');
      case 0x69: throw fail('opcode INST constructs arbitrary objects and is refused');
      case 0x6f: throw fail('opcode OBJ constructs arbitrary objects and is refused');
      case 0x81: case 0x92: throw fail('opcode NEWOBJ constructs arbitrary objects and is refused');
      case 0x82: case 0x83: case 0x84: throw fail('extension-registry opcodes are refused');
      default:
        throw fail(`unknown or unsupported opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writing: protocol 2, exactly the subset torch.save uses for a state_dict.

const STORAGE_NAME: Partial<Record<StorageDType, string>> = Object.fromEntries(Object.entries(STORAGE_TYPES).map(([k, v]) => [v, k]));

export interface PickledTensor {
  /** Storage key: the zip entry data/<key> holds its bytes. */
  key: string;
  dtype: StorageDType;
  dims: number[];
}

/** A pickle (protocol 2) of OrderedDict{name: _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())}. */
export function pickleStateDict(entries: [string, PickledTensor][]): Uint8Array {
  const out: number[] = [];
  const u8 = (...b: number[]) => out.push(...b);
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    u8(0x58, b.length & 0xff, (b.length >>> 8) & 0xff, (b.length >>> 16) & 0xff, (b.length >>> 24) & 0xff, ...b); // BINUNICODE
  };
  const glob = (module: string, name: string) => u8(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
  const int = (v: number) => {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new Error(`cannot pickle ${v}`);
    if (v < 0x100) u8(0x4b, v);                                                  // BININT1
    else if (v < 0x10000) u8(0x4d, v & 0xff, v >>> 8);                           // BININT2
    else u8(0x4a, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);    // BININT
  };
  const tuple = (items: number[]) => {
    if (items.length === 0) return u8(0x29);
    if (items.length <= 3) { items.forEach(int); return u8(0x84 + items.length); } // TUPLE1..3
    u8(0x28); items.forEach(int); u8(0x74);
  };
  const emptyOrderedDict = () => { glob('collections', 'OrderedDict'); u8(0x29, 0x52); };
  u8(0x80, 2);                                          // PROTO 2
  emptyOrderedDict();
  if (entries.length) u8(0x28);                         // MARK
  for (const [name, t] of entries) {
    const storage = STORAGE_NAME[t.dtype];
    if (!storage) throw new Error(`no torch storage type for ${t.dtype}`);
    const numel = t.dims.reduce((a, d) => a * d, 1);
    const stride = t.dims.map((_, i) => t.dims.slice(i + 1).reduce((a, d) => a * d, 1));
    str(name);
    glob('torch._utils', '_rebuild_tensor_v2');
    u8(0x28);                                           // MARK: argument tuple
    u8(0x28); str('storage'); glob('torch', storage); str(t.key); str('cpu'); int(numel); u8(0x74); // persistent id tuple
    u8(0x51);                                           // BINPERSID
    int(0);                                             // storage offset
    tuple(t.dims);
    tuple(stride);
    u8(0x89);                                           // requires_grad False
    emptyOrderedDict();                                 // backward hooks
    u8(0x74, 0x52);                                     // TUPLE, REDUCE
  }
  if (entries.length) u8(0x75);                         // SETITEMS
  u8(0x2e);                                             // STOP
  return Uint8Array.from(out);
}
