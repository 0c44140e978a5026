// Grid spec files: what to sweep, how to evaluate, which table to build, where to run. The whole
// file is validated before anything starts, so a typo never costs half a grid: every unknown key
// is reported with the nearest valid one, every value with the type it should have.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { closest } from 'fastest-levenshtein';
import YAML from 'yaml';
import { ATTACK_NAMES } from '../attacks/index.js';
import { SMOOTH_BACKWARD, TRAIN_KEYS } from '../train/config.js';
import { DECAY_SCOPES } from '../train/optimizer.js';
import { UserError } from '../util/errors.js';

export { camel, kebab } from '../train/config.js';
import { camel, kebab } from '../train/config.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';

/** Value kinds checked up front; 'fraction' is a number or a text like "8/255". */
type Kind = 'int' | 'number' | 'fraction' | 'string' | 'boolean' | 'any' | readonly string[];

const TRAIN_KINDS: Record<string, Kind> = {
  arch: 'string', width: 'int', depth: 'int', activation: 'string', dataset: 'string', dataDir: 'string', imageSize: 'int', inputResize: 'int', mean: 'string', std: 'string', classes: 'string',
  valSplit: 'number', limit: 'int', augment: 'boolean', method: 'string', epochs: 'int', batchSize: 'int', lr: 'number',
  schedule: 'string', milestones: 'string', warmup: 'number', momentum: 'number', nesterov: 'boolean', weightDecay: 'number', weightDecayScope: [...DECAY_SCOPES], labelSmoothing: 'number',
  eps: 'fraction', alpha: 'fraction', steps: 'int', randomStartProb: 'number', beta: 'number', valSteps: 'int', valLimit: 'int', seed: 'int', ep: [...EXECUTION_PROVIDERS],
  init: 'string', lambda: 'number', rho: 'number', smoothBackward: [...SMOOTH_BACKWARD], smoothAlpha: 'number', saveEvery: 'int',
};

/** The options of `advrun eval` a grid can set, plus which checkpoint to evaluate. */
export const EVAL_KINDS: Record<string, Kind> = {
  checkpoint: ['final', 'best'], dataset: 'string', dataDir: 'string', classes: 'string', split: ['test', 'train', 'val'], limit: 'int',
  attack: [...ATTACK_NAMES, 'none'], eps: 'fraction', norm: ['linf', 'l2'], steps: 'int', stepSize: 'fraction', randomStart: 'boolean',
  restarts: 'int', nQueries: 'int', seed: 'int', batchSize: 'int',
};

/** Threads are the scheduler's business (--threads-per-run), so a spec cannot pin them per run. */
export const SCHEDULER_OWNED = new Set(['threads']);
export const trainKeys = (): string[] => TRAIN_KEYS.map(camel).filter((k) => !SCHEDULER_OWNED.has(k));
const evalKeys = () => Object.keys(EVAL_KINDS).map((k) => `eval.${k}`);
/** Every key a run's flat configuration can hold: train keys and eval.<key>. */
export const runKeys = (): string[] => [...trainKeys(), ...evalKeys()];

export const METRICS = ['robust_acc', 'clean_acc', 'val_robust_acc', 'val_clean_acc', 'best_epoch', 'train_seconds'] as const;
export type Metric = (typeof METRICS)[number];

export interface TableSpec {
  rows: string[];
  columns: string[];
  metrics: Metric[];
  /** Keys aggregated over (mean ± std, n). */
  over: string[];
  digits: number;
}

export interface ExecutorSpec {
  kind: 'local' | 'slurm';
  workers?: number;
  threadsPerRun?: number;
  retries?: number;
  partition?: string;
  time?: string;
  gpus?: number | string;
  cpusPerTask?: number;
  mem?: string;
  maxParallel?: number;
  jobName?: string;
  /** Extra sbatch options, one per line ("--qos=high" or "#SBATCH --qos=high"). */
  sbatch: string[];
}

export type Flat = Record<string, unknown>;

export interface GridSpec {
  name: string;
  description?: string;
  /** Train keys and eval.<key>, camelCase. */
  base: Flat;
  axes: Record<string, unknown[]>;
  include: Flat[];
  exclude: Flat[];
  overrides: { match: Flat; set: Flat }[];
  /** Whether runs are evaluated after training (the `eval:` section was given and is not null). */
  evaluate: boolean;
  table: TableSpec;
  executor: ExecutorSpec;
  /** The file it came from, for messages. */
  source: string;
  /** The spec as written (parsed YAML/JSON): Slurm array tasks re-read exactly this. */
  raw: unknown;
}

