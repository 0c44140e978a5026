// Atomic file writes: write a temp file in the same directory, fsync, then rename over the target,
// so a reader never sees a half-written checkpoint, result or artifact, even if the process dies.

import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { UserError } from './errors.js';

export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    const parts = Array.isArray(data) ? data : [typeof data === 'string' ? Buffer.from(data, 'utf8') : data];
    for (const part of parts) {
      let off = 0;
      while (off < part.byteLength) off += writeSync(fd, part, off, part.byteLength - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** The first `n` bytes of a file (fewer if it is shorter) and its size, with readInputFile's one-line errors. */
export function readInputHead(path: string, n: number): { head: Buffer; size: number } {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(n, size));
    readSync(fd, head, 0, head.length, 0);
    return { head, size };
  } catch (e) {
    throw cannotRead(path, e);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const cannotRead = (path: string, e: unknown) => new UserError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);

/** Reads a file the user named; a failure is a UserError ("cannot read <path>: no such file"). */
export function readInputFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw cannotRead(path, e);
  }
}

/**
 * Checks an output file the user named before any work is done: never one of the command's inputs, an
 * existing file only with `force` (--force), and its directory created now (a path under a file fails here,
 * not after the computation).
 */
export function checkOutputFile(out: string, inputs: string[], force: boolean): void {
  const target = resolve(out);
  const same = (a: string) => resolve(a) === target || (existsSync(a) && existsSync(target) && realpathSync(a) === realpathSync(target));
  const input = inputs.find(same);
  if (input !== undefined) throw new UserError(`--out ${out} is the input ${input}; writing it would destroy the input, choose another --out`);
  if (/[\\/]$/.test(out) || (existsSync(target) && statSync(target).isDirectory())) throw new UserError(`--out ${out} is a directory; name the file to write (e.g. ${join(out, 'model.onnx')})`);
  if (existsSync(target) && !force) throw new UserError(`${out} already exists; pass --force to replace it, or choose another --out`);
  mkdirSync(dirname(target), { recursive: true });
}
