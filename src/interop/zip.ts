// A small ZIP reader and writer, enough for PyTorch's torch.save archives.
//
// Reading goes through the central directory (torch's writer puts zero sizes and CRCs in the local
// headers and the real ones in data descriptors), handles ZIP64 sizes and offsets, and extracts
// stored entries (what torch.save writes) and deflated ones (a re-zipped archive) through node:zlib.
// CRC-32s are checked. Writing produces stored entries (deflate on request), each entry's data
// aligned to 64 bytes through a padding extra field, as torch's own writer does (so loaders can
// mmap the tensors).

import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { UserError } from '../util/errors.js';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  crc: number;
  localOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOC = 0x07064b50;

export function isZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array, private readonly source: string) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.readDirectory();
  }

  private bad(why: string): UserError {
    return new UserError(`${this.source} is not a readable ZIP archive (${why})`);
  }

  private u16(o: number): number { return this.view.getUint16(o, true); }
  private u32(o: number): number { return this.view.getUint32(o, true); }
  private u64(o: number): number {
    const v = this.view.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad('a 64-bit size is out of range');
    return Number(v);
  }

  private readDirectory(): void {
    const n = this.buf.length;
    if (n < 22) throw this.bad('too short');
    // The end-of-central-directory record is in the last 22 + 65535 bytes (it may carry a comment).
    let eocd = -1;
    for (let o = n - 22; o >= Math.max(0, n - 22 - 0xffff); o--) {
      if (this.u32(o) === SIG_EOCD) { eocd = o; break; }
    }
    if (eocd < 0) throw this.bad('no end-of-central-directory record; the file may be truncated');
    let count = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (eocd >= 20 && this.u32(eocd - 20) === SIG_EOCD64_LOC) {
      const z64 = this.u64(eocd - 20 + 8);
      if (z64 + 56 > n || this.u32(z64) !== SIG_EOCD64) throw this.bad('bad ZIP64 end record');
      count = this.u64(z64 + 32);
      cdSize = this.u64(z64 + 40);
      cdOffset = this.u64(z64 + 48);
    }
    if (cdOffset + cdSize > n) throw this.bad('central directory outside the file; the file may be truncated');
    let o = cdOffset;
    for (let i = 0; i < count; i++) {
      if (o + 46 > n || this.u32(o) !== SIG_CENTRAL) throw this.bad(`bad central directory entry ${i}`);
      const method = this.u16(o + 10);
      const crc = this.u32(o + 16);
      let compressedSize = this.u32(o + 20);
      let size = this.u32(o + 24);
      const nameLen = this.u16(o + 28), extraLen = this.u16(o + 30), commentLen = this.u16(o + 32);
      let localOffset = this.u32(o + 42);
      const name = Buffer.from(this.buf.subarray(o + 46, o + 46 + nameLen)).toString('utf8');
      // ZIP64 extended information: the fields that overflowed, in this order.
      let e = o + 46 + nameLen;
      const end = e + extraLen;
      while (e + 4 <= end) {
        const id = this.u16(e), len = this.u16(e + 2);
        if (id === 0x0001) {
          let p = e + 4;
          if (size === 0xffffffff) { size = this.u64(p); p += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = this.u64(p); p += 8; }
          if (localOffset === 0xffffffff) { localOffset = this.u64(p); p += 8; }
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc, localOffset });
      o = end + commentLen;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw this.bad(`no entry "${name}"`);
    const o = e.localOffset;
    if (o + 30 > this.buf.length || this.u32(o) !== SIG_LOCAL) throw this.bad(`bad local header for "${name}"`);
    const start = o + 30 + this.u16(o + 26) + this.u16(o + 28);
    if (start + e.compressedSize > this.buf.length) throw this.bad(`entry "${name}" runs past the end of the file (truncated?)`);
    const raw = this.buf.subarray(start, start + e.compressedSize);
    let data: Uint8Array;
    if (e.method === 0) data = raw;
    else if (e.method === 8) {
      try {
        data = inflateRawSync(raw);
      } catch (err) {
        throw this.bad(`entry "${name}" does not inflate: ${(err as Error).message}`);
      }
    } else throw this.bad(`entry "${name}" uses compression method ${e.method}; only stored and deflate are supported`);
    if (data.length !== e.size) throw this.bad(`entry "${name}" has ${data.length} bytes, its header says ${e.size}`);
    if ((crc32(data) >>> 0) !== e.crc) throw this.bad(`entry "${name}" fails its CRC-32 check (corrupted file)`);
    return data;
  }
}

/** Writes a ZIP archive of stored entries, each entry's data starting at a multiple of `align` bytes. */
export function writeZip(entries: { name: string; data: Uint8Array; deflate?: boolean }[], align = 64): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const push = (b: Uint8Array) => { chunks.push(b); offset += b.length; };
  for (const { name, data: raw, deflate } of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(raw) >>> 0;
    const data = deflate ? deflateRawSync(raw) : raw;
    const method = deflate ? 8 : 0;
    if (raw.length >= 0xffffffff || offset >= 0xffffffff) throw new UserError('advrun writes ZIP archives up to 4 GB');
    // Padding extra field (id 0x4246 "FB", as torch uses) so the data starts aligned.
    const base = offset + 30 + nameBytes.length;
    const pad = (align - ((base + 4) % align)) % align;
    const extra = Buffer.alloc(4 + pad, 0x5a);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(SIG_LOCAL, 0);
    local.writeUInt16LE(20, 4);              // version needed
    local.writeUInt16LE(0x0800, 6);          // flags: UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);              // time
    local.writeUInt16LE(0x21, 12);           // date 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const localOffset = offset;
    push(local); push(nameBytes); push(extra); push(data);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(SIG_CENTRAL, 0);
    c.writeUInt16LE(20, 4);                  // version made by
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt16LE(0, 12);
    c.writeUInt16LE(0x21, 14);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(raw.length, 24);
    c.writeUInt16LE(nameBytes.length, 28);
    c.writeUInt32LE(localOffset, 42);
    central.push(c, nameBytes);
  }
  const cdOffset = offset;
  let cdSize = 0;
  for (const c of central) { push(c); cdSize += c.length; }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(SIG_EOCD, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(cdOffset, 16);
  push(eocd);
  return chunks;
}