const TOP = ['name', 'description', 'base', 'axes', 'include', 'exclude', 'overrides', 'eval', 'table', 'executor'];
const TABLE = ['rows', 'columns', 'metric', 'over', 'digits'];
const EXECUTOR: Record<string, Kind> = {
  kind: ['local', 'slurm'], workers: 'int', threadsPerRun: 'int', retries: 'int', partition: 'string', time: 'string', gpus: 'any',
  cpusPerTask: 'int', mem: 'string', maxParallel: 'int', jobName: 'string', sbatch: 'any',
};

/** The words people use for sbatch's --cpus-per-task and --mem. */
const EXECUTOR_ALIASES: Record<string, string> = { cpus: 'cpusPerTask', memory: 'mem' };

/** Collects every problem in a spec, then reports them together on one line. */
class Problems {
  readonly list: string[] = [];
  constructor(readonly source: string) {}
  add(where: string, msg: string): void { this.list.push(`${where}: ${msg}`); }
  unknown(where: string, key: string, valid: readonly string[]): void {
    const hint = valid.length ? ` (did you mean "${closest(key, [...valid])}"?)` : '';
    this.add(where, `unknown key "${key}"${hint}`);
  }
  throwIfAny(): void {
    if (!this.list.length) return;
    const more = this.list.length > 6 ? `; and ${this.list.length - 6} more` : '';
    throw new UserError(`grid spec ${this.source}: ${this.list.slice(0, 6).join('; ')}${more}`);
  }
}

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

function checkKind(kind: Kind, v: unknown): string | null {
  if (Array.isArray(kind)) return kind.includes(v as string) ? null : `must be one of ${kind.join(', ')}, got ${JSON.stringify(v)}`;
  switch (kind) {
    case 'int': return Number.isInteger(v) ? null : `must be an integer, got ${JSON.stringify(v)}`;
    case 'number': return typeof v === 'number' && Number.isFinite(v) ? null : `must be a number, got ${JSON.stringify(v)}`;
    case 'fraction': return (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && /^\s*[0-9.eE+-]+\s*(\/\s*[0-9.eE+-]+)?\s*$/.test(v)) ? null : `must be a number or a fraction like 8/255, got ${JSON.stringify(v)}`;
    case 'string': return typeof v === 'string' || typeof v === 'number' ? null : `must be text, got ${JSON.stringify(v)}`;
    case 'boolean': return typeof v === 'boolean' ? null : `must be true or false, got ${JSON.stringify(v)}`;
    default: return null;
  }
}

export function kindOf(key: string): Kind {
  if (key.startsWith('eval.')) return EVAL_KINDS[key.slice(5)] ?? 'any';
  return TRAIN_KINDS[key] ?? 'any';
}

/** Spec key (kebab or camel, train or eval.<key>) -> canonical camelCase run key, or null if unknown. */
function runKey(raw: string, p: Problems, where: string, written = raw): string | null {
  const key = raw.startsWith('eval.') ? `eval.${camel(raw.slice(5))}` : camel(raw);
  if (runKeys().includes(key)) return key;
  if (SCHEDULER_OWNED.has(key)) p.add(where, `"${written}" is set by the scheduler (use --threads-per-run or executor.threads-per-run)`);
  else if (!key.startsWith('eval.')) p.unknown(where, written, runKeys().map(displayKey));
  else {
    // Compared without the prefix; suggested the way the user wrote it (inside eval: or as eval.<key>).
    const near = kebab(closest(camel(written.replace(/^eval\./, '')), Object.keys(EVAL_KINDS)));
    p.add(where, `unknown key "${written}" (did you mean "${written.startsWith('eval.') ? `eval.${near}` : near}"?)`);
  }
  return null;
}

/** How a key is written back to the user: kebab-case, like the command-line options. */
export const displayKey = (k: string) => (k.startsWith('eval.') ? `eval.${kebab(k.slice(5))}` : kebab(k));

