// Transferability of adversarial examples (the protocol of Gubri et al.'s LGV/RFN code): craft on each
// surrogate with an iterative attack (BIM = I-FGSM without random start by default; MI-FGSM and PGD
// also accepted), BN in eval mode, and evaluate the crafted images on each target.
//
// Example selection: the first n examples of the split, in dataset order, that EVERY target
// classifies correctly ("correct" = the true-class logit strictly above every other logit, the
// convention of src/attacks). The same examples are used for every surrogate, so every cell of the
// matrix has the same denominator. Success rate of (surrogate, target) = 1 − accuracy of the target
// on the examples crafted on the surrogate. When a surrogate is also a target (the same checkpoint
// file), that cell is the white-box success rate; it is kept and flagged, and `mean_transfer`
// averages only the other (black-box) targets.

import { createArrayCsvStringifier } from 'csv-writer';
import { basename, dirname, extname, join, sep } from 'node:path';
import { createAttack, type Attack, type AttackModel } from '../attacks/index.js';
import { isCorrect } from '../attacks/common.js';
import type { Norm } from '../attacks/types.js';
import { readExamples, readRange, type Dataset } from '../data/index.js';
import { parseFraction } from '../train/config.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';

export const TRANSFER_ATTACKS = ['bim', 'mifgsm', 'pgd'] as const;
export type TransferAttack = (typeof TRANSFER_ATTACKS)[number];

export const SELECTION_RULE = 'the first n examples of the split, in dataset order, that every target classifies correctly (true-class logit strictly above every other logit, clean images, BN in eval mode)';

/**
 * A step size: a number or fraction ("0.3", "1/255") or a multiple of eps ("eps/10", "0.1*eps",
 * "eps*0.1", "eps").
 */
export function parseStepSize(text: string | number, eps: number): number {
  let v: number;
  if (typeof text === 'number') v = text;
  else {
    const t = text.replace(/\s+/g, '');
    if (/eps/i.test(t)) {
      const m = /^(?:([0-9.eE+-]+(?:\/[0-9.eE+-]+)?)\*?)?eps(?:([*/])([0-9.eE+-]+))?$/i.exec(t);
      if (!m) throw new UserError(`--step-size "${text}" is not understood (use e.g. eps/10, 0.1*eps, 2/255 or 0.3)`);
      const coef = m[1] === undefined ? 1 : parseFraction(m[1], 'step-size');
      const other = m[3] === undefined ? 1 : Number(m[3]);
      v = m[2] === '/' ? (coef * eps) / other : coef * eps * other;
    } else {
      v = parseFraction(t, 'step-size');
    }
  }
  if (!Number.isFinite(v) || v <= 0) throw new UserError(`--step-size "${text}" must be a positive number (got ${v})`);
  return v;
}

/** Short, unique display names for model files: the file name without extension, plus parent directories where needed. */
export function uniqueLabels(paths: string[]): string[] {
  const parts = paths.map((p) => {
    const dirs = dirname(p).split(sep).filter((s) => s && s !== '.');
    return { dirs, base: basename(p, extname(p)) };
  });
  const depth = new Array(paths.length).fill(0);
  const label = (i: number) => [...parts[i]!.dirs.slice(parts[i]!.dirs.length - depth[i]), parts[i]!.base].join('/');
  for (let round = 0; round < 64; round++) {
    const labels = paths.map((_, i) => label(i));
    let changed = false;
    labels.forEach((l, i) => {
      const clash = labels.some((m, j) => j !== i && m === l && paths[j] !== paths[i]);
      if (clash && depth[i] < parts[i]!.dirs.length) { depth[i]++; changed = true; }
    });
    if (!changed) break;
  }
  // Labels still equal after every directory is used (a.pt and a.safetensors side by side): keep the extension.
  const labels = paths.map((_, i) => label(i));
  return labels.map((l, i) => (labels.some((m, j) => j !== i && m === l && paths[j] !== paths[i]) ? `${l}${extname(paths[i]!)}` : l));
}

export interface Selection {
  /** Dataset indices of the selected examples, in order. */
  indices: Uint32Array;
  /** Examples examined (a prefix of the split). */
  scanned: number;
}

