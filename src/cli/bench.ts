// `advrun bench`: times advrun's train step, attack-gradient step and eval, and the same three steps in
// PyTorch (Debian python3-torch, bench/torch_bench.py) with the same thread count in the same invocation.
// Ratios are what matter: absolute times on a shared machine are noisy.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandModule } from 'yargs';
import { ensureArtifacts } from '../train/artifacts.js';
import { initialState, ModelRuntime } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/random.js';
import { graphFlops } from '../ir/flops.js';
import { activationName, buildModel } from '../models/index.js';
import { measurePeakGflops } from '../runtime/peak.js';
import { modelProtoToGraph } from '../onnx/io.js';
import { formatProfile, producerNames, readProfile, type ProfileSummary } from '../runtime/profile.js';
import { modelSpecFrom, sgdFrom, withModelOptions, withOptimizerOptions } from './options.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TORCH_PYTHON = '/usr/bin/python3';

interface StepTiming { ms: number; imgPerSec: number }
const STEPS = ['train', 'attack', 'eval'] as const;
type Step = (typeof STEPS)[number];
type Timings = Record<Step, StepTiming>;
type TorchReport = Timings & { peakRssMb: number };
/** Each step's work in forward passes: backward costs about two forwards (input and weight gradients), an attack step skips the weight gradient. */
const FORWARD_PASSES: Record<Step, number> = { train: 3, attack: 2, eval: 1 };
/** The graph each step runs. */
const STEP_GRAPH: Record<Step, string> = { train: 'train_step', attack: 'attack_ce', eval: 'eval' };

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

