// Expanding a spec into runs: the cartesian product of the axes minus the excluded combinations,
// plus the included ones, with per-run overrides applied; every run fully resolved (the defaults
// of `advrun train` and `advrun eval` filled in) so that its id, a hash of that resolved
// configuration, is the same however the spec spells a value ("8/255" or 0.0313725...).

import { closest } from 'fastest-levenshtein';
import { defaultRandomStart } from '../attacks/index.js';
import { DATASET_NAMES } from '../data/index.js';
import { archNames, parseActivation } from '../models/index.js';
import { parseFraction, parseNumberList, resolveTrainConfig, type TrainConfig } from '../train/config.js';
import { sha256Hex } from '../util/hash.js';
import { UserError } from '../util/errors.js';
import { displayKey, kindOf, type Flat, type GridSpec } from './spec.js';

export interface EvalConfig {
  checkpoint: 'final' | 'best';
  dataset?: string;
  dataDir?: string;
  classes?: string;
  split: 'test' | 'train' | 'val';
  limit?: number;
  attack: string;
  eps: number;
  norm: 'linf' | 'l2';
  steps?: number;
  stepSize?: number;
  randomStart: boolean;
  restarts: number;
  nQueries?: number;
  seed: number;
  batchSize: number;
}

export interface PlannedRun {
  /** Position in the plan (the Slurm array index). */
  index: number;
  /** Hash of the resolved train + eval configuration: the run's directory name. */
  id: string;
  /** The keys that vary across the grid, formatted for people (e.g. eps: "8/255"). */
  label: Record<string, string>;
  /** Resolved values of every key (train keys and eval.<key>), for matching and table cells. */
  flat: Flat;
  train: TrainConfig;
  eval: EvalConfig | null;
}

export interface GridPlan {
  spec: GridSpec;
  runs: PlannedRun[];
  /** Runs that resolved to an identical configuration as an earlier one and were merged into it. */
  duplicates: number;
}

// randomStart's default depends on the attack (defaultRandomStart), so it is resolved in resolveEval.
const EVAL_DEFAULTS = { checkpoint: 'final', split: 'test', attack: 'pgd', norm: 'linf', restarts: 1, seed: 0, batchSize: 256 } as const;

/** JSON with sorted keys and no undefined values: the same config always hashes the same. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A run's id. Threads are left out: they change how fast a run goes, not what it computes. */
export function runId(train: TrainConfig, ev: EvalConfig | null): string {
  const { threads: _threads, ...t } = train;
  return sha256Hex(canonicalJson({ train: t, eval: ev })).slice(0, 12);
}

function cartesian(axes: Record<string, unknown[]>): Flat[] {
  let out: Flat[] = [{}];
  for (const [k, values] of Object.entries(axes)) out = out.flatMap((partial) => values.map((v) => ({ ...partial, [k]: v })));
  return out;
}

/** Include entries may hold lists: each such entry is a small grid of its own. */
function expandEntry(entry: Flat): Flat[] {
  const lists: Record<string, unknown[]> = {};
  const scalars: Flat = {};
  for (const [k, v] of Object.entries(entry)) if (Array.isArray(v)) lists[k] = v; else scalars[k] = v;
  return cartesian(lists).map((c) => ({ ...scalars, ...c }));
}

/** A spec value as the resolved configuration holds it (fractions as numbers, text as text). */
function normalise(key: string, v: unknown): unknown {
  const kind = kindOf(key);
  if (kind === 'fraction') return parseFraction(v as string | number, displayKey(key));
  if (kind === 'string' && typeof v === 'number') return String(v);
  return v;
}

const same = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a)) : a === b);

/**
 * Whether a run's resolved values satisfy a condition; a list in the condition means any of. For a
 * list-valued setting (milestones, mean, std) the value is written as on the command line ("4,6") or as a
 * list of numbers ([4, 6]); a list of such strings is any of them.
 */
