// Executing one run of a grid: take its lock, train (resuming what an earlier attempt left), then
// evaluate, each as a separate `advrun` process so a crash or a kill of one run never touches the
// scheduler or the other runs. Failed attempts are retried; every attempt is recorded.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import type { EvalConfig, PlannedRun } from './expand.js';
import { RunLock } from './lock.js';
import { readJson, runPaths, runState, type Attempt } from './rundir.js';

export interface ExecuteOptions {
  /** The grid's results directory. */
  out: string;
  /** ONNX Runtime threads for each run (--threads of train and eval). */
  threads: number;
  /** Extra attempts after a failure. */
  retries: number;
  /** Aborting stops the run's child process; the run is left to resume later. */
  signal?: AbortSignal;
  /** The advrun CLI to spawn (default: dist/cli/main.js of this installation). */
  cli?: string;
  /** Called with the child's pid when a stage starts (the kill test uses the lock file instead). */
  onStage?: (run: PlannedRun, stage: string, pid: number | undefined) => void;
}

export type RunOutcome = 'done' | 'skipped' | 'held' | 'failed' | 'interrupted';

export interface RunReport {
  outcome: RunOutcome;
  error: string | null;
  seconds: number;
  resumed: boolean;
}

/** dist/cli/main.js, also when this module runs from src/ (tests importing the TypeScript). */
export function cliPath(): string {
  if (process.env.ADVRUN_CLI) return resolve(process.env.ADVRUN_CLI);
  const sibling = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  return existsSync(sibling) ? sibling : fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
}

function evalArgs(e: EvalConfig, model: string, ep: string, threads: number): string[] {
  const args = ['eval', '--model', model, '--json', '--threads', String(threads), '--ep', ep, '--split', e.split, '--attack', e.attack,
    '--eps', String(e.eps), '--norm', e.norm, '--restarts', String(e.restarts), '--seed', String(e.seed), '--batch-size', String(e.batchSize),
    e.randomStart ? '--random-start' : '--no-random-start'];
  const optional: [string, unknown][] = [['--limit', e.limit], ['--steps', e.steps], ['--step-size', e.stepSize], ['--n-queries', e.nQueries], ['--dataset', e.dataset], ['--data-dir', e.dataDir], ['--classes', e.classes]];
  for (const [flag, v] of optional) if (v !== undefined) args.push(flag, String(v));
  return args;
}

interface StageResult { ok: boolean; stdout: string; error: string | null; interrupted: boolean }

/** The last meaningful line a failed child wrote, for the attempt record. */
function tail(path: string): string {
  try {
    const lines = readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('=='));
    return lines[lines.length - 1] ?? '';
  } catch {
    return '';
  }
}

/**
 * One `advrun` child process. Its stderr streams into the stage's log (appended across attempts:
 * a log is for people, so it is the one file not written atomically); stdout holds its JSON.
 */
function runStage(stage: string, args: string[], log: string, lock: RunLock, o: ExecuteOptions, run: PlannedRun): Promise<StageResult> {
  const fd = openSync(log, 'a');
  writeSync(fd, `== ${stage} ${new Date().toISOString()} ${hostname()} pid ${process.pid}: advrun ${args.join(' ')}\n`);
  return new Promise((done) => {
    const child = spawn(process.execPath, [o.cli ?? cliPath(), ...args], { stdio: ['ignore', 'pipe', fd], env: process.env });
    lock.setChild(child.pid ?? null, stage);
    o.onStage?.(run, stage, child.pid);
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    const abort = () => child.kill('SIGTERM');
    o.signal?.addEventListener('abort', abort);
    let settled = false;
    const finish = (r: StageResult) => {
      if (settled) return; // 'error' (could not spawn) may be followed by 'close'
      settled = true;
      o.signal?.removeEventListener('abort', abort);
      lock.setChild(null, null);
      if (stdout) writeSync(fd, stdout.endsWith('\n') ? stdout : `${stdout}\n`);
      closeSync(fd);
      done(r);
    };
    child.on('error', (e) => finish({ ok: false, stdout, error: `${stage} could not start: ${e.message}`, interrupted: false }));
    child.on('close', (code, signal) => {
      if (code === 0) return finish({ ok: true, stdout, error: null, interrupted: false });
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const last = tail(log);
      finish({ ok: false, stdout, error: `${stage} ${how}${last ? `: ${last}` : ''}`, interrupted: !!o.signal?.aborted });
    });
  });
}