async function gather(ds: Dataset, idx: ArrayLike<number>): Promise<{ x: Float32Array; y: Int32Array }> {
  return { x: await readExamples(ds, idx), y: Int32Array.from(idx, (j) => ds.labels[j]!) };
}

/** The first `n` examples of `ds` (in order) that every target classifies correctly. */
export async function selectCommonCorrect(targets: AttackModel[], ds: Dataset, n: number, batchSize: number): Promise<Selection> {
  const k = ds.numClasses;
  const chosen: number[] = [];
  let scanned = 0;
  for (let s = 0; s < ds.n && chosen.length < n; s += batchSize) {
    const m = Math.min(batchSize, ds.n - s);
    const x = await readRange(ds, s, m);
    const ok = new Uint8Array(m).fill(1);
    for (const t of targets) {
      const logits = await t.logits(x, m);
      for (let i = 0; i < m; i++) if (ok[i] && !isCorrect(logits, i, k, ds.labels[s + i]!)) ok[i] = 0;
    }
    for (let i = 0; i < m && chosen.length < n; i++) {
      scanned = s + i + 1;
      if (ok[i]) chosen.push(s + i);
    }
  }
  return { indices: Uint32Array.from(chosen), scanned };
}

export interface TransferModel {
  label: string;
  /** File it came from. */
  source: string;
  /** Content identity (e.g. SHA-256 of the file): equal ids mean the same model (white-box cell). */
  id: string;
  model: AttackModel;
}

export interface TransferOptions {
  attack: TransferAttack;
  eps: number;
  norm: Norm;
  steps: number;
  stepSize: number;
  seed: number;
  /** Examples wanted (fewer if the split runs out). */
  n: number;
  batchSize: number;
  /** MI-FGSM momentum decay (default 1.0). */
  decay?: number;
  /** PGD only: random start (default true). */
  randomStart?: boolean;
}

export interface TransferResult {
  surrogates: string[];
  targets: string[];
  /** success[s][t] = 1 − accuracy of target t on the examples crafted on surrogate s. */
  success: number[][];
  /** whiteBox[s][t]: the surrogate is the target (same model). */
  whiteBox: boolean[][];
  /** Mean of each surrogate's row over all targets. */
  mean: number[];
  /** Mean over the targets that are not the surrogate itself (null if there are none). */
  meanTransfer: (number | null)[];
  /** Fraction of the selected examples on which each surrogate itself is fooled after the attack. */
  surrogateFooled: number[];
  selection: Selection;
  nRequested: number;
  attack: Record<string, unknown>;
  seconds: number;
}

export function makeTransferAttack(o: TransferOptions): Attack {
  if (!(TRANSFER_ATTACKS as readonly string[]).includes(o.attack)) throw new UserError(`--attack ${o.attack} is not a transfer attack; use ${TRANSFER_ATTACKS.join(', ')}`);
  const base = { eps: o.eps, norm: o.norm, steps: o.steps, stepSize: o.stepSize, seed: o.seed };
  if (o.attack === 'pgd') return createAttack('pgd', { ...base, randomStart: o.randomStart ?? true });
  if (o.attack === 'mifgsm') return createAttack('mifgsm', { ...base, decay: o.decay });
  return createAttack('bim', base);
}

