// `advrun compare`: advrun's numbers beside a PyTorch reference (bench/torch_eval.py's JSON).
//
// The data both sides see is a file advrun writes (dumpData: safetensors with `images` float32
// [n, C, H, W] and `labels` int64 [n]); the reference records that data's SHA-256 (float32 image
// bytes, then int64 label bytes), and compare refuses to compare different data. The evaluation is
// advrun's evaluate() procedure, kept per example: clean logits (argmax), the attack on the
// clean-correct points, robust = still correct at the attack's returned point. Checks: logits
// max-abs-diff on the reference's first rows, clean and robust accuracy differences in points, and
// that the attack settings are the same.

import { readFileSync } from 'node:fs';
import { argmaxCorrect, gatherCorrect } from '../attacks/common.js';
import { createAttack, type AttackModel, type CreateAttackOptions } from '../attacks/index.js';
import { writeSafetensors } from '../checkpoint/safetensors.js';
import { head, materialize, streamBatches, type Dataset } from '../data/index.js';
import { makeTensor, toNumbers } from '../ir/tensor.js';
import { UserError } from '../util/errors.js';
import { decodeForeignSafetensors } from './state-dict.js';
import { convertRaw } from './raw-tensor.js';
import { sha256Hex } from '../util/hash.js';
import { readInputFile } from '../util/fs.js';

export const REFERENCE_FORMAT = 'advrun-torch-reference/1';

export interface AttackSettings {
  attack: string;
  norm: 'linf' | 'l2';
  eps: number;
  steps: number;
  stepSize: number;
  randomStart: boolean;
  restarts?: number;
  loss?: string;
}

export interface Reference {
  format: string;
  torch_version?: string;
  model?: Record<string, unknown>;
  data: { n: number; sha256: string; shape?: number[]; file?: string; source?: string };
  clean_acc: number;
  robust_acc: number | null;
  n: number;
  attack: AttackSettings | null;
  per_example?: { clean: string; robust: string | null };
  logits_first: number[][];
}

export function readReference(path: string): Reference {
  let ref: Reference;
  try {
    ref = JSON.parse(readFileSync(path, 'utf8')) as Reference;
  } catch (e) {
    throw new UserError(`cannot read reference ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (ref.format !== REFERENCE_FORMAT) throw new UserError(`${path} is not a reference written by bench/torch_eval.py (format "${String(ref.format)}", expected "${REFERENCE_FORMAT}")`);
  for (const k of ['data', 'clean_acc', 'n', 'logits_first'] as const) if (ref[k] === undefined) throw new UserError(`${path}: reference has no "${k}"`);
  return ref;
}

// ---------- data files ----------

export function dataSha256(images: Float32Array, labels: ArrayLike<number>): string {
  const y = BigInt64Array.from(Array.from(labels), (v) => BigInt(v));
  return sha256Hex(new Uint8Array(images.buffer, images.byteOffset, images.byteLength), new Uint8Array(y.buffer));
}

/** The first `n` examples of a dataset (in order) as a new in-memory Dataset. */
export async function firstExamples(ds: Dataset, n: number): Promise<Dataset> {
  if (ds.stream) return materialize(head(ds, n));
  const m = Math.min(n, ds.n);
  const per = ds.channels * ds.height * ds.width;
  return { ...ds, n: m, images: ds.images.slice(0, m * per), labels: ds.labels.slice(0, m) };
}

/** Write a dataset slice for bench/torch_eval.py. */
export function dumpData(ds: Dataset, out: string): { n: number; sha256: string } {
  const labels = makeTensor('int64', [ds.n], BigInt64Array.from(ds.labels, (v) => BigInt(v)));
  writeSafetensors(out, { images: makeTensor('float32', [ds.n, ds.channels, ds.height, ds.width], ds.images), labels }, {
    format: 'advrun-data/1', source: `${ds.name} ${ds.split}`, n: String(ds.n), num_classes: String(ds.numClasses),
    class_names: JSON.stringify(ds.classNames), mean: JSON.stringify(ds.mean), std: JSON.stringify(ds.std),
  });
  return { n: ds.n, sha256: dataSha256(ds.images, ds.labels) };
}

/** Read a dumped slice back as a Dataset. */
export function loadDumpedData(path: string, numClasses?: number): Dataset {
  const { tensors, metadata } = decodeForeignSafetensors(readInputFile(path), path);
  const img = tensors.get('images'), lab = tensors.get('labels');
  if (!img || !lab || img.dims.length !== 4 || lab.dims.length !== 1 || img.dims[0] !== lab.dims[0]) {
    throw new UserError(`${path} is not a data file from \`advrun compare --dump-data\` (needs images [n, C, H, W] and labels [n])`);
  }
  const [n, c, h, w] = img.dims as [number, number, number, number];
  const images = convertRaw(img).data as Float32Array;
  const labels = Int32Array.from(toNumbers(convertRaw(lab)));
  const k = numClasses ?? (Number(metadata.num_classes) || Math.max(...labels) + 1);
  const parse = (s: string | undefined, dflt: unknown) => { try { return s ? JSON.parse(s) : dflt; } catch { return dflt; } };
  return {
    name: `file:${path}`, split: 'test', n, channels: c, height: h, width: w, numClasses: k,
    classNames: parse(metadata.class_names, Array.from({ length: k }, (_, i) => String(i))),
    originalClassIds: Array.from({ length: k }, (_, i) => i),
    mean: parse(metadata.mean, []), std: parse(metadata.std, []), images, labels, source: path,
  };
}

