// IDX files (the MNIST container format): big-endian header, magic 0x0000<type><ndims>, one uint32
// per dimension, then the raw data. We only need unsigned bytes (type 0x08). Files may be gzipped;
// we detect that from the content, not the name, so a renamed file still loads.

import { promises as fsp } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../util/errors.js';
import { displayPath } from './paths.js';

export interface IdxArray {
  dims: number[];
  /** The payload only (header stripped). */
  data: Uint8Array;
}

const UBYTE = 0x08;

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Gunzip if gzipped; corrupt or truncated gzip becomes a UserError naming the file and the fix. */
export function maybeGunzip(buf: Uint8Array, file: string, fix: string): Uint8Array {
  if (!isGzip(buf)) return buf;
  try {
    return gunzipSync(buf);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new UserError(`${displayPath(file)}: corrupt gzip data (${why}); ${fix}`);
  }
}

/**
 * Parse and strictly validate an unsigned-byte IDX buffer.
 * `ndims` is the expected number of dimensions (3 for images, 1 for labels).
 */
export function parseIdx(buf: Uint8Array, ndims: number, file: string, fix: string): IdxArray {
  const where = displayPath(file);
  if (buf.length < 4 + 4 * ndims) {
    throw new UserError(`${where}: truncated IDX file (only ${buf.length} bytes, shorter than its header); ${fix}`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  const expected = (UBYTE << 8) | ndims;
  if (magic !== expected) {
    const kind = ndims === 1 ? 'label' : 'image';
    throw new UserError(
      `${where}: not an IDX ${kind} file (magic 0x${hex8(magic)}, expected 0x${hex8(expected)}); ${fix}`,
    );
  }
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < ndims; i++) {
    const d = view.getUint32(4 + 4 * i);
    dims.push(d);
    size *= d;
  }
  const headerLen = 4 + 4 * ndims;
  const total = headerLen + size;
  if (buf.length < total) {
    throw new UserError(`${where}: truncated IDX file (expected ${total} bytes, got ${buf.length}); ${fix}`);
  }
  if (buf.length > total) {
    throw new UserError(`${where}: IDX file too long (expected ${total} bytes, got ${buf.length}); ${fix}`);
  }
  return { dims, data: buf.subarray(headerLen) };
}

export async function readIdxFile(file: string, ndims: number, fix: string): Promise<IdxArray> {
  let raw: Uint8Array;
  try {
    raw = await fsp.readFile(file);
  } catch (e) {
    throw new UserError(`${displayPath(file)}: cannot read (${(e as NodeJS.ErrnoException).code ?? e}); ${fix}`);
  }
  return parseIdx(maybeGunzip(raw, file, fix), ndims, file, fix);
}

/** Encode an unsigned-byte IDX buffer (used by make-subset and tests). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const size = dims.reduce((a, b) => a * b, 1);
  if (size !== data.length) throw new Error(`encodeIdx: dims ${dims} need ${size} bytes, got ${data.length}`);
  const out = new Uint8Array(4 + 4 * dims.length + size);
  const view = new DataView(out.buffer);
  view.setUint32(0, (UBYTE << 8) | dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}
