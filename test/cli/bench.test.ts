// `advrun bench` end to end on a tiny model: timings for the three steps, the fraction of the machine's
// peak, peak RSS, the PyTorch side when Debian's torch is installed, and the per-op profile.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { summariseProfile } from '../../src/runtime/profile.js';
import { runCli } from '../helpers/cli.js';
import { debianTorch } from '../interop/helpers.js';

describe('advrun bench', () => {
  const torch = debianTorch();
  test(`--json --profile: steps, peak fraction, RSS and a per-phase profile${torch.ok ? ', with PyTorch' : ` [PyTorch side skipped: ${torch.reason}]`}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-bench-test-'));
    const args = ['bench', '--arch', 'small-cnn', '--width', '4', '--batch', '8', '--eval-batch', '16', '--iters', '2', '--warmup', '1', '--threads', '1', '--json', '--profile', dir];
    const r = runCli(torch.ok ? args : [...args, '--no-torch']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout.trim());
    for (const k of ['train', 'attack', 'eval']) {
      expect(rep.advrun[k].imgPerSec).toBeGreaterThan(0);
      expect(rep.fractionOfPeak.advrun[k]).toBeGreaterThan(0);
      expect(rep.fractionOfPeak.advrun[k]).toBeLessThan(1.5);
    }
    expect(rep.peakGflops).toBeGreaterThan(0);
    expect(rep.forwardGflopPerImage).toBeGreaterThan(0);
    expect(rep.advrunPeakRssMb).toBeGreaterThan(0);
    if (torch.ok) {
      expect(rep.torch.peakRssMb).toBeGreaterThan(0);
      expect(rep.ratio.train).toBeCloseTo(rep.advrun.train.imgPerSec / rep.torch.train.imgPerSec, 6);
    }
    // The train step has all three phases; an attack step has no optimizer update; eval is forward only.
    const p = rep.profile;
    expect(p.train.phases.forward).toBeGreaterThan(0);
    expect(p.train.phases.backward).toBeGreaterThan(0);
    expect(p.train.phases.update).toBeGreaterThan(0);
    expect(p.attack.phases.backward).toBeGreaterThan(0);
    expect(p.attack.phases.update).toBe(0);
    expect(p.eval.phases.backward + p.eval.phases.update).toBe(0);
    expect(p.train.ops.some((o: { op: string; phase: string }) => o.op === 'Conv' && o.phase === 'forward')).toBe(true);
    // One trace per session (the compiled-state attack session is rebuilt once during warm-up).
    const traces = readdirSync(dir).filter((f) => f.endsWith('.json'));
    for (const g of ['train_step_', 'attack_ce_', 'eval_']) expect(traces.some((f) => f.startsWith(g))).toBe(true);
    expect(rep.stateBinding).toBe('compiled');
    for (const k of ['attack', 'eval']) expect(rep.stateInputs[k].imgPerSec).toBeGreaterThan(0);
  });
});

describe('profile summaries', () => {
  const node = (name: string, op: string, ts: number, dur: number) => ({ cat: 'Node', name: `${name}_kernel_time`, ts, dur, args: { op_name: op } });
  const run = (ts: number, dur: number) => ({ cat: 'Session', name: 'model_run', ts, dur });
  const events = [
    node('Conv_0', 'Conv', 0, 1000), node('bwd/Conv_7', 'Conv', 1000, 3000), run(0, 5000), // warm-up run
    node('Conv_0', 'Conv', 6000, 2000), node('bwd/Conv_7', 'Conv', 8000, 1000), node('conv_3_nchwc', 'Conv', 9000, 500),
    node('upd/Sub_9', 'Sub', 9500, 100), node('ReorderOutput', 'ReorderOutput', 9600, 50), node('bwd/Conv_7/reorder_in', 'ReorderInput', 9650, 50), run(6000, 4000),
  ];
  test('skips warm-up runs and attributes time by the node-name phase prefixes', () => {
    const s = summariseProfile(events, 1, new Map([['conv_3', 'bwd/Conv_5']]));
    expect(s.runs).toBe(1);
    expect(s.runMs).toBeCloseTo(4, 9);
    expect(s.phases).toEqual({ forward: 2, backward: 1.5, update: 0.1, layout: 0.1 }); // backward reorders are layout too
    expect(s.ops[0]).toEqual({ op: 'Conv', phase: 'forward', ms: 2, calls: 1 });
  });
  test('without the producer map an NCHWc-renamed node counts as forward; all runs when nothing is skipped', () => {
    const s = summariseProfile(events, 0);
    expect(s.runs).toBe(2);
    expect(s.phases.forward).toBeCloseTo((1 + 2 + 0.5) / 2, 9);
    expect(s.phases.backward).toBeCloseTo((3 + 1) / 2, 9);
  });
});
