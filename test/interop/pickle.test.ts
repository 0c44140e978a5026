// The restricted unpickler, the zip reader/writer and torch.save's format, without ONNX Runtime.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { decodeForeignState, findStateDict, readForeignState } from '../../src/interop/state-dict.js';
import { PyDict, PyTuple, restrictedUnpickle, TensorRef } from '../../src/interop/pickle.js';
import { decodeTorchFile, encodeTorchStateDict } from '../../src/interop/torch-file.js';
import { writeZip, ZipReader } from '../../src/interop/zip.js';
import { floatToHalf, halfToFloat, makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { isUserFacing, UserError } from '../../src/util/errors.js';
import { fix, tempDir } from './helpers.js';

const concat = (chunks: Uint8Array[]) => Buffer.concat(chunks);
const latin1 = (s: string) => Buffer.from(s, 'latin1');
/** A torch.save-shaped archive around hand-made pickle bytes. */
const torchZip = (pkl: Uint8Array) => concat(writeZip([{ name: 'archive/data.pkl', data: pkl }, { name: 'archive/version', data: latin1('3\n') }]));

function expectRefused(fn: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err, 'should throw').toBeInstanceOf(UserError);
  expect(isUserFacing(err)).toBe(true);
  const msg = (err as Error).message;
  expect(msg).not.toContain('\n');
  expect(msg).toMatch(pattern);
}

describe('restricted unpickler', () => {
  const dir = tempDir();
  const marker = join(dir, 'pwned');
  const cmd = `touch ${marker}`;
  const lenPrefixed = (s: string) => { const b = latin1(s); const n = Buffer.alloc(4); n.writeUInt32LE(b.length); return concat([latin1('X'), n, b]); };

  test.each([
    ['posix', 'system'], ['os', 'system'], ['nt', 'system'], ['builtins', 'eval'], ['builtins', 'exec'], ['__builtin__', 'eval'],
    ['subprocess', 'Popen'], ['torch', 'load'], ['torch._utils', '_rebuild_qtensor'], ['argparse', 'Namespace'], ['numpy.core.multiarray', 'scalar'],
  ])('GLOBAL %s.%s is refused by name, nothing runs', (module, name) => {
    // PROTO 2; GLOBAL module name; BINUNICODE cmd; TUPLE1; REDUCE; STOP
    const pkl = concat([latin1('\x80\x02c'), latin1(`${module}\n${name}\n`), lenPrefixed(cmd), latin1('\x85R.')]);
    const full = `${module}.${name}`.replaceAll('.', '\\.');
    expectRefused(() => restrictedUnpickle(pkl, 'evil.pkl'), new RegExp(`refusing to load global "${full}"`));
    expectRefused(() => decodeForeignState(torchZip(pkl), 'evil.pt'), new RegExp(`evil\\.pt: refusing to load global "${full}".*never executes code`));
    expect(existsSync(marker)).toBe(false);
  });

  test('STACK_GLOBAL (protocol 4) is checked the same way', () => {
    const pkl = concat([latin1('\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93'), lenPrefixed(cmd), latin1('\x85R.')]);
    expectRefused(() => restrictedUnpickle(pkl, 'evil.pkl'), /refusing to load global "os\.system"/);
    expect(existsSync(marker)).toBe(false);
  });

  test('object-constructing opcodes are refused even without a global', () => {
    expectRefused(() => restrictedUnpickle(latin1(`(S'${cmd}'\nios\nsystem\n.`), 'inst.pkl'), /INST constructs arbitrary objects/);
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02ccollections\nOrderedDict\n)\x81.'), 'newobj.pkl'), /NEWOBJ/);
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02(o.'), 'obj.pkl'), /OBJ constructs/);
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02\x82\x01.'), 'ext.pkl'), /extension-registry/);
    // An allowed global used as a callable it is not (a storage class), and a BUILD on a list.
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02ctorch\nFloatStorage\n)R.'), 'call.pkl'), /REDUCE on something that is not an allowed global/);
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02]}b.'), 'build.pkl'), /BUILD on an object/);
    expectRefused(() => restrictedUnpickle(latin1('\x80\x02]'), 'trunc.pkl'), /truncated/);
    expect(existsSync(marker)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  test('plain data: ints of every width, floats, strings, containers, memo', () => {
    // {'a': [1, 300, 70000, -5, 2**40, 1.5, None, True], 'b': (u'x', b'yz')} built by hand (protocol 2)
    const pkl = concat([
      latin1('\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01M\x2c\x01J\x70\x11\x01\x00J\xfb\xff\xff\xff\x8a\x06\x00\x00\x00\x00\x00\x01'),
      latin1('G\x3f\xf8\x00\x00\x00\x00\x00\x00N\x88eX\x01\x00\x00\x00bX\x01\x00\x00\x00xC\x02yz\x86u.'),
    ]);
    const v = restrictedUnpickle(pkl, 'data.pkl') as PyDict;
    expect(v).toBeInstanceOf(PyDict);
    expect(v.map.get('a')).toEqual([1, 300, 70000, -5, 2 ** 40, 1.5, null, true]);
    const b = v.map.get('b') as PyTuple;
    expect(b.items[0]).toBe('x');
    expect(Buffer.from(b.items[1] as Uint8Array).toString()).toBe('yz');
  });
});

