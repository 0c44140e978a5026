// The files of a grid's results directory and what they say about each run. Everything the status
// and table commands report is read back from here, so it is the same whichever machine (or Slurm
// node) ran the runs, and survives any crash of the scheduler.
//
//   DIR/grid.json            the expanded plan (every run's id and resolved config)
//   DIR/grid-spec.json       the validated spec, which Slurm array tasks run from
//   DIR/slurm.json           submitted Slurm jobs (Slurm executor only)
//   DIR/runs/<id>/run.json   the run's resolved config and label
//   DIR/runs/<id>/{config.json,metrics.jsonl,checkpoint*.safetensors,result.json}  from advrun train
//   DIR/runs/<id>/eval.json  from advrun eval
//   DIR/runs/<id>/attempts.json, train.log, eval.log, lock

import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runFiles } from '../train/run-files.js';
import { UserError } from '../util/errors.js';
import type { GridPlan, PlannedRun } from './expand.js';
import { lockHeld, readLock } from './lock.js';
import type { GridSpec } from './spec.js';

export const GRID_FORMAT = 'advrun-grid/1';

export interface GridFile {
  format: typeof GRID_FORMAT;
  name: string;
  spec: GridSpec;
  runs: PlannedRun[];
}

export function gridPaths(dir: string) {
  const d = resolve(dir);
  return { dir: d, grid: join(d, 'grid.json'), spec: join(d, 'grid-spec.json'), slurm: join(d, 'slurm.json'), slurmDir: join(d, 'slurm'), runs: join(d, 'runs') };
}

/** A grid run's directory: what `advrun train --out` writes there (runFiles), plus the scheduler's own files. */
export function runPaths(dir: string, id: string) {
  const train = runFiles(join(resolve(dir), 'runs', id));
  const d = train.dir;
  return {
    ...train, run: join(d, 'run.json'), eval: join(d, 'eval.json'), attempts: join(d, 'attempts.json'), lock: join(d, 'lock'),
    trainLog: join(d, 'train.log'), evalLog: join(d, 'eval.log'), trainConfig: join(d, 'train-config.json'),
  };
}

export function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export function readGridFile(dir: string): GridFile {
  const p = gridPaths(dir);
  const g = readJson<GridFile>(p.grid);
  if (!g) throw new UserError(`${p.dir} holds no grid (no readable grid.json); run \`advrun grid run SPEC --out ${dir}\` first`);
  if (g.format !== GRID_FORMAT) throw new UserError(`${p.grid} has format ${JSON.stringify(g.format)}, expected ${GRID_FORMAT}`);
  return g;
}

/** The plan as stored; the spec's source path is left out, so every copy of a spec yields the same file. */
export function gridFileFor(plan: GridPlan): GridFile {
  const { source: _source, ...spec } = plan.spec;
  return { format: GRID_FORMAT, name: plan.spec.name, spec: { ...spec, source: '' }, runs: plan.runs };
}

export interface Attempt {
  attempt: number;
  hostname: string;
  pid: number;
  started: string;
  ended: string | null;
  /** null while running; 'abandoned': its scheduler died without recording how it ended (found by a later attempt). */
  outcome: 'ok' | 'failed' | 'interrupted' | 'abandoned' | null;
  /** Whether training continued from an existing run directory (advrun train --resume). */
  resumed: boolean;
  stages: string[];
  error: string | null;
  seconds: number | null;
}

export type RunStatus = 'done' | 'running' | 'failed' | 'interrupted' | 'pending';

export interface RunState {
  status: RunStatus;
  attempts: Attempt[];
  trained: boolean;
  evaluated: boolean;
  /** The last failure's message (failed runs). */
  error: string | null;
  stage: string | null;
}

/** A run's state, from its files alone. */
export function runState(dir: string, run: Pick<PlannedRun, 'id' | 'eval'>): RunState {
  const p = runPaths(dir, run.id);
  const attempts = readJson<Attempt[]>(p.attempts) ?? [];
  const trained = existsSync(p.result);
  const evaluated = existsSync(p.eval);
  const last = attempts[attempts.length - 1];
  const base = { attempts, trained, evaluated, error: null, stage: null };
  if (trained && (evaluated || !run.eval)) return { ...base, status: 'done' };
  if (lockHeld(p.lock)) return { ...base, status: 'running', stage: readLock(p.lock)?.stage ?? null };
  if (last?.outcome === 'failed') return { ...base, status: 'failed', error: last.error };
  if (last || existsSync(p.config)) return { ...base, status: 'interrupted' };
  return { ...base, status: 'pending' };
}
