// Result tables, rebuilt from the files of a results directory (never from a scheduler's memory),
// so a grid run locally, on Slurm, or resumed three times gives the same table. Runs that are
// missing or failed are counted in their cell, never silently dropped.
//
// Three forms: Markdown (rows x columns, mean ± std (n) over seeds), CSV (one line per cell and
// metric, via csv-writer) and JSON: the cells plus one RobustBench-like entry per run carrying
// every setting that changes a number (threat model, eps, norm, steps, restarts, seeds, BN mode,
// advrun version and git commit). Nothing machine- or time-specific goes in, so tables compare.

import { createObjectCsvStringifier } from 'csv-writer';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { canonicalJson, formatValue, type PlannedRun } from './expand.js';
import { readGridFile, readJson, runPaths, runState, type RunStatus } from './rundir.js';
import { displayKey, type Metric } from './spec.js';

export const TABLE_FORMAT = 'advrun-grid-table/1';

export interface CellStats {
  row: Record<string, string>;
  column: Record<string, string>;
  metric: Metric;
  mean: number | null;
  std: number | null;
  /** Runs that contributed a value. */
  n: number;
  /** Runs planned for this cell. */
  expected: number;
  failed: number;
  /** Runs not finished (pending, running, interrupted) or finished without this metric. */
  missing: number;
  run_ids: string[];
}

export interface RunEntry {
  id: string;
  index: number;
  status: RunStatus;
  error: string | null;
  params: Record<string, string>;
  dataset: string;
  architecture: string;
  training: Record<string, unknown>;
  threat_model: string | null;
  eps: number | null;
  clean_acc: number | null;
  robust_acc: number | null;
  n_eval: number | null;
  /** The attack's own record of its settings (from eval.json). */
  attack: Record<string, unknown> | null;
  /** The evaluation as planned (known even for runs that have not finished). */
  evaluation: Record<string, unknown> | null;
  bn_mode: string | null;
  seed: number;
  val_clean_acc: number | null;
  val_robust_acc: number | null;
  best_epoch: number | null;
  advrun_version: string | null;
  git_commit: string | null;
  /** The run's code had uncommitted changes against git_commit (either stage's). */
  git_dirty: boolean | null;
  onnxruntime: string | null;
  metrics: Partial<Record<Metric, number | null>>;
}

export interface GridTable {
  format: typeof TABLE_FORMAT;
  name: string;
  rows: string[];
  columns: string[];
  over: string[];
  metrics: Metric[];
  digits: number;
  summary: Record<RunStatus, number> & { total: number };
  cells: CellStats[];
  /** Settings that vary between runs without being a row, column or `over` key (see unshownSettings). */
  unshown: { key: string; values: string[] }[];
  runs: RunEntry[];
}

interface TrainResult {
  final?: { val_clean_acc?: number; val_robust_acc?: number | null };
  best_epoch?: number;
  train_seconds?: number;
  advrun_version?: string;
  git_commit?: string | null;
  git_dirty?: boolean | null;
  onnxruntime?: string;
}

