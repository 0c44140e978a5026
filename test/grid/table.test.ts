// Tables are built from the files alone; missing and failed runs show up as such. Locks: O_EXCL,
// stale-lock detection. Both in-process, on hand-made result directories.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expandGrid } from '../../src/grid/expand.js';
import { lockHeld, RunLock } from '../../src/grid/lock.js';
import { runPaths } from '../../src/grid/rundir.js';
import { prepareDir } from '../../src/grid/scheduler.js';
import { validateSpec } from '../../src/grid/spec.js';
import { buildTable, renderCsv, renderMarkdown } from '../../src/grid/table.js';
import { removeTempDirs, tempDir, TINY_BASE, TINY_EVAL } from './helpers.js';

function fakeResult(dir: string, id: string, robust: number, clean = 0.8, evalDirty = false): void {
  const p = runPaths(dir, id);
  mkdirSync(p.dir, { recursive: true });
  writeFileSync(p.result, JSON.stringify({ final: { val_clean_acc: clean, val_robust_acc: robust }, best_epoch: 0, advrun_version: '0.1.0', git_commit: 'abc', git_dirty: false }));
  writeFileSync(p.eval, JSON.stringify({ clean_acc: clean, robust_acc: robust, n: 50, attack: { attack: 'pgd', steps: 2 }, bn_mode: 'eval', advrun_version: '0.1.0', git_commit: 'abc', git_dirty: evalDirty }));
}

afterAll(removeTempDirs);

describe('grid tables', () => {
  it('aggregates over seeds and counts missing and failed runs in their cells', () => {
    const dir = tempDir('table');
    const plan = expandGrid(validateSpec({ name: 'tbl', base: TINY_BASE, axes: { eps: [0.05, 0.1], seed: [0, 1, 2] }, eval: TINY_EVAL }, 't'));
    prepareDir(plan, dir);
    const [a0, a1, a2, b0, b1] = plan.runs;
    fakeResult(dir, a0!.id, 0.5);
    fakeResult(dir, a1!.id, 0.6, 0.8, true);
    fakeResult(dir, a2!.id, 0.7);
    fakeResult(dir, b0!.id, 0.4);
    // b1 failed (its last attempt says so); b2 never started.
    mkdirSync(runPaths(dir, b1!.id).dir, { recursive: true });
    writeFileSync(runPaths(dir, b1!.id).attempts, JSON.stringify([{ attempt: 1, outcome: 'failed', error: 'train killed by SIGKILL', seconds: 1 }]));

    const t = buildTable(dir);
    expect(t.summary).toMatchObject({ total: 6, done: 4, failed: 1, pending: 1 });
    const [first, second] = t.cells;
    expect(first).toMatchObject({ row: { eps: '0.05' }, n: 3, expected: 3, failed: 0, missing: 0 });
    expect(first!.mean).toBeCloseTo(0.6, 12);
    expect(first!.std).toBeCloseTo(0.1, 12);
    expect(second).toMatchObject({ row: { eps: '0.1' }, mean: 0.4, std: null, n: 1, expected: 3, failed: 1, missing: 1 });
    expect(t.runs.find((r) => r.id === b1!.id)).toMatchObject({ status: 'failed', error: 'train killed by SIGKILL', robust_acc: null });
    // A run with uncommitted code changes in either stage is marked; the others say they had none.
    expect(t.runs.find((r) => r.id === a1!.id)).toMatchObject({ git_commit: 'abc', git_dirty: true });
    expect(t.runs.find((r) => r.id === a0!.id)).toMatchObject({ git_commit: 'abc', git_dirty: false });

    const md = renderMarkdown(t);
    expect(md).toContain('| 0.05 | 60.0 ± 10.0 (n=3) |');
    expect(md).toContain('| 0.1 | 40.0 (n=1/3; 1 failed, 1 missing) |');
    expect(md).toContain('4/6 runs done, 1 failed, 1 missing');
    const csv = renderCsv(t).trim().split('\n');
    expect(csv[0]).toBe('eps,metric,mean,std,n,expected,failed,missing');
    expect(csv[2]).toBe('0.1,robust_acc,0.4,,1,3,1,1');
    // The same files give the same table, byte for byte.
    expect(JSON.stringify(buildTable(dir))).toBe(JSON.stringify(t));
  });
});

describe('run locks', () => {
  it('is exclusive while the owner lives and is released by it', () => {
    const dir = tempDir('lock');
    const path = join(dir, 'lock');
    const a = RunLock.tryAcquire(path)!;
    expect(a).not.toBeNull();
    expect(RunLock.tryAcquire(path)).toBeNull();
    expect(lockHeld(path)).toBe(true);
    a.release();
    expect(existsSync(path)).toBe(false);
    RunLock.tryAcquire(path)!.release();
  });

  it('breaks a lock whose owner and child are dead (same host) or whose heartbeat stopped (any host)', () => {
    const dir = tempDir('stale');
    const path = join(dir, 'lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(path, JSON.stringify({ token: 'x', pid: Number(dead), hostname: hostname(), started: '', child_pid: null, stage: 'train' }));
    expect(lockHeld(path)).toBe(false);
    const b = RunLock.tryAcquire(path)!;
    expect(b).not.toBeNull();
    b.release();

    // Another host's lock cannot be checked by pid: only its heartbeat (mtime) tells.
    writeFileSync(path, JSON.stringify({ token: 'y', pid: 1, hostname: 'elsewhere', started: '', child_pid: null, stage: 'train' }));
    expect(RunLock.tryAcquire(path)).toBeNull();
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(path, old, old);
    const c = RunLock.tryAcquire(path)!;
    expect(c).not.toBeNull();
    c.release();
  });

  it('counts a live child as alive even when the owner is gone (a killed scheduler leaves its train running)', () => {
    const dir = tempDir('child');
    const path = join(dir, 'lock');
    writeFileSync(path, JSON.stringify({ token: 'z', pid: 999_999_999, hostname: hostname(), started: '', child_pid: process.pid, stage: 'train' }));
    expect(RunLock.tryAcquire(path)).toBeNull();
  });
});

describe('settings the table does not show', () => {
  it('lists settings that differ between runs outside rows/columns/over', () => {
    const dir = tempDir('table-unshown');
    const plan = expandGrid(validateSpec({
      name: 'hidden', base: TINY_BASE, axes: { eps: [0.05, 0.1], seed: [0, 1] }, eval: TINY_EVAL,
      overrides: [{ match: { eps: 0.1 }, set: { 'eval.steps': 5, lr: 0.05 } }],
      table: { rows: ['eps'], columns: [], over: ['seed'] },
    }, 't'));
    prepareDir(plan, dir);
    for (const r of plan.runs) fakeResult(dir, r.id, 0.5);
    const t = buildTable(dir);
    const byKey = Object.fromEntries(t.unshown.map((u) => [u.key, u]));
    expect(byKey['eval.steps']).toEqual({ key: 'eval.steps', values: ['2', '5'] });
    expect(byKey.lr).toEqual({ key: 'lr', values: ['0.1', '0.05'] });
    expect(byKey.seed).toBeUndefined(); // averaged over: the table says so
    expect(renderMarkdown(t)).toMatch(/Also differing between runs .*eval\.steps \(2, 5\).*lr \(0\.1, 0\.05\)/);
  });
});