/** Train unless already trained (continuing an interrupted run), then evaluate unless already evaluated. */
async function attempt(run: PlannedRun, lock: RunLock, o: ExecuteOptions, record: Attempt): Promise<StageResult> {
  const p = runPaths(o.out, run.id);
  if (!existsSync(p.result)) {
    const { threads: _t, ...train } = run.train;
    writeFileAtomic(p.trainConfig, JSON.stringify(train, null, 2));
    record.resumed = existsSync(p.config);
    record.stages.push('train');
    const args = ['train', '--config', p.trainConfig, '--out', p.dir, '--threads', String(o.threads), '--json', ...(record.resumed ? ['--resume'] : [])];
    const r = await runStage('train', args, p.trainLog, lock, o, run);
    if (!r.ok) return r;
  }
  if (run.eval && !existsSync(p.eval)) {
    record.stages.push('eval');
    const model = run.eval.checkpoint === 'best' ? p.best : p.checkpoint;
    const r = await runStage('eval', evalArgs(run.eval, model, run.train.ep, o.threads), p.evalLog, lock, o, run);
    if (!r.ok) return r;
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let out: unknown;
    try {
      out = JSON.parse(line);
    } catch {
      return { ok: false, stdout: r.stdout, error: `eval printed no JSON result: ${line.slice(0, 200)}`, interrupted: false };
    }
    writeFileAtomic(p.eval, JSON.stringify({ run_id: run.id, ...(out as object) }, null, 2));
  }
  return { ok: true, stdout: '', error: null, interrupted: false };
}

function saveAttempts(path: string, attempts: Attempt[]): void {
  writeFileAtomic(path, JSON.stringify(attempts, null, 2));
}

/** Run one grid run to completion (or failure) under its lock. Safe to call from any number of processes. */
export async function executeRun(run: PlannedRun, o: ExecuteOptions): Promise<RunReport> {
  const t0 = Date.now();
  const report = (outcome: RunOutcome, error: string | null = null, resumed = false): RunReport => ({ outcome, error, seconds: (Date.now() - t0) / 1000, resumed });
  if (runState(o.out, run).status === 'done') return report('skipped');
  const p = runPaths(o.out, run.id);
  mkdirSync(p.dir, { recursive: true });
  const lock = RunLock.tryAcquire(p.lock);
  if (!lock) return report('held');
  try {
    // Another scheduler may have finished it between the check above and taking the lock.
    if (runState(o.out, run).status === 'done') return report('skipped');
    if (!existsSync(p.run)) writeFileAtomic(p.run, JSON.stringify({ id: run.id, index: run.index, label: run.label, train: run.train, eval: run.eval }, null, 2));
    const attempts = readJson<Attempt[]>(p.attempts) ?? [];
    // We hold the lock, so an attempt still open belongs to a scheduler that was killed (SIGKILL) mid-run.
    for (const a of attempts) if (a.outcome === null) Object.assign(a, { outcome: 'abandoned', error: a.error ?? 'its scheduler stopped without recording an outcome (killed?)' });
    let error: string | null = null;
    let resumed = false;
    for (let k = 0; k <= o.retries; k++) {
      if (o.signal?.aborted) return report('interrupted', 'scheduler stopped', resumed);
      const record: Attempt = { attempt: attempts.length + 1, hostname: hostname(), pid: process.pid, started: new Date().toISOString(), ended: null, outcome: null, resumed: false, stages: [], error: null, seconds: null };
      attempts.push(record);
      saveAttempts(p.attempts, attempts);
      const ta = Date.now();
      const r = await attempt(run, lock, o, record);
      resumed ||= record.resumed;
      Object.assign(record, { ended: new Date().toISOString(), seconds: (Date.now() - ta) / 1000, outcome: r.ok ? 'ok' : r.interrupted ? 'interrupted' : 'failed', error: r.error });
      saveAttempts(p.attempts, attempts);
      if (r.ok) return report('done', null, resumed);
      if (r.interrupted) return report('interrupted', r.error, resumed);
      error = r.error;
    }
    return report('failed', error, resumed);
  } finally {
    lock.release();
  }
}