interface EvalResult {
  clean_acc?: number;
  robust_acc?: number | null;
  n?: number;
  attack?: Record<string, unknown> | null;
  bn_mode?: string;
  advrun_version?: string;
  git_commit?: string | null;
  git_dirty?: boolean | null;
  onnxruntime?: string;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function metricValues(tr: TrainResult | null, ev: EvalResult | null): Record<Metric, number | null> {
  return {
    robust_acc: num(ev?.robust_acc), clean_acc: num(ev?.clean_acc), val_robust_acc: num(tr?.final?.val_robust_acc),
    val_clean_acc: num(tr?.final?.val_clean_acc), best_epoch: num(tr?.best_epoch), train_seconds: num(tr?.train_seconds),
  };
}

function runEntry(dir: string, run: PlannedRun, metrics: Metric[]): RunEntry {
  const p = runPaths(dir, run.id);
  const state = runState(dir, run);
  const done = state.status === 'done';
  const tr = done ? readJson<TrainResult>(p.result) : null;
  const ev = done && run.eval ? readJson<EvalResult>(p.eval) : null;
  const values = metricValues(tr, ev);
  const { threads: _t, ...training } = run.train;
  return {
    id: run.id, index: run.index, status: state.status, error: state.status === 'failed' ? state.error : null, params: run.label,
    dataset: run.eval?.dataset ?? run.train.dataset, architecture: run.train.arch, training,
    threat_model: run.eval ? (run.eval.norm === 'linf' ? 'Linf' : 'L2') : null, eps: run.eval?.eps ?? null,
    clean_acc: values.clean_acc, robust_acc: values.robust_acc, n_eval: num(ev?.n), attack: ev?.attack ?? null, evaluation: run.eval ? { ...run.eval } : null, bn_mode: ev?.bn_mode ?? (tr ? 'eval' : null),
    seed: run.train.seed, val_clean_acc: values.val_clean_acc, val_robust_acc: values.val_robust_acc, best_epoch: values.best_epoch,
    advrun_version: ev?.advrun_version ?? tr?.advrun_version ?? null, git_commit: ev?.git_commit ?? tr?.git_commit ?? null,
    git_dirty: ev?.git_dirty === true || tr?.git_dirty === true ? true : ev?.git_dirty ?? tr?.git_dirty ?? null, onnxruntime: ev?.onnxruntime ?? tr?.onnxruntime ?? null,
    metrics: Object.fromEntries(metrics.map((m) => [m, values[m]])),
  };
}

/** Mean and sample standard deviation (null for fewer than 1 / 2 values). */
export function meanStd(xs: number[]): { mean: number | null; std: number | null } {
  if (!xs.length) return { mean: null, std: null };
  const mean = xs.reduce((a, v) => a + v, 0) / xs.length;
  // Sample standard deviation (n - 1): the seeds are a sample of the training randomness.
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, v) => a + (v - mean) ** 2, 0) / (xs.length - 1)) : null;
  return { mean, std };
}

/** Distinct label combinations of the given keys, in plan order. */
function combos(runs: PlannedRun[], keys: string[]): Record<string, string>[] {
  const seen = new Map<string, Record<string, string>>();
  for (const r of runs) {
    const c = Object.fromEntries(keys.map((k) => [k, formatValue(r.flat[k])]));
    seen.set(canonicalJson(c), seen.get(canonicalJson(c)) ?? c);
  }
  return [...seen.values()];
}

const matchesCombo = (r: PlannedRun, c: Record<string, string>) => Object.entries(c).every(([k, v]) => formatValue(r.flat[k]) === v);

/**
 * Settings that differ between the grid's runs but are not rows, columns or `over` keys (an override's
 * eval.attack, a derived alpha): the table lists them so no number is read without them. (Within a cell
 * runs differ only in `over` keys: the spec's validation refuses anything else.)
 */
function unshownSettings(runs: PlannedRun[], shown: string[]): GridTable['unshown'] {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.flat)))].filter((k) => !shown.includes(k)).sort();
  return keys.map((key) => ({ key, values: [...new Set(runs.map((r) => formatValue(r.flat[key])))] })).filter((u) => u.values.length > 1);
}

/** Build the table of a results directory from its files. */
export function buildTable(dir: string): GridTable {
  const grid = readGridFile(dir);
  const { rows, columns, over, metrics, digits } = grid.spec.table;
  const entries = new Map(grid.runs.map((r) => [r.id, runEntry(dir, r, metrics)]));
  const cells: CellStats[] = [];
  for (const row of combos(grid.runs, rows)) {
    for (const column of combos(grid.runs, columns)) {
      const members = grid.runs.filter((r) => matchesCombo(r, row) && matchesCombo(r, column));
      if (!members.length) continue;
      for (const metric of metrics) {
        const es = members.map((r) => entries.get(r.id)!);
        const values = es.filter((e) => e.status === 'done' && e.metrics[metric] != null).map((e) => e.metrics[metric]!);
        const failed = es.filter((e) => e.status === 'failed').length;
        cells.push({ row, column, metric, ...meanStd(values), n: values.length, expected: members.length, failed, missing: members.length - values.length - failed, run_ids: members.map((r) => r.id) });
      }
    }
  }
  const summary = { total: grid.runs.length, done: 0, running: 0, failed: 0, interrupted: 0, pending: 0 };
  for (const e of entries.values()) summary[e.status]++;
  const unshown = unshownSettings(grid.runs, [...rows, ...columns, ...over]);
  return { format: TABLE_FORMAT, name: grid.name, rows, columns, over, metrics, digits, summary, cells, unshown, runs: [...entries.values()] };
}

// ---------- rendering ----------

const isAccuracy = (m: Metric) => m.endsWith('_acc');

function fmt(v: number | null, m: Metric, digits: number): string {
  if (v === null) return '—';
  return isAccuracy(m) ? (100 * v).toFixed(digits) : Number(v.toPrecision(4)).toString();
}

