// `advrun grid status`: where a grid stands, read from its files at any moment (while schedulers
// run, after they died, from another machine), plus the Slurm queue when the grid was submitted.

import { existsSync } from 'node:fs';
import { labelText } from './expand.js';
import { readGridFile, runState, gridPaths, type RunStatus } from './rundir.js';
import { readSlurmFile, slurmAccounting, slurmQueue, type TaskState } from './slurm.js';

export interface RunStatusLine {
  index: number;
  id: string;
  label: string;
  status: RunStatus;
  attempts: number;
  stage: string | null;
  error: string | null;
  slurm: TaskState | null;
}

export interface GridStatus {
  dir: string;
  name: string;
  total: number;
  counts: Record<RunStatus, number>;
  /** Seconds until the remaining runs should be done, from finished runs' durations; null if unknown. */
  eta_seconds: number | null;
  runs: RunStatusLine[];
  /** note: why squeue or sacct could not be read (e.g. accounting disabled), if so. */
  slurm: { jobs: string[]; queued: number; note: string | null } | null;
}

/** The grid's state from its files (and squeue/sacct when it was submitted to Slurm). */
export function gridStatus(dir: string): GridStatus {
  const grid = readGridFile(dir);
  const states = grid.runs.map((r) => ({ r, s: runState(dir, r) }));
  const slurmJobs = existsSync(gridPaths(dir).slurm) ? readSlurmFile(dir).jobs : [];
  let queue = new Map<number, TaskState>();
  let accounting = new Map<number, TaskState>();
  const notes: string[] = [];
  if (slurmJobs.length) {
    try {
      queue = slurmQueue(slurmJobs);
    } catch (e) {
      notes.push((e as Error).message);
    }
    // sacct remembers finished tasks (squeue forgets them), where accounting is enabled.
    const acct = slurmAccounting(slurmJobs);
    if (typeof acct === 'string') notes.push(acct);
    else accounting = acct;
  }
  const counts: Record<RunStatus, number> = { done: 0, running: 0, failed: 0, interrupted: 0, pending: 0 };
  const runs = states.map(({ r, s }): RunStatusLine => {
    counts[s.status]++;
    const slurm = queue.get(r.index) ?? accounting.get(r.index) ?? null;
    return { index: r.index, id: r.id, label: labelText(r.label), status: s.status, attempts: s.attempts.length, stage: s.stage, error: s.error, slurm };
  });
  // Mean wall time of a finished run (all its attempts), times the runs left, over the runs in flight.
  const durations = states.filter(({ s }) => s.status === 'done' && s.attempts.length).map(({ s }) => s.attempts.reduce((a, x) => a + (x.seconds ?? 0), 0));
  const left = grid.runs.length - counts.done - counts.failed;
  const parallel = Math.max(1, counts.running, queue.size ? [...queue.values()].filter((t) => t.state === 'RUNNING').length : 0);
  const eta = left === 0 ? 0 : durations.length ? (durations.reduce((a, v) => a + v, 0) / durations.length) * left / parallel : null;
  return {
    dir: gridPaths(dir).dir, name: grid.name, total: grid.runs.length, counts, eta_seconds: eta, runs,
    slurm: slurmJobs.length ? { jobs: slurmJobs.map((j) => j.job_id), queued: queue.size, note: notes.length ? notes.join('; ') : null } : null,
  };
}

export function formatDuration(s: number | null): string {
  if (s === null) return 'unknown';
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function countsText(c: Record<RunStatus, number>): string {
  return (['done', 'running', 'failed', 'interrupted', 'pending'] as const).filter((k) => c[k] || k === 'done').map((k) => `${c[k]} ${k}`).join(', ');
}

export function renderStatus(st: GridStatus, all: boolean): string {
  const lines = [`grid ${st.name} (${st.dir}): ${st.total} runs: ${countsText(st.counts)}; ETA ${formatDuration(st.eta_seconds)}`];
  if (st.slurm) {
    lines.push(`slurm jobs ${st.slurm.jobs.join(', ')}: ${st.slurm.queued} array tasks queued or running${st.slurm.note ? ` (${st.slurm.note})` : ''}`);
  }
  for (const r of st.runs) {
    if (!all && r.status === 'done') continue;
    const extra = [r.stage ? `stage ${r.stage}` : '', r.attempts ? `${r.attempts} attempt${r.attempts > 1 ? 's' : ''}` : '', r.slurm ? `slurm ${r.slurm.job_id}_${r.index} ${r.slurm.state}` : '', r.error ?? ''].filter(Boolean).join('; ');
    lines.push(`  #${r.index} ${r.id} ${r.status.padEnd(11)} ${r.label}${extra ? `  (${extra})` : ''}`);
  }
  return lines.join('\n');
}