/** A mapping of run keys to values; list values are allowed where the caller sweeps them. */
function flatMap(v: unknown, p: Problems, where: string, opts: { lists: boolean; prefix?: string }): Flat {
  if (v === undefined || v === null) return {};
  if (!isMap(v)) { p.add(where, 'must be a mapping of key: value'); return {}; }
  const out: Flat = {};
  for (const [rawKey, value] of Object.entries(v)) {
    const key = runKey(opts.prefix ? `${opts.prefix}${rawKey}` : rawKey, p, where, rawKey);
    if (!key) continue;
    const values = Array.isArray(value) ? value : [value];
    if (Array.isArray(value) && !opts.lists) { p.add(`${where}.${rawKey}`, 'must be a single value (sweep it under axes)'); continue; }
    if (Array.isArray(value) && value.length === 0) { p.add(`${where}.${rawKey}`, 'must not be an empty list'); continue; }
    for (const x of values) {
      const err = checkKind(kindOf(key), x);
      if (err) p.add(`${where}.${rawKey}`, err);
    }
    out[key] = value;
  }
  return out;
}

function listOf(v: unknown, p: Problems, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) { p.add(where, 'must be a list'); return []; }
  return v;
}

function parseAxes(v: unknown, p: Problems): Record<string, unknown[]> {
  const axes = flatMap(v, p, 'axes', { lists: true });
  const out: Record<string, unknown[]> = {};
  for (const [k, vals] of Object.entries(axes)) {
    if (!Array.isArray(vals)) p.add(`axes.${displayKey(k)}`, 'must be a list of values to sweep');
    else out[k] = vals;
  }
  return out;
}

function parseOverrides(v: unknown, p: Problems): GridSpec['overrides'] {
  return listOf(v, p, 'overrides').map((entry, i) => {
    const where = `overrides[${i}]`;
    if (!isMap(entry)) { p.add(where, 'must be a mapping with match: and set:'); return { match: {}, set: {} }; }
    for (const k of Object.keys(entry)) if (k !== 'match' && k !== 'set') p.unknown(where, k, ['match', 'set']);
    if (!isMap(entry.match) || !isMap(entry.set)) p.add(where, 'needs both match: {key: value} and set: {key: value}');
    return { match: flatMap(entry.match, p, `${where}.match`, { lists: true }), set: flatMap(entry.set, p, `${where}.set`, { lists: false }) };
  });
}

function stringList(v: unknown, p: Problems, where: string): string[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.some((x) => typeof x !== 'string')) p.add(where, 'must be a key or a list of keys');
  return list.filter((x): x is string => typeof x === 'string');
}

function parseTable(v: unknown, p: Problems, evaluate: boolean, axes: string[]): TableSpec {
  const t = v === undefined || v === null ? {} : v;
  if (!isMap(t)) { p.add('table', 'must be a mapping (rows, columns, metric, over)'); return { rows: [], columns: [], metrics: [], over: [], digits: 1 }; }
  for (const k of Object.keys(t)) if (!TABLE.includes(k)) p.unknown('table', k, TABLE);
  const keyList = (name: string) => stringList(t[name], p, `table.${name}`).map((k) => runKey(k, p, `table.${name}`)).filter((k): k is string => !!k);
  // Defaults: seeds are averaged over, the first other axis makes the rows, the rest the columns.
  const given = { rows: t.rows === undefined ? null : keyList('rows'), columns: t.columns === undefined ? null : keyList('columns') };
  const placed = [...(given.rows ?? []), ...(given.columns ?? [])];
  const over = t.over === undefined ? (axes.includes('seed') && !placed.includes('seed') ? ['seed'] : []) : keyList('over');
  const rows = given.rows ?? axes.filter((a) => !over.includes(a) && !placed.includes(a)).slice(0, 1);
  const columns = given.columns ?? axes.filter((a) => !over.includes(a) && !rows.includes(a));
  const metrics = stringList(t.metric ?? (evaluate ? 'robust_acc' : 'val_robust_acc'), p, 'table.metric').filter((m) => {
    if ((METRICS as readonly string[]).includes(m)) return true;
    p.add('table.metric', `unknown metric "${m}" (did you mean "${closest(m, [...METRICS])}"?)`);
    return false;
  }) as Metric[];
  if (!evaluate) for (const m of metrics) if (m === 'robust_acc' || m === 'clean_acc') p.add('table.metric', `"${m}" comes from the evaluation, but the spec has no eval: section (use val_${m} or add eval:)`);
  const seen = new Map<string, string>();
  for (const [part, keys] of [['rows', rows], ['columns', columns], ['over', over]] as const) {
    for (const k of keys) {
      if (seen.has(k)) p.add(`table.${part}`, `"${displayKey(k)}" is already in table.${seen.get(k)}`);
      seen.set(k, part);
    }
  }
  const digits = t.digits ?? 1;
  if (!Number.isInteger(digits) || (digits as number) < 0 || (digits as number) > 6) p.add('table.digits', 'must be an integer from 0 to 6');
  return { rows, columns, metrics, over, digits: digits as number };
}