function matches(flat: Flat, cond: Flat): boolean {
  return Object.entries(cond).every(([k, v]) => {
    const actual = flat[k];
    if (Array.isArray(actual)) {
      const options = Array.isArray(v) && !v.every((x) => typeof x === 'number') ? v : [v];
      return options.some((x) => canonicalJson(parseNumberList(x as string | number | number[], displayKey(k))) === canonicalJson(actual));
    }
    return (Array.isArray(v) ? v : [v]).some((x) => same(actual, normalise(k, x)));
  });
}

function resolveEval(raw: Flat, train: TrainConfig): EvalConfig {
  const e = { ...EVAL_DEFAULTS, ...raw } as Record<string, unknown>;
  e.randomStart ??= defaultRandomStart(String(e.attack));
  // Unless told otherwise, a run is attacked with the budget it was trained for.
  const eps = raw.eps === undefined ? (train.eps > 0 ? train.eps : 0.1) : parseFraction(raw.eps as string | number, 'eval.eps');
  const stepSize = raw.stepSize === undefined ? undefined : parseFraction(raw.stepSize as string | number, 'eval.step-size');
  if (e.norm === 'linf' && !(eps >= 0 && eps <= 1)) throw new UserError(`eval.eps ${eps} is outside the data range [0, 1]`);
  if (!(eps >= 0)) throw new UserError(`eval.eps must be >= 0, got ${eps}`);
  for (const k of ['limit', 'steps', 'restarts', 'nQueries', 'batchSize'] as const) {
    if (e[k] !== undefined && !((e[k] as number) >= 1)) throw new UserError(`eval.${displayKey(k)} must be a positive integer, got ${e[k]}`);
  }
  for (const k of ['dataset', 'dataDir', 'classes'] as const) if (e[k] !== undefined) e[k] = String(e[k]);
  return { ...(e as unknown as EvalConfig), eps, stepSize };
}

function checkNames(train: TrainConfig): void {
  const archs = archNames();
  if (!archs.includes(train.arch)) throw new UserError(`unknown arch "${train.arch}" (did you mean "${closest(train.arch, archs)}"?)`);
  const builtin = DATASET_NAMES.filter((d) => !d.includes('<'));
  if (!builtin.includes(train.dataset) && !train.dataset.startsWith('folder:')) throw new UserError(`unknown dataset "${train.dataset}" (did you mean "${closest(train.dataset, builtin)}"?)`);
  parseActivation(train.activation);
}

/** Raw spec values -> resolved train and eval configs and the flat view of both. */
function resolveRun(raw: Flat, evaluate: boolean): { train: TrainConfig; eval: EvalConfig | null; flat: Flat } {
  const trainRaw: Flat = {}, evalRaw: Flat = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('eval.')) evalRaw[k.slice(5)] = v;
    else trainRaw[k] = kindOf(k) === 'string' && typeof v === 'number' ? String(v) : v;
  }
  const train = resolveTrainConfig(trainRaw as Partial<TrainConfig>);
  checkNames(train);
  const ev = evaluate ? resolveEval(evalRaw, train) : null;
  const flat: Flat = { ...train };
  delete flat.threads;
  if (ev) for (const [k, v] of Object.entries(ev)) flat[`eval.${k}`] = v;
  return { train, eval: ev, flat };
}

/** Numbers as people write them: k/255 budgets as fractions, others without float noise. */
export function formatValue(v: unknown): string {
  if (typeof v === 'number') {
    const k = v * 255;
    if (v > 0 && v < 1 && Math.abs(k - Math.round(k)) < 1e-9 && Math.round(k) !== 0 && Math.abs(v - Math.round(v * 100) / 100) > 1e-12) return `${Math.round(k)}/255`;
    return String(Number(v.toPrecision(6)));
  }
  return v === undefined || v === null ? '-' : String(v);
}

function describe(raw: Flat): string {
  return Object.entries(raw).map(([k, v]) => `${displayKey(k)}=${formatValue(v)}`).join(' ');
}

/**
 * The raw configurations of every run: product minus excludes, plus includes, with overrides. A grid with no
 * axes is its base run alone, unless it lists includes: then it is just those (as a CI matrix of includes only).
 */
