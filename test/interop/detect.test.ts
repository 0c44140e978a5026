// detectModelKind reads a model file once per command: a second question about the same, unchanged file is
// answered from the first read, and a rewritten file is read again.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { detectModelKind } from '../../src/interop/load.js';
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
});
