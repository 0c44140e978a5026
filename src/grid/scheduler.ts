// The scheduler behind `advrun grid run`: prepares the results directory, then either runs the
// unfinished runs in a local pool of N processes at a time, or submits them to Slurm as one job
// array. Either way each run goes through executeRun (lock, skip, resume, retries), so two
// schedulers, or a scheduler and a Slurm array, can share a directory.

import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { writeFileAtomic } from '../util/fs.js';
import { UserError } from '../util/errors.js';
import { canonicalJson, expandGrid, type GridPlan, type PlannedRun } from './expand.js';
import { gridFileFor, gridPaths, readJson, runState, type GridFile, type RunStatus } from './rundir.js';
import { queuedRunIds, readSlurmFile, slurmActive, submitSlurm, type SlurmSubmission } from './slurm.js';
import type { GridSpec } from './spec.js';
import { writeTables } from './table.js';
import { executeRun, type RunOutcome, type RunReport } from './worker.js';

export interface RunGridOptions {
  /** Results directory. */
  out: string;
  executor?: 'local' | 'slurm';
  /** Runs at once (local); the array's throttle (Slurm) when the spec sets none. */
  workers?: number;
  /** ONNX Runtime threads per run (default: the machine's threads split between the workers). */
  threadsPerRun?: number;
  retries?: number;
  /** Slurm: wait for the array to finish (default true here; the CLI waits only with --wait). */
  wait?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: GridEvent) => void;
  cli?: string;
}

export type GridEvent =
  | { type: 'plan'; total: number; done: number; workers: number; threadsPerRun: number }
  | { type: 'start'; run: PlannedRun }
  | { type: 'finish'; run: PlannedRun; report: RunReport }
  | { type: 'submitted'; submission: SlurmSubmission }
  | { type: 'poll'; counts: Record<RunStatus, number> };

export interface GridSummary {
  dir: string;
  name: string;
  executor: 'local' | 'slurm';
  total: number;
  /** Final state of every run, from the files, after this invocation. */
  counts: Record<RunStatus, number>;
  /** What this invocation did with each run it looked at. */
  outcomes: Record<RunOutcome, string[]>;
  failures: { id: string; index: number; error: string | null }[];
  submission: SlurmSubmission | null;
  tables: { md: string; csv: string; json: string } | null;
  seconds: number;
}

/** Write grid.json and grid-spec.json (unchanged files are left alone, so concurrent schedulers agree). */
/**
 * The results directory for `plan`: runs/, and grid.json + grid-spec.json describing the grid. With
 * `keepGrid` (a Slurm task running one run of its submission's spec) those two are written only when
 * missing: a task queued before the grid was edited must not put the older grid back.
 */
export function prepareDir(plan: GridPlan, out: string, o: { keepGrid?: boolean } = {}): void {
  const p = gridPaths(out);
  mkdirSync(p.runs, { recursive: true });
  if (o.keepGrid && existsSync(p.grid) && existsSync(p.spec)) return;
  const file = gridFileFor(plan);
  const old = readJson<GridFile>(p.grid);
  if (!old || canonicalJson(old) !== canonicalJson(file)) writeFileAtomic(p.grid, JSON.stringify(file, null, 2));
  const spec = JSON.stringify(plan.spec.raw, null, 2);
  if (canonicalJson(readJson(p.spec)) !== canonicalJson(plan.spec.raw)) writeFileAtomic(p.spec, spec);
}

export function countStates(out: string, runs: PlannedRun[]): Record<RunStatus, number> {
  const counts: Record<RunStatus, number> = { done: 0, running: 0, failed: 0, interrupted: 0, pending: 0 };
  for (const r of runs) counts[runState(out, r).status]++;
  return counts;
}

export function defaultThreads(workers: number): number {
  return Math.max(1, Math.floor(availableParallelism() / workers));
}

async function runLocal(plan: GridPlan, o: RunGridOptions, workers: number, threads: number, retries: number, outcomes: GridSummary['outcomes']): Promise<void> {
  const queue = plan.runs.filter((r) => {
    if (runState(o.out, r).status !== 'done') return true;
    outcomes.skipped.push(r.id);
    return false;
  });
  o.onEvent?.({ type: 'plan', total: plan.runs.length, done: plan.runs.length - queue.length, workers, threadsPerRun: threads });
  const worker = async () => {
    for (let run = queue.shift(); run && !o.signal?.aborted; run = queue.shift()) {
      o.onEvent?.({ type: 'start', run });
      const report = await executeRun(run, { out: o.out, threads, retries, signal: o.signal, cli: o.cli });
      outcomes[report.outcome].push(run.id);
      o.onEvent?.({ type: 'finish', run, report });
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, Math.max(1, queue.length)) }, worker));
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((done) => {
  const t = setTimeout(done, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); done(); }, { once: true });
});