function rawRuns(spec: GridSpec, fail: (where: string, e: unknown) => void): Flat[] {
  const out: Flat[] = [];
  const product = Object.keys(spec.axes).length === 0 && spec.include.length > 0 ? [] : cartesian(spec.axes);
  for (const combo of product) {
    const raw = { ...spec.base, ...combo };
    try {
      const { flat } = resolveRun(raw, spec.evaluate);
      if (!spec.exclude.some((cond) => matches(flat, cond))) out.push(raw);
    } catch (e) {
      fail(describe(combo), e);
    }
  }
  for (const entry of spec.include) for (const combo of expandEntry(entry)) out.push({ ...spec.base, ...combo });
  return out.map((raw) => {
    try {
      const { flat } = resolveRun(raw, spec.evaluate);
      const extra = spec.overrides.filter((o) => matches(flat, o.match)).map((o) => o.set);
      return Object.assign({}, raw, ...extra) as Flat;
    } catch (e) {
      fail(describe(raw), e);
      return raw;
    }
  });
}

/** The keys whose resolved values differ between runs, in a stable order (axes first). */
function varyingKeys(spec: GridSpec, runs: { flat: Flat }[]): string[] {
  const keys = new Set<string>([...Object.keys(spec.axes), ...runs.flatMap((r) => Object.keys(r.flat))]);
  return [...keys].filter((k) => runs.some((r) => canonicalJson(r.flat[k]) !== canonicalJson(runs[0]!.flat[k])));
}

/** Every cell of the table must differ only in the keys aggregated over, or the mean is meaningless. */
function checkTableCells(spec: GridSpec, runs: PlannedRun[], varying: string[]): void {
  const { rows, columns, over } = spec.table;
  const cellKeys = [...rows, ...columns];
  const first = new Map<string, PlannedRun>();
  for (const r of runs) {
    const cell = canonicalJson(cellKeys.map((k) => r.flat[k]));
    const other = first.get(cell);
    if (!other) { first.set(cell, r); continue; }
    const diff = varying.find((k) => !over.includes(k) && canonicalJson(r.flat[k]) !== canonicalJson(other.flat[k]));
    if (diff) {
      throw new UserError(`grid spec ${spec.source}: table: runs #${other.index} and #${r.index} fall in the same cell but differ in ${displayKey(diff)}; add "${displayKey(diff)}" to table rows, columns or over`);
    }
  }
}

/** Expand a validated spec into its runs. Throws a UserError naming the first run that does not resolve. */
export function expandGrid(spec: GridSpec): GridPlan {
  const problems: string[] = [];
  const fail = (where: string, e: unknown) => {
    if (!(e instanceof UserError)) throw e;
    problems.push(`run ${where || '(base)'}: ${e.message}`);
  };
  const resolved: { train: TrainConfig; eval: EvalConfig | null; flat: Flat; id: string }[] = [];
  const seen = new Set<string>();
  let duplicates = 0;
  for (const raw of rawRuns(spec, fail)) {
    try {
      const r = resolveRun(raw, spec.evaluate);
      const id = runId(r.train, r.eval);
      if (seen.has(id)) { duplicates++; continue; }
      seen.add(id);
      resolved.push({ ...r, id });
    } catch (e) {
      fail(describe(raw), e);
    }
  }
  if (problems.length) throw new UserError(`grid spec ${spec.source}: ${[...new Set(problems)].slice(0, 4).join('; ')}`);
  if (!resolved.length) throw new UserError(`grid spec ${spec.source}: the grid has no runs (every combination is excluded)`);
  const varying = varyingKeys(spec, resolved);
  const runs = resolved.map((r, index): PlannedRun => ({
    index, id: r.id, label: Object.fromEntries(varying.map((k) => [k, formatValue(r.flat[k])])), flat: r.flat, train: r.train, eval: r.eval,
  }));
  checkTableCells(spec, runs, varying);
  return { spec, runs, duplicates };
}

export function labelText(label: Record<string, string>): string {
  return Object.entries(label).map(([k, v]) => `${displayKey(k)}=${v}`).join(' ');
}
