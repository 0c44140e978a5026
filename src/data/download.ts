// Verified downloads: stream to a temp file while hashing, check SHA-256, then rename into place.
// A failed or mismatching download never leaves a file under the final name (nor the temp file).

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { displayPath, tempSibling } from './paths.js';

export interface DownloadOptions {
  /** Accepted SHA-256 digests (hex); several when mirrors serve differently-compressed copies. */
  sha256: string | string[];
  log?: (line: string) => void;
  /** What the user can do if the download fails (appended to the error). */
  hint?: string;
}

export async function downloadVerified(url: string, dest: string, o: DownloadOptions): Promise<void> {
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = tempSibling(dest);
  const hint = o.hint ? `; ${o.hint}` : '';
  const log = o.log ?? (() => {});
  try {
    const res = await fetchOrExplain(url, hint);
    // With a Content-Encoding, fetch() hands over decoded bytes and Content-Length counts the encoded ones:
    // then only the checksum can tell a complete download.
    const total = res.headers.get('content-encoding') ? 0 : Number(res.headers.get('content-length') ?? 0);
    log(`downloading ${url} -> ${displayPath(dest)}${total ? ` (${(total / 1e6).toFixed(1)} MB)` : ''}`);
    const hash = createHash('sha256');
    let got = 0;
    const fh = await fsp.open(tmp, 'w');
    try {
      let nextReport = 0.25;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(chunk);
        got += chunk.length;
        await fh.write(chunk);
        if (total && got / total >= nextReport) {
          log(`  ${Math.round((100 * got) / total)}%`);
          nextReport += 0.25;
        }
      }
    } catch (e) {
      throw new UserError(`${url}: download interrupted after ${got} bytes (${errText(e)})${hint}`);
    } finally {
      await fh.close();
    }
    if (total && got !== total) {
      throw new UserError(`${url}: download incomplete (${got} of ${total} bytes)${hint}`);
    }
    const actual = hash.digest('hex');
    const accepted = (Array.isArray(o.sha256) ? o.sha256 : [o.sha256]).map((h) => h.toLowerCase());
    if (!accepted.includes(actual)) {
      throw new UserError(
        `${url}: checksum mismatch (sha256 ${actual}, expected ${accepted.join(' or ')}); nothing was saved — retry, or use another mirror${hint}`,
      );
    }
    await fsp.rename(tmp, dest);
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

async function fetchOrExplain(url: string, hint: string): Promise<Response> {
  let res: Response;
  try {
    // The archive's own bytes: a server must not re-encode them (their checksum is what is known).
    res = await fetch(url, { redirect: 'follow', headers: { 'accept-encoding': 'identity' } });
  } catch (e) {
    throw new UserError(`${url}: download failed (${errText(e)})${hint}`);
  }
  if (!res.ok || !res.body) {
    throw new UserError(`${url}: download failed (HTTP ${res.status} ${res.statusText})${hint}`);
  }
  return res;
}

/** fetch() wraps the interesting error (ECONNREFUSED, ENOTFOUND...) in `cause`. */
function errText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof Error) return `${e.message}: ${(cause as NodeJS.ErrnoException).code ?? cause.message}`;
  return e.message;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  try {
    for await (const chunk of fh.createReadStream()) hash.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}