describe('torch.save files', () => {
  test('a real torch.save checkpoint: nesting, module. prefix, strided views, half/bfloat16/double/int64', () => {
    const f = readForeignState(fix('strided.pt'));
    expect(f.format).toBe('pt');
    expect(f.unwrapped).toEqual(['state_dict']);
    const t = (k: string) => toNumbers(f.tensors.get(`module.${k}`)!);
    expect(f.tensors.get('module.transposed')!.dims).toEqual([4, 3]);
    expect(t('transposed')).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    expect(f.tensors.get('module.sliced')!.dims).toEqual([2, 2]);
    expect(t('sliced')).toEqual([5, 7, 9, 11]);
    expect(t('half')).toEqual([1.5, -2, 65504]);
    expect(t('bf16')).toEqual([1, -3.5, 0.15625]);
    expect(t('double')).toEqual([Math.fround(0.1)]);
    expect(f.tensors.get('module.count')!.dtype).toBe('int64');
    expect(t('count')).toEqual([42]);
    // The full object is there too (epoch, lists, tuples), as plain data.
    const root = decodeTorchFile(readFileSync(fix('strided.pt')), 'strided.pt').root as PyDict;
    expect(root.map.get('epoch')).toBe(7);
    expect(root.map.get('arch')).toBe('toy');
    expect((root.map.get('state_dict') as PyDict).map.get('module.count')).toBeInstanceOf(TensorRef);
  });

  test('the state_dict is the dict with the most tensors: a scalar tensor beside a nested one does not hide it', () => {
    const ref = () => new TensorRef({} as never, 0, [], [], 'FloatStorage' as never);
    const dict = (entries: [string, unknown][]) => { const d = new PyDict(); for (const [k, v] of entries) d.map.set(k, v as never); return d; };
    const root = dict([['net', dict([['conv.weight', ref()], ['conv.bias', ref()], ['fc.weight', ref()]])], ['acc', ref()], ['epoch', 5]]);
    const found = findStateDict(root, 'ck.pt');
    expect(found.path).toEqual(['net']);
    expect(found.entries.map(([k]) => k)).toEqual(['conv.weight', 'conv.bias', 'fc.weight']);
    // A plain state_dict stays itself.
    expect(findStateDict(dict([['w', ref()]]), 'sd.pt').path).toEqual([]);
  });

  test('writer -> reader round trip; deflated entries; CRC and truncation are detected', () => {
    const state: [string, ReturnType<typeof makeTensor>][] = [
      ['conv.weight', makeTensor('float32', [2, 1, 2, 2], [1, -2, 3.5, 4, 5, 6, 7, 8])],
      ['bn.num_batches_tracked', makeTensor('int64', [], [12])],
      ['scalar', makeTensor('float32', [], [0.25])],
    ];
    const bytes = concat(encodeTorchStateDict(state));
    const back = decodeForeignState(bytes, 'rt.pt');
    expect([...back.tensors.keys()]).toEqual(['conv.weight', 'bn.num_batches_tracked', 'scalar']);
    expect(toNumbers(back.tensors.get('conv.weight')!)).toEqual([1, -2, 3.5, 4, 5, 6, 7, 8]);
    expect(back.tensors.get('bn.num_batches_tracked')!.dims).toEqual([]);
    // Every entry's data is 64-byte aligned, as torch's writer does.
    const zip = new ZipReader(bytes, 'rt.pt');
    const dataStart = (o: number) => o + 30 + bytes.readUInt16LE(o + 26) + bytes.readUInt16LE(o + 28);
    for (const e of zip.entries.values()) expect(dataStart(e.localOffset) % 64).toBe(0);
    const deflated = concat(writeZip([{ name: 'a/x', data: latin1('hello hello hello hello'), deflate: true }]));
    expect(Buffer.from(new ZipReader(deflated, 'd.zip').read('a/x')).toString()).toBe('hello hello hello hello');
    const corrupt = Buffer.from(bytes);
    corrupt[dataStart(zip.entries.get('archive/data/0')!.localOffset) + 1] ^= 0xff;
    expect(() => decodeForeignState(corrupt, 'corrupt.pt')).toThrow(/CRC-32/);
    expect(() => decodeForeignState(bytes.subarray(0, bytes.length - 30), 'short.pt')).toThrow(UserError);
  });

  test('legacy, TorchScript and non-checkpoint files get a clear error', () => {
    const dir = tempDir();
    const legacy = join(dir, 'legacy.pt');
    writeFileSync(legacy, Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(() => readForeignState(legacy)).toThrow(/legacy \(pre-1\.6\) serialization/);
    const ts = concat(writeZip([{ name: 'm/constants.pkl', data: latin1('\x80\x02).') }, { name: 'm/code/x.py', data: latin1('') }]));
    expect(() => decodeForeignState(ts, 'script.pt')).toThrow(/TorchScript archive/);
    // A checkpoint without tensors names its keys.
    const noTensors = torchZip(latin1('\x80\x02}q\x00(X\x05\x00\x00\x00epochK\x03u.'));
    expect(() => decodeForeignState(noTensors, 'empty.pt')).toThrow(/holds no state_dict \(top-level keys: epoch\)/);
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    // The two directions agree: every finite half survives float -> half -> float.
    for (let h = 0; h < 0x7c00; h += 97) expect(floatToHalf(halfToFloat(h))).toBe(h);
    rmSync(dir, { recursive: true, force: true });
  });
});