// ---------- evaluation, per example ----------

export interface PerExampleResult {
  clean: Uint8Array;
  robust: Uint8Array | null;
  logits: Float32Array;
  attack: Record<string, unknown> | null;
  seconds: number;
}

/** advrun's evaluate() procedure, keeping each example's outcome. */
export async function evaluatePerExample(model: AttackModel, ds: Dataset, attackName: string | null, o: CreateAttackOptions, batchSize: number): Promise<PerExampleResult> {
  const t0 = Date.now();
  const attack = attackName ? createAttack(attackName, o) : null;
  const per = ds.channels * ds.height * ds.width, k = ds.numClasses;
  const clean = new Uint8Array(ds.n), robust = attack ? new Uint8Array(ds.n) : null;
  const logits = new Float32Array(ds.n * k);
  let seen = 0;
  for await (const batch of streamBatches(ds, { batchSize, shuffle: false })) {
    const z = await model.logits(batch.x, batch.n);
    logits.set(z, seen * k);
    const ok = argmaxCorrect(z, batch.y, k);
    clean.set(ok, seen);
    if (attack && robust) {
      const c = gatherCorrect(batch.x, batch.y, ok, per);
      if (c.idx.length) {
        const r = await attack.run(model, c.x, c.y, c.idx.length, c.idx.map((i) => seen + i));
        c.idx.forEach((src, j) => { robust[seen + src] = r.robust[j]!; });
      }
    }
    seen += batch.n;
  }
  return { clean, robust, logits, attack: attack ? attack.settings() : null, seconds: (Date.now() - t0) / 1000 };
}

// ---------- comparison ----------

export interface Tolerances {
  /** Max |logit difference| allowed on the reference's first rows. */
  logits: number;
  /** Max |accuracy difference| in percentage points. */
  accPoints: number;
}

export interface Check { name: string; value: number | string | boolean; tolerance?: number; pass: boolean }

export interface CompareResult {
  pass: boolean;
  checks: Check[];
  advrun: { clean_acc: number; robust_acc: number | null; n: number; attack: Record<string, unknown> | null; seconds: number };
  reference: { clean_acc: number; robust_acc: number | null; n: number; attack: AttackSettings | null; torch_version?: string };
  diff: { logits_max_abs: number; logits_rows: number; clean_acc_points: number; robust_acc_points: number | null; clean_disagree: number | null; robust_disagree: number | null };
  data: { n: number; sha256: string; reference_sha256: string };
}

/** Attack options for createAttack from a reference's settings. */
export function attackOptionsFrom(s: AttackSettings, seed = 0): { name: string; options: CreateAttackOptions } {
  const options: CreateAttackOptions = { eps: s.eps, norm: s.norm, steps: s.steps, stepSize: s.stepSize, randomStart: s.randomStart, restarts: s.restarts ?? 1, seed };
  if (s.attack === 'pgd' && s.loss) options.loss = s.loss as CreateAttackOptions['loss'];
  if (s.attack === 'fgsm' || s.attack === 'bim') delete options.randomStart;
  return { name: s.attack, options };
}

