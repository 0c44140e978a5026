// The Slurm executor against a REAL single-node Slurm (slurm-wlm + munge on localhost, set up by
// slurm-setup.sh): submit a small grid as one job array, follow it with `grid status` (squeue),
// and check that the table equals the one the local pool makes from the same spec.
// Without a usable Slurm the test is skipped with the reason, except in CI (CI set), where it fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, readJsonFile, removeTempDirs, runCli, sleep, startCli, tempDir, TINY_BASE, TINY_EVAL, writeSpec } from './helpers.js';

const SPEC = {
  name: 'slurm-e2e',
  base: TINY_BASE,
  axes: { eps: [0.05, 0.1], seed: [0, 1] },
  eval: TINY_EVAL,
  table: { rows: ['eps'], metric: ['robust_acc', 'clean_acc'] },
  executor: { kind: 'slurm', partition: 'debug', time: '00:10:00', 'cpus-per-task': 1, mem: '500M', sbatch: ['--comment=advrun-grid-test'] },
};

let unavailable: string | null = null;

afterAll(removeTempDirs);

describe('grid on Slurm (real single-node cluster)', () => {
  beforeAll(() => {
    ensureBuilt();
    const r = spawnSync('bash', [join(import.meta.dirname, 'slurm-setup.sh')], { encoding: 'utf8', timeout: 240_000 });
    if (r.status !== 0) unavailable = (r.stderr || r.error?.message || `slurm-setup.sh exited with ${r.status}`).trim().split('\n').pop()!;
  }, 300_000);

  it('runs a grid as one job array; status reads the queue; the table equals a local run', async (ctx) => {
    if (unavailable) {
      if (process.env.CI) throw new Error(`Slurm is required in CI but could not be set up: ${unavailable}`);
      console.warn(`SKIPPED: Slurm end-to-end test: ${unavailable}`);
      ctx.skip(`Slurm unavailable: ${unavailable}`);
    }
    const specPath = writeSpec(tempDir('slurm-spec'), SPEC);
    const dir = tempDir('slurm');
    const sub = runCli(['grid', 'run', specPath, '--out', dir, '--json']);
    expect(sub.code, sub.stderr).toBe(0);
    const summary = JSON.parse(sub.stdout);
    expect(summary.executor).toBe('slurm');
    expect(summary.submission.indices).toEqual([0, 1, 2, 3]);
    const job = summary.submission.job_id as string;
    const script = readFileSync(summary.submission.script, 'utf8');
    for (const line of ['--array=0-3', '--partition=debug', '--time=00:10:00', '--cpus-per-task=1', '--mem=500M', '#SBATCH --comment=advrun-grid-test', 'grid run-one']) expect(script).toContain(line);

    // The same grid on the local pool meanwhile, for the comparison.
    const localDir = tempDir('slurm-local');
    const local = startCli(['grid', 'run', specPath, '--out', localDir, '--executor', 'local', '--workers', '1', '--threads-per-run', '1', '--json']);

    let sawQueue = false;
    let st: any;
    const deadline = Date.now() + 100_000;
    for (;;) {
      st = JSON.parse(runCli(['grid', 'status', dir, '--json']).stdout);
      expect(st.slurm.jobs).toEqual([job]);
      sawQueue ||= st.slurm.queued > 0 && st.runs.some((r: any) => r.slurm?.job_id === job);
      if (st.counts.done + st.counts.failed === 4 && st.slurm.queued === 0) break;
      if (Date.now() > deadline) throw new Error(`the Slurm array did not finish in time: ${JSON.stringify(st.counts)}`);
      await sleep(500);
    }
    expect(st.counts).toMatchObject({ done: 4, failed: 0 });
    expect(sawQueue, 'grid status never showed the array tasks from squeue').toBe(true);
    for (let i = 0; i < 4; i++) {
      const out = readFileSync(join(dir, 'slurm', `${job}_${i}.out`), 'utf8').trim().split('\n').pop()!;
      expect(JSON.parse(out)).toMatchObject({ index: i, outcome: 'done' });
    }

    const table = runCli(['grid', 'table', dir, '--format', 'json']);
    expect(table.code, table.stderr).toBe(0);
    const lr = await local.done;
    expect(lr.code, lr.stderr).toBe(0);
    expect(table.stdout).toBe(readFileSync(join(localDir, 'table.json'), 'utf8'));
    expect(JSON.parse(table.stdout).summary).toMatchObject({ total: 4, done: 4 });
    expect(readFileSync(join(dir, 'table.md'), 'utf8')).toBe(readFileSync(join(localDir, 'table.md'), 'utf8'));

    // Submitting again finds nothing left to do.
    const again = JSON.parse(runCli(['grid', 'run', specPath, '--out', dir, '--json']).stdout);
    expect(again.submission).toBeNull();
    expect(again.outcomes.skipped).toHaveLength(4);
    expect(readdirSync(join(dir, 'slurm')).filter((f) => f.endsWith('.sh'))).toHaveLength(1);
    expect(existsSync(readJsonFile(join(dir, 'slurm.json')).jobs[0].script)).toBe(true);
  });

  it('queued tasks run the spec they were submitted with; queued runs are not submitted twice; paths with spaces', async (ctx) => {
    if (unavailable) {
      if (process.env.CI) throw new Error(`Slurm is required in CI but could not be set up: ${unavailable}`);
      ctx.skip(`Slurm unavailable: ${unavailable}`);
    }
    const held = { ...SPEC, name: 'slurm-held', axes: { seed: [0, 1] }, executor: { ...SPEC.executor, sbatch: ['--hold'] } };
    const specDir = tempDir('slurm-held-spec');
    const dir = join(tempDir('slurm-held'), 'out dir'); // a space: the #SBATCH paths must be quoted
    const first = JSON.parse(runCli(['grid', 'run', writeSpec(specDir, held, 'h1.json'), '--out', dir, '--json']).stdout);
    const job1 = first.submission.job_id as string;
    const idsOf = (plan: string) => JSON.parse(runCli(['grid', 'plan', plan, '--json']).stdout).runs.map((r: any) => r.id) as string[];
    const [seed0, seed1] = idsOf(join(specDir, 'h1.json'));
    // Still queued (held): running the grid again submits nothing.
    const again = JSON.parse(runCli(['grid', 'run', join(specDir, 'h1.json'), '--out', dir, '--json']).stdout);
    expect(again.submission).toBeNull();
    expect(again.outcomes.held.sort()).toEqual([seed0, seed1].sort());
    // The grid is edited (a seed in front): only the new run is submitted, and the held tasks keep their runs.
    const edited = writeSpec(specDir, { ...held, axes: { seed: [7, 0, 1] } }, 'h2.json');
    const [seed7] = idsOf(edited);
    const second = JSON.parse(runCli(['grid', 'run', edited, '--out', dir, '--json']).stdout);
    expect(second.submission.ids).toEqual([seed7]);
    for (const j of [job1, second.submission.job_id]) spawnSync('scontrol', ['release', j]);
    const deadline = Date.now() + 100_000;
    while (JSON.parse(runCli(['grid', 'status', dir, '--json']).stdout).counts.done < 3) {
      if (Date.now() > deadline) throw new Error('the held Slurm jobs did not finish in time');
      await sleep(500);
    }
    const ranBy = (job: string, task: number) => JSON.parse(readFileSync(join(dir, 'slurm', `${job}_${task}.out`), 'utf8').trim().split('\n').pop()!).id;
    expect([ranBy(job1, 0), ranBy(job1, 1)]).toEqual([seed0, seed1]);
    expect(ranBy(second.submission.job_id, 0)).toBe(seed7);
    // The grid files describe the edited grid, not the one the older tasks read.
    expect(readJsonFile(join(dir, 'grid-spec.json')).axes.seed).toEqual([7, 0, 1]);
  });
});
