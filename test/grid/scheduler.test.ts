// The local scheduler with real processes: two schedulers on one directory never run a run twice;
// a worker killed with SIGKILL mid-run stops nothing else, and re-running the same command skips
// the finished runs, resumes the killed one from its checkpoint, and ends with the same table as
// an uninterrupted grid.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLock } from '../../src/grid/lock.js';
import { runPaths, type Attempt } from '../../src/grid/rundir.js';
import { ensureBuilt, readJsonFile, removeTempDirs, runCli, sleep, startCli, tempDir, TINY_BASE, TINY_EVAL, writeSpec } from './helpers.js';

const EPOCHS = 4;
const SPEC = {
  name: 'sched',
  base: { ...TINY_BASE, epochs: EPOCHS },
  axes: { eps: [0.05, 0.1], seed: [0, 1] },
  eval: TINY_EVAL,
  table: { rows: ['eps'], metric: ['robust_acc', 'clean_acc', 'val_robust_acc', 'val_clean_acc'] },
};
const RUN_ARGS = ['--workers', '2', '--threads-per-run', '1', '--json'];

let specPath = '';
let refDir = '';
let ids: string[] = [];

const attempts = (dir: string, id: string) => readJsonFile<Attempt[]>(runPaths(dir, id).attempts);
const metricLines = (dir: string, id: string) => {
  try {
    // Without time_s: an epoch redone after a resume has the same numbers but not the same duration.
    return readFileSync(runPaths(dir, id).dir + '/metrics.jsonl', 'utf8').split('\n').filter(Boolean).map((l) => { const { time_s: _, ...m } = JSON.parse(l); return JSON.stringify(m); });
  } catch {
    return [];
  }
};

afterAll(removeTempDirs);

describe('grid scheduler (local pool, real processes)', () => {
  beforeAll(() => {
    ensureBuilt();
    specPath = writeSpec(tempDir('spec'), SPEC);
    ids = JSON.parse(runCli(['grid', 'plan', specPath, '--json']).stdout).runs.map((r: { id: string }) => r.id);
    expect(ids).toHaveLength(4);
  });

  it('two schedulers started at once on the same DIR never run a run twice', async () => {
    refDir = tempDir('two');
    const [a, b] = [startCli(['grid', 'run', specPath, '--out', refDir, ...RUN_ARGS]), startCli(['grid', 'run', specPath, '--out', refDir, ...RUN_ARGS])];
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const [sa, sb] = [JSON.parse(ra.stdout), JSON.parse(rb.stdout)];
    // Each run was executed by exactly one of them; the other found it locked or finished.
    expect([...sa.outcomes.done, ...sb.outcomes.done].sort()).toEqual([...ids].sort());
    for (const s of [sa, sb]) expect(s.outcomes.done.length + s.outcomes.held.length + s.outcomes.skipped.length).toBe(4);
    for (const id of ids) {
      expect(attempts(refDir, id)).toHaveLength(1);
      expect(existsSync(runPaths(refDir, id).lock)).toBe(false);
    }
    const st = JSON.parse(runCli(['grid', 'status', refDir, '--json']).stdout);
    expect(st.counts).toMatchObject({ done: 4, running: 0, failed: 0 });
  });

  it('a worker killed mid-run stops nothing else; re-running resumes it and reproduces the table', async () => {
    const dir = tempDir('kill');
    const first = startCli(['grid', 'run', specPath, '--out', dir, '--retries', '0', ...RUN_ARGS]);
    let exited = false;
    void first.done.then(() => { exited = true; });
    // Kill the first train process caught between two epochs: after a checkpoint, before the end.
    let victim: string | undefined;
    let before: string[] = [];
    while (!victim && !exited) {
      for (const id of ids) {
        const lock = readLock(runPaths(dir, id).lock);
        const lines = metricLines(dir, id);
        if (lock?.stage === 'train' && lock.child_pid && lines.length >= 1 && lines.length < EPOCHS - 1 && existsSync(runPaths(dir, id).checkpoint)) {
          process.kill(lock.child_pid, 'SIGKILL');
          [victim, before] = [id, lines];
          break;
        }
      }
      await sleep(3);
    }
    const r1 = await first.done;
    expect(victim, 'no train process was caught mid-run').toBeDefined();
    const s1 = JSON.parse(r1.stdout);
    expect(r1.code).toBe(1);
    expect(s1.counts).toMatchObject({ done: 3, failed: 1 });
    expect(s1.failures).toHaveLength(1);
    expect(s1.failures[0].id).toBe(victim);
    expect(s1.failures[0].error).toContain('train killed by SIGKILL');
    expect(JSON.parse(runCli(['grid', 'status', dir, '--json']).stdout).counts).toMatchObject({ done: 3, failed: 1 });

    const others = ids.filter((id) => id !== victim);
    const stamp = (id: string) => [statSync(runPaths(dir, id).result).mtimeMs, statSync(runPaths(dir, id).eval).mtimeMs];
    const stamps = others.map(stamp);
    const r2 = runCli(['grid', 'run', specPath, '--out', dir, ...RUN_ARGS]);
    expect(r2.code, r2.stderr).toBe(0);
    const s2 = JSON.parse(r2.stdout);
    expect(s2.outcomes.skipped.sort()).toEqual([...others].sort());
    expect(s2.outcomes.done).toEqual([victim]);
    // Finished runs untouched; the killed one continued from its checkpoint (earlier epochs kept as they were).
    expect(others.map(stamp)).toEqual(stamps);
    for (const id of others) expect(attempts(dir, id)).toHaveLength(1);
    const va = attempts(dir, victim!);
    expect(va.map((a) => [a.outcome, a.resumed])).toEqual([['failed', false], ['ok', true]]);
    expect(metricLines(dir, victim!).slice(0, before.length)).toEqual(before);
    expect(metricLines(dir, victim!)).toHaveLength(EPOCHS);

    for (const f of ['table.json', 'table.csv', 'table.md']) expect(readFileSync(join(dir, f), 'utf8'), f).toBe(readFileSync(join(refDir, f), 'utf8'));
    const table = readJsonFile(join(dir, 'table.json'));
    expect(table.summary).toMatchObject({ total: 4, done: 4 });
    expect(table.runs.every((r: { robust_acc: unknown }) => typeof r.robust_acc === 'number')).toBe(true);
  });
});

describe('attempt records', () => {
  beforeAll(ensureBuilt);
  it('an attempt left open by a killed scheduler is marked abandoned by the next one', () => {
    const spec = writeSpec(tempDir('abandoned-spec'), { name: 'abandoned', base: TINY_BASE, axes: { seed: [0] }, eval: null, table: { rows: ['seed'], metric: ['val_clean_acc'] } });
    const dir = tempDir('abandoned');
    const plan = JSON.parse(runCli(['grid', 'plan', spec, '--json']).stdout);
    const p = runPaths(dir, plan.runs[0].id);
    mkdirSync(p.dir, { recursive: true });
    const open: Attempt = { attempt: 1, hostname: 'gone', pid: 999999, started: new Date().toISOString(), ended: null, outcome: null, resumed: false, stages: [], error: null, seconds: null };
    writeFileSync(p.attempts, JSON.stringify([open]));
    const r = runCli(['grid', 'run', spec, '--out', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const attempts = readJsonFile(p.attempts) as Attempt[];
    expect(attempts.map((a) => a.outcome)).toEqual(['abandoned', 'ok']);
    expect(attempts[0]!.error).toMatch(/stopped without recording an outcome/);
  });
});
