// detectModelKind reads a model file once per command: a second question about the same, unchanged file is
// answered from the first read, and a rewritten file is read again.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { checkModelFile, detectModelKind, forgetModelFile } from '../../src/interop/load.js';
import { makeTensor } from '../../src/ir/tensor.js';

describe('detectModelKind', () => {
  test('classifies by content, answers repeated questions from one read, and sees a rewritten file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-detect-'));
    const ck = join(dir, 'model.safetensors');
    const meta = { model: { arch: 'small-cnn' } as never, epoch: 1, step: 2, extra: { dataset: 'fashion-mnist-mini' } };
    saveCheckpoint(ck, new Map([['w', makeTensor('float32', [2], [1, 2])]]), meta);
    const first = detectModelKind(ck);
    expect(first.kind).toBe('advrun');
    expect(first.checkpoint?.meta.extra?.dataset).toBe('fashion-mnist-mini');
    expect(detectModelKind(ck)).toBe(first); // same object: not read or decoded again
    forgetModelFile(ck); // once opened, the bytes are not kept
    expect(detectModelKind(ck)).not.toBe(first);
    await new Promise((r) => setTimeout(r, 20));
    saveCheckpoint(ck, new Map([['w', makeTensor('float32', [3], [1, 2, 3])]]), { ...meta, epoch: 2 });
    const second = detectModelKind(ck);
    expect(second).not.toBe(first);
    expect(second.checkpoint?.meta.epoch).toBe(2);
    const onnx = join(dir, 'm.onnx');
    writeFileSync(onnx, Buffer.from([0x08, 0x08]));
    expect(detectModelKind(onnx).kind).toBe('onnx');
    expect(() => detectModelKind(join(dir, 'missing.pt'))).toThrow(/cannot read .*missing\.pt: no such file/);
  });

  test('checkModelFile gives the same errors from the first bytes alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-check-'));
    const ck = join(dir, 'model.safetensors');
    saveCheckpoint(ck, new Map([['w', makeTensor('float32', [2], [1, 2])]]), { model: { arch: 'small-cnn' } as never, epoch: 1, step: 1 });
    expect(() => checkModelFile(ck)).not.toThrow();
    writeFileSync(join(dir, 'm.pt'), Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0]));
    expect(() => checkModelFile(join(dir, 'm.pt'))).not.toThrow();
    expect(() => checkModelFile(join(dir, 'missing.pt'))).toThrow(/cannot read .*missing\.pt: no such file/);
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a model at all');
    expect(() => checkModelFile(text)).toThrow(/notes\.txt is neither an advrun checkpoint, a PyTorch checkpoint/);
    // A safetensors header longer than the file: a .safetensors file cut short; under another name, no model.
    const header = Buffer.alloc(12);
    header.writeBigUInt64LE(1000n, 0);
    header[8] = 0x7b;
    writeFileSync(join(dir, 'cut.safetensors'), header);
    expect(() => checkModelFile(join(dir, 'cut.safetensors'))).toThrow(/cut\.safetensors is a truncated safetensors file \(its header alone needs 1008 bytes, the file has 12\)/);
    writeFileSync(join(dir, 'cut.bin'), header);
    expect(() => checkModelFile(join(dir, 'cut.bin'))).toThrow(/is neither/);
  });
});
