// What produced a result: advrun version, git commit (when run from a checkout), whether the checkout's
// code differed from that commit, and ONNX Runtime version. Recorded in every config/result file so a
// number can be traced to the code that made it.

import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { VERSION } from '../version.js';

let cached: { advrun_version: string; git_commit: string | null; git_dirty: boolean | null; onnxruntime: string } | undefined;

/** Paths whose local changes change what advrun computes (results, datasets and docs do not). */
const CODE_PATHS = ['src', 'package.json', 'package-lock.json'];

export function provenance() {
  if (cached) return cached;
  const git = (args: string[]) => execFileSync('git', args, { cwd: dirname(fileURLToPath(import.meta.url)), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  let commit: string | null = null, dirty: boolean | null = null;
  try {
    commit = git(['rev-parse', 'HEAD']);
    // Uncommitted changes to tracked code: the number did not come from `commit` alone.
    dirty = git(['status', '--porcelain', '--untracked-files=no', '--', ...CODE_PATHS.map((p) => `:/${p}`)]) !== '';
  } catch {
    commit = null; // not a git checkout (e.g. installed from npm)
  }
  cached = { advrun_version: VERSION, git_commit: commit, git_dirty: dirty, onnxruntime: ort.env.versions.node ?? 'unknown' };
  return cached;
}