function runTorch(a: any, threads: number): TorchReport {
  const script = join(PACKAGE_ROOT, 'bench', 'torch_bench.py');
  if (!existsSync(TORCH_PYTHON)) throw new UserError(`${TORCH_PYTHON} not found; install Debian's python3-torch or pass --no-torch`);
  const args = [script, '--arch', a.arch, '--batch', String(a.batch), '--eval-batch', String(a.evalBatch), '--iters', String(a.iters), '--warmup', String(a.warmup),
    '--threads', String(threads), '--in-channels', String(a.inChannels), '--image-size', String(a.imageSize), '--num-classes', String(a.numClasses)];
  if (a.width) args.push('--width', String(a.width));
  const r = spawnSync(TORCH_PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new UserError(`PyTorch benchmark failed: ${(r.stderr || r.stdout).trim().split('\n').pop()} (needs Debian's python3-torch; or pass --no-torch)`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Times the three steps of one runtime; `profileDir` also records ONNX Runtime's per-node traces. */
async function timeSteps(a: any, rt: ModelRuntime, train: { x: Float32Array; y: Int32Array }, evalBatch: { x: Float32Array }): Promise<Timings> {
  return {
    train: await timeIt(a.iters, a.warmup, a.batch, () => rt.trainStep(train.x, train.y, a.batch, 0.01)),
    attack: await timeIt(a.iters, a.warmup, a.batch, () => rt.lossGrad(train.x, a.batch, { kind: 'ce', labels: train.y })),
    eval: await timeIt(a.iters, a.warmup, a.evalBatch, () => rt.logits(evalBatch.x, a.evalBatch)),
  };
}

function printReport(report: any, profiles: Record<Step, ProfileSummary> | undefined): void {
  const { advrun, torch, ratio, fractionOfPeak: peak } = report;
  console.log(`${report.arch} width=${report.width ?? 'default'} input=${report.input.join('x')} batch=${report.batch} threads=${report.threads} (${report.cpu})`);
  console.log(`machine FP32 peak (ONNX Runtime MatMul ${report.peakMatmulSize}^3): ${report.peakGflops.toFixed(1)} GFLOP/s; forward ${(report.forwardGflopPerImage * 1000).toFixed(1)} MFLOP/image`);
  console.log('step     advrun ms   advrun img/s   torch ms   torch img/s   advrun/torch   advrun %peak   torch %peak');
  const pad = (v: number | undefined, d: number, w: number) => (v === undefined ? '-' : v.toFixed(d)).padStart(w);
  for (const k of STEPS) {
    const t = torch?.[k];
    console.log(`${k.padEnd(8)} ${pad(advrun[k].ms, 1, 9)}   ${pad(advrun[k].imgPerSec, 1, 12)}   ${pad(t?.ms, 1, 8)}   ${pad(t?.imgPerSec, 1, 11)}   ${pad(ratio?.[k], 2, 12)}   ${pad(100 * peak.advrun[k], 1, 12)}   ${pad(peak.torch ? 100 * peak.torch[k] : undefined, 1, 11)}`);
  }
  console.log(`peak RSS: advrun ${report.advrunPeakRssMb.toFixed(0)} MB${torch ? `, PyTorch ${torch.peakRssMb.toFixed(0)} MB (ratio ${(report.advrunPeakRssMb / torch.peakRssMb).toFixed(2)})` : ''}`);
  if (profiles) for (const k of STEPS) console.log('\n' + formatProfile(`profile ${k} (${STEP_GRAPH[k]})`, profiles[k]));
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
    .option('profile', { type: 'string', describe: 'after timing, rerun each step with ONNX Runtime\'s profiler and summarise kernel time by op type and forward/backward/update; traces go to this directory ("" = a temp dir)' })
    .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const a = argv as any;
    const threads = a.threads ?? cpus().length;
    const cfg = { model: modelSpecFrom(a), loss: { kind: 'ce' as const, labelSmoothing: a.labelSmoothing }, optimizer: sgdFrom(a) };
    const art = ensureArtifacts(cfg, mkdtempSync(join(tmpdir(), 'advrun-bench-')));
    const state = initialState(art.manifest, 0);
    const rt = new ModelRuntime(art, state, { threads });
    const rng = new Rng(0);
    const train = randomBatch(rng, a.batch, rt.inputShape, cfg.model.numClasses);
    const evalBatch = randomBatch(rng, a.evalBatch, rt.inputShape, cfg.model.numClasses);
    const advrun = await timeSteps(a, rt, train, evalBatch);
    await rt.release();
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    let profiles: Record<Step, ProfileSummary> | undefined;
    if (a.profile !== undefined) {
      const dir = a.profile === '' ? mkdtempSync(join(tmpdir(), 'advrun-profile-')) : resolve(a.profile);
      mkdirSync(dir, { recursive: true });
      const prt = new ModelRuntime(art, state, { threads, profileDir: dir });
      await timeSteps(a, prt, train, evalBatch);
      const traces = await prt.endProfiling();
      await prt.release();
      const producers = (graph: string) => producerNames(modelProtoToGraph(art.bytes[graph]!, graph).nodes);
      profiles = Object.fromEntries(STEPS.map((k) => [k, readProfile(traces[STEP_GRAPH[k]]!, a.warmup, producers(STEP_GRAPH[k]))])) as Record<Step, ProfileSummary>;
    }
    const torch = a.torch ? runTorch(a, threads) : undefined;
    const forwardFlops = graphFlops(buildModel(cfg.model, { bnMode: 'eval', seed: 0 }).graph, { N: 1 });
    const peakMatmulSize = 1536;
    const peakGflops = await measurePeakGflops(threads, peakMatmulSize);
    const fraction = (t: Timings) => Object.fromEntries(STEPS.map((k) => [k, (FORWARD_PASSES[k] * forwardFlops * t[k].imgPerSec) / 1e9 / peakGflops])) as Record<Step, number>;
    const report = {
      arch: cfg.model.arch, width: cfg.model.width ?? null, activation: activationName(cfg.model.activation),
      input: rt.inputShape, batch: a.batch, evalBatch: a.evalBatch, threads, iters: a.iters, advrun, torch: torch ?? null,
      ratio: torch ? Object.fromEntries(STEPS.map((k) => [k, advrun[k].imgPerSec / torch[k].imgPerSec])) : null,
      forwardGflopPerImage: forwardFlops / 1e9, peakGflops, peakMatmulSize,
      fractionOfPeak: { advrun: fraction(advrun), torch: torch ? fraction(torch) : null },
      advrunPeakRssMb: peakRssMb, rssRatio: torch ? peakRssMb / torch.peakRssMb : null, cpu: cpus()[0]?.model ?? 'unknown',
      profile: profiles ?? null,
    };
    if (a.json) { console.log(JSON.stringify(report)); return; }
    printReport(report, profiles);
  },
};