function sameSettings(a: Record<string, unknown> | null, b: AttackSettings | null): boolean {
  if (!a || !b) return a === b;
  const num = (x: unknown, y: unknown) => typeof x === 'number' && typeof y === 'number' && Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(y));
  return a.attack === b.attack && a.norm === b.norm && num(a.eps, b.eps) && a.steps === b.steps && num(a.stepSize, b.stepSize)
    && !!a.randomStart === !!b.randomStart && (b.loss === undefined || a.loss === undefined || a.loss === b.loss);
}

export function compareWithReference(r: PerExampleResult, ds: Dataset, ref: Reference, tol: Tolerances): CompareResult {
  const k = ds.numClasses, n = ds.n;
  const sha = dataSha256(ds.images, ds.labels);
  const rows = Math.min(ref.logits_first.length, n);
  let maxDiff = 0;
  for (let i = 0; i < rows; i++) {
    const row = ref.logits_first[i]!;
    if (row.length !== k) throw new UserError(`reference logits have ${row.length} classes, the model ${k}`);
    for (let j = 0; j < k; j++) maxDiff = Math.max(maxDiff, Math.abs(r.logits[i * k + j]! - row[j]!));
  }
  const mean = (a: Uint8Array) => a.reduce((s, v) => s + v, 0) / a.length;
  const cleanAcc = mean(r.clean), robustAcc = r.robust ? mean(r.robust) : null;
  const disagree = (a: Uint8Array, s: string | null | undefined) => (s && s.length === a.length ? [...a].filter((v, i) => String(v) !== s[i]).length : null);
  const cleanPts = 100 * Math.abs(cleanAcc - ref.clean_acc);
  const robustPts = robustAcc !== null && ref.robust_acc !== null && ref.robust_acc !== undefined ? 100 * Math.abs(robustAcc - ref.robust_acc) : null;
  const checks: Check[] = [
    { name: 'data', value: sha === ref.data.sha256 ? 'same' : 'different', pass: sha === ref.data.sha256 },
    { name: 'attack settings', value: sameSettings(r.attack, ref.attack), pass: sameSettings(r.attack, ref.attack) },
    { name: 'logits max abs diff', value: maxDiff, tolerance: tol.logits, pass: rows > 0 && maxDiff <= tol.logits },
    { name: 'clean accuracy diff (points)', value: cleanPts, tolerance: tol.accPoints, pass: cleanPts <= tol.accPoints },
  ];
  if (ref.attack || r.attack) checks.push({ name: 'robust accuracy diff (points)', value: robustPts ?? 'missing', tolerance: tol.accPoints, pass: robustPts !== null && robustPts <= tol.accPoints });
  return {
    pass: checks.every((c) => c.pass),
    checks,
    advrun: { clean_acc: cleanAcc, robust_acc: robustAcc, n, attack: r.attack, seconds: r.seconds },
    reference: { clean_acc: ref.clean_acc, robust_acc: ref.robust_acc, n: ref.n, attack: ref.attack, torch_version: ref.torch_version },
    diff: {
      logits_max_abs: maxDiff, logits_rows: rows, clean_acc_points: cleanPts, robust_acc_points: robustPts,
      clean_disagree: disagree(r.clean, ref.per_example?.clean), robust_disagree: r.robust ? disagree(r.robust, ref.per_example?.robust) : null,
    },
    data: { n, sha256: sha, reference_sha256: ref.data.sha256 },
  };
}

/** Human-readable table of a comparison. */
export function formatComparison(c: CompareResult): string {
  const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);
  const lines = [
    `                 advrun      PyTorch (${c.reference.torch_version ?? '?'})`,
    `clean accuracy   ${pct(c.advrun.clean_acc).padEnd(11)} ${pct(c.reference.clean_acc)}`,
    `robust accuracy  ${pct(c.advrun.robust_acc).padEnd(11)} ${pct(c.reference.robust_acc)}`,
    `n = ${c.data.n}; per-example disagreements: clean ${c.diff.clean_disagree ?? '?'}, robust ${c.diff.robust_disagree ?? '?'}`,
  ];
  for (const ch of c.checks) {
    const v = typeof ch.value === 'number' ? ch.value.toExponential(2) : String(ch.value);
    lines.push(`${ch.pass ? 'PASS' : 'FAIL'}  ${ch.name}: ${v}${ch.tolerance !== undefined ? ` (tolerance ${ch.tolerance})` : ''}`);
  }
  lines.push(c.pass ? 'advrun matches the reference' : 'advrun does NOT match the reference');
  return lines.join('\n');
}
