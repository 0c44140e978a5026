// Where the repo keeps datasets, how to show paths in one-line errors, and temp-file names.

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadOptions } from './types.js';

/** <repo>/datasets, located from this module so it works from src/ (vitest) and dist/ (node). */
export const DATASETS_DIR = fileURLToPath(new URL('../../datasets/', import.meta.url));

export function envOf(opts: LoadOptions): Record<string, string | undefined> {
  return opts.env ?? process.env;
}

export function cacheDir(opts: LoadOptions): string {
  return path.resolve(opts.cacheDir ?? envOf(opts).ADVRUN_CACHE_DIR ?? path.join(DATASETS_DIR, 'cache'));
}

export function userDataDir(opts: LoadOptions): string | undefined {
  const d = opts.dataDir ?? envOf(opts).ADVRUN_DATA;
  return d ? path.resolve(d) : undefined;
}

export function downloadAllowed(opts: LoadOptions): boolean {
  if (opts.download !== undefined) return opts.download;
  const off = envOf(opts).ADVRUN_OFFLINE;
  return !(off && off !== '0');
}

/** Relative to cwd when below it, so error lines stay short ('datasets/cache/x'). */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

/** A unique sibling name for a temp file; '.tmp' suffix is gitignored and never read as data. */
export function tempSibling(p: string): string {
  return `${p}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}
