// End to end, as a user runs it: `advrun train` then `advrun eval` on the shipped Fashion-MNIST subset,
// and an interrupted run (SIGKILL) resumed with --resume giving exactly the uninterrupted result.

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { runCli, runCliAsync } from '../helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'advrun-e2e-'));

function trainArgs(out: string, extra: string[]) {
  return ['train', '--out', out, '--arch', 'small-cnn', '--val-limit', '100', '--val-steps', '3', '--seed', '1', ...extra];
}

function evalRobust(ck: string): { clean_acc: number; robust_acc: number; n: number } {
  const r = runCli(['eval', '--model', ck, '--attack', 'pgd', '--steps', '10', '--eps', '0.1', '--limit', '300', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe('advrun train + eval', () => {
  test('PGD-AT on fashion-mnist-mini is more robust than standard training', () => {
    const common = ['--epochs', '4', '--json'];
    const at = join(tmp(), 'at'), std = join(tmp(), 'std');
    const r1 = runCli(trainArgs(at, [...common, '--width', '8', '--method', 'pgd-at', '--eps', '0.1', '--steps', '3']));
    expect(r1.code, r1.stderr).toBe(0);
    const r2 = runCli(trainArgs(std, [...common, '--width', '8', '--method', 'standard']));
    expect(r2.code, r2.stderr).toBe(0);
    for (const dir of [at, std]) {
      for (const f of ['config.json', 'metrics.jsonl', 'checkpoint.safetensors', 'checkpoint-best.safetensors', 'result.json']) expect(existsSync(join(dir, f)), f).toBe(true);
      expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(4);
    }
    const robustAt = evalRobust(join(at, 'checkpoint.safetensors'));
    const robustStd = evalRobust(join(std, 'checkpoint.safetensors'));
    expect(robustAt.n).toBe(300);
    expect(robustStd.clean_acc).toBeGreaterThan(0.3); // it learned something
    expect(robustAt.robust_acc).toBeGreaterThan(robustStd.robust_acc + 0.1);
    // Every attack runs with its default options: those defined without a random start get none, PGD gets one.
    for (const [attack, randomStart] of [['fgsm', false], ['bim', false], ['mifgsm', false], ['pgd', true]] as const) {
      const r = runCli(['eval', '--model', join(at, 'checkpoint.safetensors'), '--attack', attack, '--steps', '3', '--limit', '50', '--json']);
      expect(r.code, `${attack}: ${r.stderr}`).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.attack.randomStart, attack).toBe(randomStart);
      expect(out.robust_acc, attack).toBeLessThanOrEqual(out.clean_acc);
    }
  });

  test('a run killed mid-training and resumed ends exactly like an uninterrupted run', async () => {
    // A setting where PGD's sign steps amplify float32-level differences: resuming must run exactly the same
    // kernels as the uninterrupted run (it did not when the last validation's sessions carried into the next epoch).
    const args = ['--method', 'pgd-at', '--eps', '0.05', '--steps', '3', '--epochs', '3', '--limit', '600'];
    const whole = join(tmp(), 'whole'), broken = join(tmp(), 'broken');
    expect(runCli(trainArgs(whole, args)).code).toBe(0);

    // Kill the second run once its first epoch checkpoint is on disk, i.e. during epoch 2.
    const child = runCliAsync(trainArgs(broken, args));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (existsSync(join(broken, 'checkpoint.safetensors'))) { clearInterval(t); child.kill('SIGKILL'); resolve(); }
        if (child.exitCode !== null) { clearInterval(t); reject(new Error('run finished before it could be interrupted')); }
      }, 20);
    });
    await exited;
    expect(existsSync(join(broken, 'result.json'))).toBe(false);
    // Without --resume the half-done run is not overwritten.
    const refused = runCli(trainArgs(broken, args));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/interrupted run \(pass --resume/);
    // Epochs finished before the kill (their metrics lines; the checkpoint can be one epoch behind them).
    const before = readFileSync(join(broken, 'metrics.jsonl'), 'utf8').trim().split('\n').filter(Boolean).length;
    const done = Number(readSafetensors(join(broken, 'checkpoint.safetensors')).metadata?.epoch);
    expect(done).toBeGreaterThanOrEqual(1);
    expect(before).toBeGreaterThanOrEqual(done);
    const resumed = runCli(trainArgs(broken, [...args, '--resume']), { CI: '' }); // CI unset: the run reports its epochs
    expect(resumed.code, resumed.stderr).toBe(0);
    // It continued from the checkpoint: only the remaining epochs ran in this process.
    expect(resumed.stderr).toContain(`resuming ${broken} after epoch ${done}`);
    const ranEpochs = [...resumed.stderr.matchAll(/^epoch (\d+):/gm)].map((m) => Number(m[1]));
    expect(ranEpochs).toEqual([2, 3].filter((e) => e > done));

    for (const file of ['checkpoint.safetensors', 'checkpoint-best.safetensors']) {
      const a = readSafetensors(join(whole, file)).tensors;
      const b = readSafetensors(join(broken, file)).tensors;
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [k, t] of a) expect(Buffer.from(b.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer)), `${file} ${k}`).toBe(true);
    }
    const result = (dir: string) => JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'));
    expect(result(broken).best_epoch).toBe(result(whole).best_epoch);
    expect(result(broken).final).toEqual(result(whole).final);
    const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => { const { time_s: _, ...m } = JSON.parse(l); return m; });
    expect(metrics(broken)).toEqual(metrics(whole));
  });
});

describe('snapshots and the recorded validation split', () => {
  test('--save-every writes checkpoint-epoch<k>; the checkpoint records --val-split, which eval --split val reuses', () => {
    const out = join(tmp(), 'snap');
    const r = runCli(trainArgs(out, ['--epochs', '2', '--width', '4', '--method', 'standard', '--save-every', '1', '--val-split', '37', '--limit', '300', '--json']));
    expect(r.code, r.stderr).toBe(0);
    for (const k of [1, 2]) expect(existsSync(join(out, `checkpoint-epoch${k}.safetensors`))).toBe(true);
    expect(existsSync(join(out, 'checkpoint-epoch3.safetensors'))).toBe(false);
    const e = runCli(['eval', '--model', join(out, 'checkpoint-epoch1.safetensors'), '--split', 'val', '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).n).toBe(37);
  });
});
