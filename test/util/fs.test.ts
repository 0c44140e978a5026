// writeFileAtomic backs every checkpoint, result and artifact: the target holds either its old or its new
// content, never a mix, and a failed write leaves no temp file behind.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { writeFileAtomic } from '../../src/util/fs.js';

describe('writeFileAtomic', () => {
  test('replaces the content and leaves only the target in the directory (parents created)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-fs-'));
    const path = join(dir, 'sub', 'result.json');
    writeFileAtomic(path, 'old');
    writeFileAtomic(path, [Buffer.from('new '), Buffer.from('parts')]);
    expect(readFileSync(path, 'utf8')).toBe('new parts');
    expect(readdirSync(join(dir, 'sub'))).toEqual(['result.json']);
  });

  test('a write that fails part-way keeps the old content whole and removes its temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-fs-'));
    const path = join(dir, 'checkpoint.safetensors');
    writeFileSync(path, 'the previous checkpoint');
    // The first part is written, then the second cannot be: a crash in the middle of a checkpoint write.
    const broken = [Buffer.alloc(1 << 16, 7), { byteLength: 3 } as unknown as Uint8Array];
    expect(() => writeFileAtomic(path, broken)).toThrow();
    expect(readFileSync(path, 'utf8')).toBe('the previous checkpoint');
    expect(readdirSync(dir)).toEqual(['checkpoint.safetensors']);
  });
});
