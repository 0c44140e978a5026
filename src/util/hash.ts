// Content hashes: artifact keys, file and data fingerprints recorded in results.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Hex SHA-256 of the concatenation of `parts` (strings as UTF-8). */
export function sha256Hex(...parts: (string | Uint8Array)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/**
 * Short hash of the .ts/.js sources under `dirs` (recursively, names and contents): a changed generator
 * never reuses graphs cached by an older one.
 */
export function sourceFingerprint(dirs: string[]): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) h.update(name).update(readFileSync(p));
    }
  };
  for (const d of dirs) walk(d);
  return h.digest('hex').slice(0, 16);
}
