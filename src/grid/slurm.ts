// The Slurm executor: the unfinished runs of a grid become one job array (sbatch --array), each
// task running `advrun grid run-one SPEC --index $SLURM_ARRAY_TASK_ID --out DIR` against the shared
// results directory, so skipping, resuming, retries and locks work exactly as with the local pool.
// The queue is read back with squeue (and sacct where accounting is enabled) for `grid status`.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GRAPHS_DIR } from '../cli/train.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import type { GridPlan } from './expand.js';
import { gridPaths, readJson } from './rundir.js';
import type { ExecutorSpec } from './spec.js';
import { cliPath } from './worker.js';

export interface SlurmSubmission {
  job_id: string;
  indices: number[];
  /** The run id at each of `indices` (task i runs indices[i]; ids survive later spec edits). */
  ids?: string[];
  script: string;
  /** The spec the tasks read: a copy kept for this submission, so editing the grid later cannot re-map them. */
  spec?: string;
  submitted: string;
}

export interface SlurmFile {
  jobs: SlurmSubmission[];
}

export interface SubmitOptions {
  out: string;
  indices: number[];
  threadsPerRun: number;
  retries: number;
  executor: ExecutorSpec;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** [0,1,2,5,7,8] -> "0-2,5,7-8" (sbatch --array syntax). */
export function arrayRanges(indices: number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** sbatch reads #SBATCH lines like a command line: quote a path that has spaces or quotes. */
const directivePath = (s: string) => (/[\s"'\\]/.test(s) ? `"${s.replace(/(["\\])/g, '\\$1')}"` : s);

export function slurmScript(plan: GridPlan, o: SubmitOptions & { spec: string }): string {
  const p = gridPaths(o.out);
  const e = o.executor;
  const throttle = e.maxParallel ? `%${e.maxParallel}` : '';
  const lines = [
    '#!/bin/bash',
    `#SBATCH --job-name=${e.jobName ?? `advrun-${plan.spec.name}`.replace(/[^A-Za-z0-9._-]/g, '_')}`,
    `#SBATCH --array=${arrayRanges(o.indices)}${throttle}`,
    `#SBATCH --output=${directivePath(join(p.slurmDir, '%A_%a.out'))}`,
    `#SBATCH --chdir=${directivePath(process.cwd())}`,
    '#SBATCH --ntasks=1',
    `#SBATCH --cpus-per-task=${e.cpusPerTask ?? o.threadsPerRun}`,
  ];
  if (e.partition) lines.push(`#SBATCH --partition=${e.partition}`);
  if (e.time) lines.push(`#SBATCH --time=${e.time}`);
  if (e.mem) lines.push(`#SBATCH --mem=${e.mem}`);
  if (e.gpus !== undefined && e.gpus !== 0 && e.gpus !== '0') lines.push(`#SBATCH --gpus=${e.gpus}`);
  for (const extra of e.sbatch) lines.push(extra.startsWith('#SBATCH') ? extra : `#SBATCH ${extra}`);
  lines.push(
    'set -euo pipefail',
    // The same graph cache and CLI as the submitting checkout, whatever directory the task starts in.
    `export ADVRUN_GRAPHS_DIR=${quote(GRAPHS_DIR)}`,
    `exec ${quote(process.execPath)} ${quote(cliPath())} grid run-one ${quote(o.spec)} --index "$SLURM_ARRAY_TASK_ID" --out ${quote(p.dir)} --threads-per-run ${o.threadsPerRun} --retries ${o.retries} --json`,
    '',
  );
  return lines.join('\n');
}

function slurmTool(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new UserError(`${cmd} not found: the Slurm executor needs the Slurm client tools on PATH`);
    throw new UserError(`${cmd} ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim().split('\n')[0]}`);
  }
}

export function readSlurmFile(out: string): SlurmFile {
  return readJson<SlurmFile>(gridPaths(out).slurm) ?? { jobs: [] };
}

/** Submit the given runs as one job array; records the job in DIR/slurm.json. */
export function submitSlurm(plan: GridPlan, o: SubmitOptions): SlurmSubmission {
  const p = gridPaths(o.out);
  if (!existsSync(p.spec)) throw new Error(`${p.spec} must be written before submitting`);
  const submitted = new Date().toISOString();
  const stamp = submitted.replace(/[:.]/g, '-');
  const script = join(p.slurmDir, `array-${stamp}.sh`);
  const spec = join(p.slurmDir, `spec-${stamp}.json`);
  writeFileAtomic(spec, readFileSync(p.spec));
  writeFileAtomic(script, slurmScript(plan, { ...o, spec }));
  const jobId = slurmTool('sbatch', ['--parsable', script]).trim().split(';')[0]!;
  if (!/^\d+$/.test(jobId)) throw new UserError(`sbatch answered ${JSON.stringify(jobId)}, not a job id`);
  const ids = o.indices.map((i) => plan.runs[i]!.id);
  const sub: SlurmSubmission = { job_id: jobId, indices: o.indices, ids, script, spec, submitted };
  const file = readSlurmFile(o.out);
  writeFileAtomic(p.slurm, JSON.stringify({ jobs: [...file.jobs, sub] }, null, 2));
  return sub;
}

export interface TaskState {
  job_id: string;
  state: string;
  reason?: string;
}

/** The array tasks of these submissions that squeue still lists: submission, array index, state. */
function queuedTasks(jobs: SlurmSubmission[]): { job: SlurmSubmission; task: number; state: string; reason?: string }[] {
  if (!jobs.length) return [];
  const byId = new Map(jobs.map((j) => [j.job_id, j]));
  // All of this user's jobs rather than -j: squeue fails on ids it has already forgotten.
  const text = slurmTool('squeue', ['-h', '-r', '--me', '-o', '%i|%T|%R']);
  return text.split('\n').flatMap((line) => {
    const [id, state, reason] = line.trim().split('|');
    const m = /^(\d+)_(\d+)$/.exec(id ?? '');
    const job = m ? byId.get(m[1]!) : undefined;
    return job ? [{ job, task: Number(m![2]), state: state!, reason }] : [];
  });
}

/** Array tasks of our jobs still known to squeue, by grid index (the latest submission wins). */
export function slurmQueue(jobs: SlurmSubmission[]): Map<number, TaskState> {
  const out = new Map<number, TaskState>();
  const order = new Map(jobs.map((j, i) => [j.job_id, i]));
  for (const { job, task, state, reason } of queuedTasks(jobs)) {
    const prev = out.get(task);
    if (!prev || order.get(job.job_id)! > order.get(prev.job_id)!) out.set(task, { job_id: job.job_id, state, reason });
  }
  return out;
}

/** Final states from sacct, by grid index; an error text when accounting is not enabled. */
export function slurmAccounting(jobs: SlurmSubmission[]): Map<number, TaskState> | string {
  const out = new Map<number, TaskState>();
  if (!jobs.length) return out;
  let text: string;
  try {
    text = slurmTool('sacct', ['-n', '-P', '-X', '-j', jobs.map((j) => j.job_id).join(','), '-o', 'JobID,State,ExitCode']);
  } catch (e) {
    return (e as Error).message;
  }
  for (const line of text.split('\n')) {
    const [id, state, exit] = line.trim().split('|');
    const m = /^(\d+)_(\d+)$/.exec(id ?? '');
    if (m) out.set(Number(m[2]), { job_id: m[1]!, state: state!, reason: exit });
  }
  return out;
}

/** Ids of the runs whose array task (of any of these submissions) squeue still lists, queued or running. */
export function queuedRunIds(jobs: SlurmSubmission[]): Set<string> {
  const out = new Set<string>();
  for (const { job, task } of queuedTasks(jobs)) {
    const at = job.indices.indexOf(task);
    if (job.ids && at >= 0) out.add(job.ids[at]!);
  }
  return out;
}

/** Whether any array task of these jobs is still queued or running. */
export function slurmActive(jobs: SlurmSubmission[]): boolean {
  return slurmQueue(jobs).size > 0;
}