export async function transferMatrix(surrogates: TransferModel[], targets: TransferModel[], ds: Dataset, o: TransferOptions, progress?: (done: number, total: number) => void): Promise<TransferResult> {
  const t0 = Date.now();
  if (surrogates.length === 0 || targets.length === 0) throw new UserError('transfer needs at least one surrogate and one target');
  if (!Number.isInteger(o.n) || o.n < 1) throw new UserError(`--n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UserError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  const attack = makeTransferAttack(o);
  const selection = await selectCommonCorrect(targets.map((t) => t.model), ds, o.n, o.batchSize);
  const n = selection.indices.length;
  if (n === 0) throw new UserError(`no example among the ${ds.n} of ${ds.name} ${ds.split} is classified correctly by every target`);
  const k = ds.numClasses;
  const correct = surrogates.map(() => new Array<number>(targets.length).fill(0));
  const fooled = new Array<number>(surrogates.length).fill(0);
  const nb = Math.ceil(n / o.batchSize);
  let done = 0;
  // Batches outside, surrogates inside: each batch is read (for streamed folders: decoded) once.
  for (let s = 0; s < n; s += o.batchSize) {
    const idx = selection.indices.subarray(s, Math.min(n, s + o.batchSize));
    const m = idx.length;
    const { x, y } = await gather(ds, idx);
    for (let si = 0; si < surrogates.length; si++) {
      const r = await attack.run(surrogates[si]!.model, x, y, m, idx);
      for (let i = 0; i < m; i++) if (!r.robust[i]) fooled[si]!++;
      for (let ti = 0; ti < targets.length; ti++) {
        const logits = await targets[ti]!.model.logits(r.xAdv, m);
        for (let i = 0; i < m; i++) if (isCorrect(logits, i, k, y[i]!)) correct[si]![ti]!++;
      }
      progress?.(++done, surrogates.length * nb);
    }
  }
  const success = correct.map((row) => row.map((c) => 1 - c / n));
  const whiteBox = surrogates.map((sm) => targets.map((tm) => sm.id === tm.id));
  const mean = success.map((row) => row.reduce((a, v) => a + v, 0) / row.length);
  const meanTransfer = success.map((row, si) => {
    const vals = row.filter((_, ti) => !whiteBox[si]![ti]);
    return vals.length ? vals.reduce((a, v) => a + v, 0) / vals.length : null;
  });
  return {
    surrogates: surrogates.map((s) => s.label), targets: targets.map((t) => t.label), success, whiteBox, mean, meanTransfer,
    surrogateFooled: fooled.map((f) => f / n), selection, nRequested: o.n, attack: attack.settings(), seconds: (Date.now() - t0) / 1000,
  };
}

// ---------- report files ----------

export interface TransferFiles {
  csv: string;
  md: string;
  json: string;
}

export function transferFiles(dir: string): TransferFiles {
  return { csv: join(dir, 'transfer.csv'), md: join(dir, 'transfer.md'), json: join(dir, 'transfer.json') };
}

const pct = (v: number | null) => (v === null ? '' : (100 * v).toFixed(2));

/** CSV: one row per surrogate, one column per target (success rates in [0, 1]), then mean and mean_transfer. */
export function renderTransferCsv(r: TransferResult): string {
  const csv = createArrayCsvStringifier({ header: ['surrogate', ...r.targets, 'mean', 'mean_transfer'] });
  const rows = r.surrogates.map((s, si) => [s, ...r.success[si]!.map((v) => v.toFixed(6)), r.mean[si]!.toFixed(6), r.meanTransfer[si] === null ? '' : r.meanTransfer[si]!.toFixed(6)]);
  return csv.getHeaderString()! + csv.stringifyRecords(rows);
}

const escapeMd = (s: string) => s.replace(/\|/g, '\\|');

export function renderTransferMarkdown(r: TransferResult, caption: string): string {
  const head = ['surrogate \\ target', ...r.targets, 'mean', 'mean transfer'];
  const lines = [`| ${head.map(escapeMd).join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  r.surrogates.forEach((s, si) => {
    const cells = r.success[si]!.map((v, ti) => `${pct(v)}${r.whiteBox[si]![ti] ? ' (wb)' : ''}`);
    lines.push(`| ${[s, ...cells, pct(r.mean[si]!), pct(r.meanTransfer[si]!)].map(escapeMd).join(' | ')} |`);
  });
  return [
    `### Transfer success rate (%)`, '', caption, '',
    ...lines, '',
    `Success rate = 1 − target accuracy on the adversarial examples crafted on the surrogate, over n = ${r.selection.indices.length} examples: ${SELECTION_RULE}. ` +
      `(wb) marks white-box cells (the surrogate is the target); "mean transfer" leaves them out.`, '',
  ].join('\n');
}

/** Write transfer.csv, transfer.md and transfer.json (atomically) into `dir`. */
export function writeTransferReport(dir: string, r: TransferResult, json: Record<string, unknown>, caption: string): TransferFiles {
  const files = transferFiles(dir);
  writeFileAtomic(files.csv, renderTransferCsv(r));
  writeFileAtomic(files.md, renderTransferMarkdown(r, caption));
  writeFileAtomic(files.json, `${JSON.stringify(json, null, 2)}\n`);
  return files;
}
