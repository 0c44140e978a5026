// Shared fixtures and helpers for the interop tests (fixtures: test/fixtures/interop, made by
// make_interop_fixtures.py with PyTorch; see its README).

import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { loadDataset, type Dataset } from '../../src/data/index.js';
import { toNumbers, type Tensor } from '../../src/ir/tensor.js';
import type { ModelSpec } from '../../src/models/index.js';
import { firstExamples } from '../../src/interop/compare.js';

export const FIX = join(import.meta.dirname, '..', 'fixtures', 'interop');
export const TORCH_FIX = join(import.meta.dirname, '..', 'fixtures', 'torch');
export const fix = (name: string) => join(FIX, name);

export const PREACT_ARCH = { arch: 'preact-resnet18', width: 4 };
export const PREACT_SPEC: ModelSpec = { arch: 'preact-resnet18', width: 4, numClasses: 10, inChannels: 1, imageSize: 28, activation: { kind: 'relu' }, mean: [0.286], std: [0.353] };

export function tempDir(prefix = 'advrun-interop-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let expectedCache: Map<string, Tensor> | undefined;
/** PyTorch's outputs (interop_expected.safetensors). */
export function expected(): Map<string, Tensor> {
  expectedCache ??= readSafetensors(fix('interop_expected.safetensors')).tensors;
  return expectedCache;
}

let testSet: Promise<Dataset> | undefined;
/** fashion-mnist-mini test split (500 images), the slice the references were computed on. */
export function fmnistTest(n = 500): Promise<Dataset> {
  testSet ??= loadDataset('fashion-mnist-mini', 'test');
  return testSet.then((ds) => firstExamples(ds, n));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number> | Tensor): number {
  const bn = 'dims' in (b as object) ? toNumbers(b as Tensor) : Array.from(b as ArrayLike<number>);
  expect(a.length).toBe(bn.length);
  let m = 0;
  for (let i = 0; i < bn.length; i++) m = Math.max(m, Math.abs(a[i]! - bn[i]!));
  return m;
}

/** max |a - b| / max |b|. */
export function relDiff(a: ArrayLike<number>, b: Tensor): number {
  const scale = Math.max(1e-6, ...toNumbers(b).map(Math.abs));
  return maxAbsDiff(a, b) / scale;
}

/** Debian's python3 with torch, or the reason it cannot be used. */
export function debianTorch(): { ok: true } | { ok: false; reason: string } {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch, onnx'], { stdio: 'pipe', timeout: 60_000 });
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: `/usr/bin/python3 with torch and onnx is not available (${(e as Error).message.split('\n')[0]})` };
  }
}
