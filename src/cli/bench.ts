// `advrun bench`: times advrun's train step, attack-gradient step and eval, and the same three steps in
// PyTorch (Debian python3-torch, bench/torch_bench.py) with the same thread count in the same invocation.
// Ratios are what matter: absolute times on a shared machine are noisy.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandModule } from 'yargs';
import { activationName } from '../models/index.js';
import { ensureArtifacts } from '../train/artifacts.js';
import { initialState, ModelRuntime } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { modelSpecFrom, sgdFrom, withModelOptions, withOptimizerOptions } from './options.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TORCH_PYTHON = '/usr/bin/python3';

interface StepTiming { ms: number; imgPerSec: number }
type Timings = Record<'train' | 'attack' | 'eval', StepTiming>;

async function timeIt(iters: number, warmup: number, batch: number, fn: () => Promise<unknown>): Promise<StepTiming> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  return { ms, imgPerSec: (batch * 1000) / ms };
}

function randomBatch(rng: Rng, n: number, shape: readonly number[], classes: number) {
  const x = rng.fillUniform(new Float32Array(n * shape.reduce((a, b) => a * b, 1)), 0, 1);
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  return { x, y };
}

function runTorch(a: any, threads: number): Timings {
  const script = join(PACKAGE_ROOT, 'bench', 'torch_bench.py');
  if (!existsSync(TORCH_PYTHON)) throw new UserError(`${TORCH_PYTHON} not found; install Debian's python3-torch or pass --no-torch`);
  const args = [script, '--arch', a.arch, '--batch', String(a.batch), '--eval-batch', String(a.evalBatch), '--iters', String(a.iters), '--warmup', String(a.warmup),
    '--threads', String(threads), '--in-channels', String(a.inChannels), '--image-size', String(a.imageSize), '--num-classes', String(a.numClasses)];
  if (a.width) args.push('--width', String(a.width));
  const r = spawnSync(TORCH_PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new UserError(`PyTorch benchmark failed: ${(r.stderr || r.stdout).trim().split('\n').pop()} (needs Debian's python3-torch; or pass --no-torch)`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

export const benchCommand: CommandModule = {
  command: 'bench',
  describe: 'time train / attack / eval steps against PyTorch on this machine',
  builder: (y) => withOptimizerOptions(withModelOptions(y))
    .option('batch', { type: 'number', default: 128 })
    .option('eval-batch', { type: 'number', default: 500 })
    .option('iters', { type: 'number', default: 10 })
    .option('warmup', { type: 'number', default: 2 })
    .option('threads', { type: 'number', describe: 'threads for both engines (default: all cores)' })
    .option('torch', { type: 'boolean', default: true, describe: 'also run the PyTorch counterpart (--no-torch to skip)' })
    .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const a = argv as any;
    const threads = a.threads ?? cpus().length;
    const cfg = { model: modelSpecFrom(a), loss: { kind: 'ce' as const, labelSmoothing: a.labelSmoothing }, optimizer: sgdFrom(a) };
    const art = ensureArtifacts(cfg, mkdtempSync(join(tmpdir(), 'advrun-bench-')));
    const rt = new ModelRuntime(art, initialState(art.manifest, 0), { threads });
    const rng = new Rng(0);
    const train = randomBatch(rng, a.batch, rt.inputShape, cfg.model.numClasses);
    const evalBatch = randomBatch(rng, a.evalBatch, rt.inputShape, cfg.model.numClasses);
    const advrun: Timings = {
      train: await timeIt(a.iters, a.warmup, a.batch, () => rt.trainStep(train.x, train.y, a.batch, 0.01)),
      attack: await timeIt(a.iters, a.warmup, a.batch, () => rt.lossGrad(train.x, a.batch, { kind: 'ce', labels: train.y })),
      eval: await timeIt(a.iters, a.warmup, a.evalBatch, () => rt.logits(evalBatch.x, a.evalBatch)),
    };
    await rt.release();
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const torch = a.torch ? runTorch(a, threads) : undefined;
    const report = {
      arch: cfg.model.arch, width: cfg.model.width ?? null, activation: activationName(cfg.model.activation),
      input: rt.inputShape, batch: a.batch, evalBatch: a.evalBatch, threads, iters: a.iters, advrun, torch: torch ?? null,
      ratio: torch ? Object.fromEntries((['train', 'attack', 'eval'] as const).map((k) => [k, advrun[k].imgPerSec / torch[k].imgPerSec])) : null,
      advrunPeakRssMb: peakRssMb, cpu: cpus()[0]?.model ?? 'unknown',
    };
    if (a.json) { console.log(JSON.stringify(report)); return; }
    console.log(`${report.arch} width=${report.width ?? 'default'} input=${report.input.join('x')} batch=${a.batch} threads=${threads} (${report.cpu})`);
    console.log('step     advrun ms   advrun img/s   torch ms   torch img/s   advrun/torch');
    for (const k of ['train', 'attack', 'eval'] as const) {
      const t = torch?.[k];
      console.log(`${k.padEnd(8)} ${advrun[k].ms.toFixed(1).padStart(9)}   ${advrun[k].imgPerSec.toFixed(1).padStart(12)}   ${t ? t.ms.toFixed(1).padStart(8) : '       -'}   ${t ? t.imgPerSec.toFixed(1).padStart(11) : '          -'}   ${report.ratio ? report.ratio[k].toFixed(2).padStart(12) : '-'}`);
    }
    console.log(`advrun peak RSS ${peakRssMb.toFixed(0)} MB`);
  },
};
