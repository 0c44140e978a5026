// A minimal tar reader: enough for the official CIFAR archives (ustar) plus GNU long names and pax
// 'path' records, so re-packed mirrors also work. Corrupt headers are detected by their checksum.

export interface TarEntry {
  name: string;
  /** '0' regular file, '5' directory, ... (NUL is normalised to '0'). */
  type: string;
  data: Uint8Array;
}

export class TarError extends Error {}

const BLOCK = 512;

export function* readTar(buf: Uint8Array): Generator<TarEntry> {
  let off = 0;
  let longName: string | undefined;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) return; // end-of-archive marker
    checkHeader(h, off);
    const size = parseSize(h.subarray(124, 136), off);
    const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]!);
    const start = off + BLOCK;
    if (start + size > buf.length) throw new TarError(`tar entry at byte ${off} runs past the end of the archive`);
    const data = buf.subarray(start, start + size);
    off = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = cString(data);
      continue;
    }
    if (type === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (type === 'g') continue;
    const prefix = isUstar(h) ? cString(h.subarray(345, 500)) : '';
    const name = longName ?? (prefix ? `${prefix}/${cString(h.subarray(0, 100))}` : cString(h.subarray(0, 100)));
    longName = undefined;
    yield { name, type, data };
  }
  throw new TarError('tar archive ends without an end-of-archive marker (truncated?)');
}

function checkHeader(h: Uint8Array, off: number): void {
  const stored = parseOctal(h.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (stored !== sum) throw new TarError(`bad tar header checksum at byte ${off} (corrupt archive)`);
}

function parseSize(f: Uint8Array, off: number): number {
  // GNU base-256 encoding for sizes >= 8 GiB: high bit of the first byte set.
  if (f[0]! & 0x80) {
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  const v = parseOctal(f);
  if (Number.isNaN(v)) throw new TarError(`bad size field in tar header at byte ${off}`);
  return v;
}

function parseOctal(f: Uint8Array): number {
  const s = cString(f).trim();
  if (!/^[0-7]*$/.test(s)) return NaN;
  return s ? parseInt(s, 8) : 0;
}

function cString(f: Uint8Array): string {
  const end = f.indexOf(0);
  return Buffer.from(f.subarray(0, end < 0 ? f.length : end)).toString('utf8');
}

function isUstar(h: Uint8Array): boolean {
  return Buffer.from(h.subarray(257, 262)).toString('latin1') === 'ustar';
}

/** pax records are "<len> key=value\n". */
function paxPath(data: Uint8Array): string | undefined {
  const text = Buffer.from(data).toString('utf8');
  for (const line of text.split('\n')) {
    const m = /^\d+ path=(.*)$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}
