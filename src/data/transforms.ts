// Dataset-level selections: class subsets, train/val split, limit. Each returns a new Dataset with
// copied arrays and keeps the original order of the examples it keeps (selections are sets, the
// order in which training visits them is decided by the batch iterator's seeded shuffle).

import { UserError } from '../util/errors.js';
import { deriveRng, SALT } from './seeds.js';
import type { Dataset } from './types.js';

/** Copy the examples at `indices` (in the given order) into a new Dataset; a streamed one stays streamed. */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const per = ds.channels * ds.height * ds.width;
  const n = indices.length;
  const images = new Float32Array(ds.stream ? 0 : n * per);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i]!;
    if (!(j >= 0 && j < ds.n)) throw new Error(`subset: index ${j} out of range 0..${ds.n - 1}`);
    if (!ds.stream) images.set(ds.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = ds.labels[j]!;
  }
  return { ...ds, n, images, labels, ...(ds.stream ? { stream: ds.stream.subset(indices) } : {}) };
}

/** The first `n` examples (all of them when n >= ds.n). */
export function head(ds: Dataset, n: number): Dataset {
  return n >= ds.n ? ds : subset(ds, Array.from({ length: n }, (_, i) => i));
}

/**
 * Parse a class subset: '0-4', '5,7,9', '0-2,7', or class names ('cat,dog'), or an id array.
 * Returns sorted unique ids; duplicates are merged, so '5,5,7' equals '5,7' and order does not matter.
 */
export function parseClassSpec(spec: string | number[], numClasses: number, classNames: string[] = []): number[] {
  const ids = new Set<number>();
  const check = (id: number, token: string): void => {
    if (!Number.isInteger(id) || id < 0 || id >= numClasses) {
      throw new UserError(`--classes: '${token}' is not a class id in 0..${numClasses - 1}`);
    }
    ids.add(id);
  };
  if (Array.isArray(spec)) {
    for (const id of spec) check(id, String(id));
  } else {
    const tokens = spec.split(',').map((t) => t.trim());
    if (tokens.some((t) => t === '')) {
      throw new UserError(`--classes: empty entry in '${spec}' (use e.g. '0-4' or '5,7,9')`);
    }
    for (const t of tokens) parseClassToken(t, classNames, check);
  }
  if (ids.size === 0) throw new UserError(`--classes: no classes selected (use e.g. '0-4' or '5,7,9')`);
  return [...ids].sort((a, b) => a - b);
}

function parseClassToken(t: string, classNames: string[], check: (id: number, token: string) => void): void {
  const range = /^(\d+)\s*-\s*(\d+)$/.exec(t);
  if (range) {
    const lo = Number(range[1]);
    const hi = Number(range[2]);
    if (lo > hi) throw new UserError(`--classes: range '${t}' is reversed (write '${hi}-${lo}')`);
    for (let id = lo; id <= hi; id++) check(id, t);
    return;
  }
  if (/^\d+$/.test(t)) return check(Number(t), t);
  const byName = classNames.indexOf(t);
  if (byName >= 0) return check(byName, t);
  throw new UserError(`--classes: cannot parse '${t}' (use ids like '0-4' or '5,7,9', or class names)`);
}

/** Keep only examples of the given classes; labels become their rank in `ids` (0..k-1). */
export function selectClasses(ds: Dataset, spec: string | number[]): Dataset {
  const ids = parseClassSpec(spec, ds.numClasses, ds.classNames);
  const remap = new Int32Array(ds.numClasses).fill(-1);
  ids.forEach((id, rank) => (remap[id] = rank));
  const keep: number[] = [];
  for (let i = 0; i < ds.n; i++) if (remap[ds.labels[i]!]! >= 0) keep.push(i);
  const out = subset(ds, keep);
  for (let i = 0; i < out.n; i++) out.labels[i] = remap[out.labels[i]!]!;
  return {
    ...out,
    numClasses: ids.length,
    classNames: ids.map((id) => ds.classNames[id]!),
    originalClassIds: ids.map((id) => ds.originalClassIds[id]!),
  };
}

export interface ValSplitOptions {
  /** Fraction in (0, 1) or a count >= 1 of examples to hold out. */
  val: number;
  seed?: number;
  /** Per-class proportional hold-out (default true), so rare classes are not left out of val. */
  stratified?: boolean;
}

/**
 * Split a training set into disjoint train/val parts, deterministically from `seed`.
 * Stratified: each class contributes round(k * n_c / n) examples (largest-remainder rounding so
 * the total is exactly k), chosen by a seeded permutation of that class's examples.
 */
export function splitTrainVal(ds: Dataset, o: ValSplitOptions): { train: Dataset; val: Dataset } {
  const k = valCount(o.val, ds.n);
  const rng = deriveRng(o.seed ?? 0, SALT.valSplit);
  const isVal = new Uint8Array(ds.n);
  if (o.stratified ?? true) {
    const members = byClass(ds);
    const quotas = largestRemainder(members.map((m) => m.length), k);
    members.forEach((m, c) => {
      const perm = rng.permutation(m.length);
      for (let i = 0; i < quotas[c]!; i++) isVal[m[perm[i]!]!] = 1;
    });
  } else {
    const perm = rng.permutation(ds.n);
    for (let i = 0; i < k; i++) isVal[perm[i]!] = 1;
  }
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (let i = 0; i < ds.n; i++) (isVal[i] ? valIdx : trainIdx).push(i);
  return { train: { ...subset(ds, trainIdx), split: 'train' }, val: { ...subset(ds, valIdx), split: 'val' } };
}

function valCount(val: number, n: number): number {
  const k = val > 0 && val < 1 ? Math.round(val * n) : val;
  if (!Number.isInteger(k) || k < 1 || k >= n) {
    throw new UserError(
      `validation split ${val}: must be a fraction in (0, 1) or a whole count in 1..${n - 1} (the training set has ${n} examples)`,
    );
  }
  return k;
}

function byClass(ds: Dataset): number[][] {
  const members: number[][] = Array.from({ length: ds.numClasses }, () => []);
  for (let i = 0; i < ds.n; i++) members[ds.labels[i]!]!.push(i);
  return members;
}

/** Integer quotas proportional to `sizes`, summing exactly to k (ties broken by lower class id). */
export function largestRemainder(sizes: number[], k: number): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  const exact = sizes.map((s) => (n ? (k * s) / n : 0));
  const quotas = exact.map(Math.floor);
  let left = k - quotas.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ r: e - Math.floor(e), i })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    if (quotas[i]! < sizes[i]!) {
      quotas[i]!++;
      left--;
    }
  }
  return quotas;
}

/**
 * The first `limit` examples of a fixed seeded shuffle, returned in original order. Because the
 * permutation depends only on (seed, n), limit(N) is contained in limit(M) for N < M.
 */
export function applyLimit(ds: Dataset, limit: number, seed = 0): Dataset {
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`--limit ${limit}: must be a positive whole number`);
  if (limit >= ds.n) return ds;
  const perm = deriveRng(seed, SALT.limit).permutation(ds.n);
  const keep = Array.from(perm.subarray(0, limit)).sort((a, b) => a - b);
  return subset(ds, keep);
}