function parseExecutor(v: unknown, p: Problems): ExecutorSpec {
  const e = v === undefined || v === null ? {} : typeof v === 'string' ? { kind: v } : v;
  if (!isMap(e)) { p.add('executor', 'must be local, slurm, or a mapping with kind: and options'); return { kind: 'local', sbatch: [] }; }
  const out: Record<string, unknown> = { kind: 'local', sbatch: [] };
  for (const [raw, value] of Object.entries(e)) {
    const k = EXECUTOR_ALIASES[camel(raw)] ?? camel(raw);
    if (!(k in EXECUTOR)) { p.unknown('executor', raw, Object.keys(EXECUTOR).map(kebab)); continue; }
    const err = checkKind(EXECUTOR[k]!, value);
    if (err) p.add(`executor.${raw}`, err);
    out[k] = value;
  }
  out.sbatch = stringList(out.sbatch, p, 'executor.sbatch');
  for (const k of ['workers', 'threadsPerRun', 'cpusPerTask', 'maxParallel'] as const) if (out[k] !== undefined && (out[k] as number) < 1) p.add(`executor.${kebab(k)}`, 'must be at least 1');
  if (out.retries !== undefined && (out.retries as number) < 0) p.add('executor.retries', 'must be 0 or more');
  return out as unknown as ExecutorSpec;
}

/** Validate a parsed spec object (from YAML or JSON). Throws one UserError listing every problem. */
export function validateSpec(obj: unknown, source = '<spec>'): GridSpec {
  const p = new Problems(source);
  if (!isMap(obj)) { p.add('top level', 'must be a mapping with base:, axes:, eval:, table:'); p.throwIfAny(); }
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!TOP.includes(k)) p.unknown('top level', k, TOP);
  if (o.name !== undefined && typeof o.name !== 'string') p.add('name', 'must be text');
  const base = flatMap(o.base, p, 'base', { lists: false });
  for (const k of Object.keys(base)) if (k.startsWith('eval.')) p.add('base', `"${displayKey(k)}" belongs in the eval: section`);
  const evaluate = o.eval !== null && o.eval !== undefined && o.eval !== false;
  const evalBase = evaluate ? flatMap(o.eval, p, 'eval', { lists: false, prefix: 'eval.' }) : {};
  const axes = parseAxes(o.axes, p);
  const include = listOf(o.include, p, 'include').map((e, i) => flatMap(e, p, `include[${i}]`, { lists: true }));
  const exclude = listOf(o.exclude, p, 'exclude').map((e, i) => flatMap(e, p, `exclude[${i}]`, { lists: true }));
  for (const [i, e] of exclude.entries()) if (!Object.keys(e).length) p.add(`exclude[${i}]`, 'is empty (it would exclude every run)');
  const overrides = parseOverrides(o.overrides, p);
  if (!evaluate) {
    const sections: [string, string[]][] = [
      ['axes', Object.keys(axes)], ['include', include.flatMap(Object.keys)], ['exclude', exclude.flatMap(Object.keys)],
      ['overrides', overrides.flatMap((o) => [...Object.keys(o.match), ...Object.keys(o.set)])],
    ];
    for (const [where, keys] of sections) for (const k of new Set(keys)) if (k.startsWith('eval.')) p.add(where, `"${displayKey(k)}" needs an eval: section`);
  }
  const table = parseTable(o.table, p, evaluate, Object.keys(axes));
  const executor = parseExecutor(o.executor, p);
  p.throwIfAny();
  return {
    name: (o.name as string | undefined) ?? 'grid', description: o.description as string | undefined,
    base: { ...base, ...evalBase }, axes, include, exclude, overrides, evaluate, table, executor, source, raw: obj,
  };
}

/** Read and validate a YAML or JSON spec file. */
export function loadSpec(path: string): GridSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`cannot read grid spec ${path}`);
  }
  const json = /\.json$/i.test(path);
  let obj: unknown;
  try {
    obj = json ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new UserError(`grid spec ${path} is not valid ${json ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateSpec(obj, resolve(path));
}