function cellText(c: CellStats, digits: number): string {
  const gaps = [c.failed ? `${c.failed} failed` : '', c.missing ? `${c.missing} missing` : ''].filter(Boolean).join(', ');
  const count = c.n === c.expected ? `n=${c.n}` : `n=${c.n}/${c.expected}${gaps ? `; ${gaps}` : ''}`;
  if (c.mean === null) return `— (${count})`;
  const std = c.std === null ? '' : ` ± ${fmt(c.std, c.metric, digits)}`;
  return `${fmt(c.mean, c.metric, digits)}${std} (${count})`;
}

const comboText = (c: Record<string, string>, keyed: boolean) => Object.entries(c).map(([k, v]) => (keyed ? `${displayKey(k)}=${v}` : v)).join(', ');
const escapeMd = (s: string) => s.replace(/\|/g, '\\|');

export function renderMarkdown(t: GridTable): string {
  const columnCombos = [...new Map(t.cells.map((c) => [canonicalJson(c.column), c.column])).values()];
  const rowCombos = [...new Map(t.cells.map((c) => [canonicalJson(c.row), c.row])).values()];
  const heads: { column: Record<string, string>; metric: Metric; title: string }[] = [];
  for (const column of columnCombos) {
    for (const metric of t.metrics) {
      const parts = [t.columns.length ? comboText(column, t.columns.length > 1) : '', t.metrics.length > 1 || !t.columns.length ? metric : ''];
      heads.push({ column, metric, title: parts.filter(Boolean).join(' · ') });
    }
  }
  const corner = [t.rows.map(displayKey).join(', '), t.columns.map(displayKey).join(', ')].filter(Boolean).join(' \\ ') || 'grid';
  const lines = [`| ${[corner, ...heads.map((h) => h.title)].map(escapeMd).join(' | ')} |`, `|${' --- |'.repeat(heads.length + 1)}`];
  for (const row of rowCombos) {
    const cells = heads.map((h) => {
      const c = t.cells.find((x) => canonicalJson(x.row) === canonicalJson(row) && canonicalJson(x.column) === canonicalJson(h.column) && x.metric === h.metric);
      return c ? cellText(c, t.digits) : '';
    });
    lines.push(`| ${[t.rows.length ? comboText(row, false) : 'all', ...cells].map(escapeMd).join(' | ')} |`);
  }
  const unit = t.metrics.some(isAccuracy) ? ' (accuracies in %)' : '';
  const overText = t.over.length ? `mean ± std over ${t.over.map(displayKey).join(', ')}` : 'one run per cell';
  const s = t.summary;
  const status = `${s.done}/${s.total} runs done${s.failed ? `, ${s.failed} failed` : ''}${s.total - s.done - s.failed ? `, ${s.total - s.done - s.failed} missing` : ''}`;
  const unshown = t.unshown.map((u) => `${displayKey(u.key)} (${u.values.join(', ')})`);
  const note = unshown.length ? ['', `Also differing between runs (not rows or columns; per run in table.json): ${unshown.join('; ')}.`] : [];
  return [`### ${t.name}: ${t.metrics.join(', ')}${unit}`, '', `${overText}; n = runs with a result. ${status}.`, '', ...lines, ...note, ''].join('\n');
}

export function renderCsv(t: GridTable): string {
  const keys = [...t.rows, ...t.columns];
  const header = [...keys.map((k) => ({ id: k, title: displayKey(k) })), ...['metric', 'mean', 'std', 'n', 'expected', 'failed', 'missing'].map((id) => ({ id, title: id }))];
  const csv = createObjectCsvStringifier({ header });
  const records = t.cells.map((c) => ({ ...c.row, ...c.column, metric: c.metric, mean: c.mean ?? '', std: c.std ?? '', n: c.n, expected: c.expected, failed: c.failed, missing: c.missing }));
  return csv.getHeaderString()! + csv.stringifyRecords(records);
}

export function renderJson(t: GridTable): string {
  return `${JSON.stringify(t, null, 2)}\n`;
}

/** Write table.md, table.csv and table.json into the results directory. */
export function writeTables(dir: string, t: GridTable = buildTable(dir)): { md: string; csv: string; json: string } {
  const paths = { md: join(dir, 'table.md'), csv: join(dir, 'table.csv'), json: join(dir, 'table.json') };
  writeFileAtomic(paths.md, renderMarkdown(t));
  writeFileAtomic(paths.csv, renderCsv(t));
  writeFileAtomic(paths.json, renderJson(t));
  return paths;
}
