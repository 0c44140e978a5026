// What produced a result: advrun version, git commit (when run from a checkout) and ONNX Runtime version.
// Recorded in every config/result file so a number can be traced to the code that made it.

import { execFileSync } from 'node:child_process';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { VERSION } from '../version.js';

let cached: { advrun_version: string; git_commit: string | null; onnxruntime: string } | undefined;

export function provenance() {
  if (cached) return cached;
  let commit: string | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: dirname(fileURLToPath(import.meta.url)), stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    commit = null; // not a git checkout (e.g. installed from npm)
  }
  cached = { advrun_version: VERSION, git_commit: commit, onnxruntime: ort.env.versions.node ?? 'unknown' };
  return cached;
}