async function runSlurm(plan: GridPlan, o: RunGridOptions, threads: number, retries: number, outcomes: GridSummary['outcomes']): Promise<SlurmSubmission | null> {
  // Runs an earlier submission still has in the queue are not submitted again.
  const queued = queuedRunIds(readSlurmFile(o.out).jobs);
  const todo = plan.runs.filter((r) => {
    if (queued.has(r.id)) { outcomes.held.push(r.id); return false; }
    if (runState(o.out, r).status !== 'done') return true;
    outcomes.skipped.push(r.id);
    return false;
  });
  o.onEvent?.({ type: 'plan', total: plan.runs.length, done: outcomes.skipped.length, workers: o.workers ?? 0, threadsPerRun: threads });
  if (!todo.length) return null;
  const executor = { ...plan.spec.executor, maxParallel: plan.spec.executor.maxParallel ?? o.workers };
  const submission = submitSlurm(plan, { out: o.out, indices: todo.map((r) => r.index), threadsPerRun: threads, retries, executor });
  o.onEvent?.({ type: 'submitted', submission });
  if (o.wait === false) return submission;
  const jobs = readSlurmFile(o.out).jobs.filter((j) => j.job_id === submission.job_id);
  while (!o.signal?.aborted && slurmActive(jobs)) {
    o.onEvent?.({ type: 'poll', counts: countStates(o.out, plan.runs) });
    await sleep(1000, o.signal);
  }
  return submission;
}

/** Run (or submit) a grid: the programmatic `advrun grid run`. Accepts a spec or an expanded plan. */
export async function runGrid(specOrPlan: GridSpec | GridPlan, o: RunGridOptions): Promise<GridSummary> {
  const t0 = Date.now();
  const plan = 'runs' in specOrPlan ? specOrPlan : expandGrid(specOrPlan);
  const exec = plan.spec.executor;
  const executor = o.executor ?? exec.kind;
  const workers = o.workers ?? exec.workers ?? 1;
  if (!(Number.isInteger(workers) && workers >= 1)) throw new UserError(`--workers must be a positive integer, got ${workers}`);
  const threads = o.threadsPerRun ?? exec.threadsPerRun ?? (executor === 'slurm' ? exec.cpusPerTask ?? 1 : defaultThreads(workers));
  const retries = o.retries ?? exec.retries ?? 0;
  if (!(Number.isInteger(threads) && threads >= 1)) throw new UserError(`--threads-per-run must be a positive integer, got ${threads}`);
  if (!(Number.isInteger(retries) && retries >= 0)) throw new UserError(`--retries must be 0 or more, got ${retries}`);
  prepareDir(plan, o.out);
  const outcomes: GridSummary['outcomes'] = { done: [], skipped: [], held: [], failed: [], interrupted: [] };
  let submission: SlurmSubmission | null = null;
  if (executor === 'slurm') submission = await runSlurm(plan, o, threads, retries, outcomes);
  else await runLocal(plan, o, workers, threads, retries, outcomes);
  const counts = countStates(o.out, plan.runs);
  const finished = executor === 'local' || o.wait !== false || !submission;
  const failures = plan.runs.filter((r) => runState(o.out, r).status === 'failed').map((r) => ({ id: r.id, index: r.index, error: runState(o.out, r).error }));
  return {
    dir: gridPaths(o.out).dir, name: plan.spec.name, executor, total: plan.runs.length, counts, outcomes, failures, submission,
    tables: finished ? writeTables(gridPaths(o.out).dir) : null, seconds: (Date.now() - t0) / 1000,
  };
}

/** One run of a grid by index: what each Slurm array task does (`advrun grid run-one`). */
export async function runOne(plan: GridPlan, index: number, o: Omit<RunGridOptions, 'executor' | 'workers' | 'wait'>): Promise<{ run: PlannedRun; report: RunReport }> {
  const run = plan.runs[index];
  if (!Number.isInteger(index) || !run) throw new UserError(`--index ${index} is outside the grid (0-${plan.runs.length - 1})`);
  prepareDir(plan, o.out, { keepGrid: true });
  const threads = o.threadsPerRun ?? plan.spec.executor.threadsPerRun ?? plan.spec.executor.cpusPerTask ?? 1;
  const report = await executeRun(run, { out: o.out, threads, retries: o.retries ?? plan.spec.executor.retries ?? 0, signal: o.signal, cli: o.cli });
  return { run, report };
}
