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
import { numel, type Tensor } from '../ir/tensor.js';
import { graphFlops } from '../ir/flops.js';
import { activationName, buildModel } from '../models/index.js';
import { measurePeakGflops } from '../runtime/peak.js';
import { nchwcBlockSize, nchwcWanted } from '../runtime/nchwc.js';
import { modelProtoToGraph } from '../onnx/io.js';
import { formatProfile, producerNames, readProfile, type ProfileSummary } from '../runtime/profile.js';
import { sgdConfig } from '../train/optimizer.js';
import { modelSpecFrom, wholeNumber, withModelOptions, withOptimizerOptions } from './options.js';

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
  const x = rng.fillUniform(new Float32Array(n * numel(shape)), 0, 1);
  const y = Int32Array.from({ length: n }, () => rng.int(classes));
  return { x, y };
}

function runTorch(a: any, threads: number): TorchReport {
  const script = join(PACKAGE_ROOT, 'bench', 'torch_bench.py');
  if (!existsSync(TORCH_PYTHON)) throw new UserError(`${TORCH_PYTHON} not found; install Debian's python3-torch or pass --no-torch`);
  // bench/torch_models.py builds each architecture with ReLU: another activation would be compared with a different model.
  if (a.activation !== 'relu') throw new UserError(`the PyTorch counterpart (bench/torch_models.py) uses ReLU; pass --no-torch to time --activation ${a.activation} alone`);
  const args = [script, '--arch', a.arch, '--batch', String(a.batch), '--eval-batch', String(a.evalBatch), '--iters', String(a.iters), '--warmup', String(a.warmup),
    '--threads', String(threads), '--in-channels', String(a.inChannels), '--image-size', String(a.imageSize), '--num-classes', String(a.numClasses)];
  if (a.width) args.push('--width', String(a.width));
  // The same optimizer and loss as advrun's train step.
  args.push('--momentum', String(a.momentum), '--weight-decay', String(a.weightDecay), '--label-smoothing', String(a.labelSmoothing), '--nesterov', a.nesterov ? '1' : '0');
  const r = spawnSync(TORCH_PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new UserError(`PyTorch benchmark failed: ${(r.stderr || r.stdout).trim().split('\n').pop()} (needs Debian's python3-torch; or pass --no-torch)`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/**
 * Times the three steps of one runtime. With the state compiled into the attack graph, an attack step is
 * timed as it runs in PGD: `attackSteps` steps per new model state, the session rebuild included.
 */
async function timeSteps(a: any, rt: ModelRuntime, state: Map<string, Tensor>, train: { x: Float32Array; y: Int32Array }, evalBatch: { x: Float32Array }, withTrain = true): Promise<Partial<Timings>> {
  const out: Partial<Timings> = {};
  if (withTrain) out.train = await timeIt(a.iters, a.warmup, a.batch, () => rt.trainStep(train.x, train.y, a.batch, 0.01));
  const attackStep = () => rt.lossGrad(train.x, a.batch, { kind: 'ce', labels: train.y });
  if (rt.stateBinding === 'compiled') {
    const k = a.attackSteps;
    const perState = await timeIt(Math.max(1, Math.ceil(a.iters / k)), 1, a.batch * k, async () => {
      rt.setState(state); // new weights, as after a train step
      for (let i = 0; i < k; i++) await attackStep();
    });
    out.attack = { ms: perState.ms / k, imgPerSec: perState.imgPerSec };
  } else {
    out.attack = await timeIt(a.iters, a.warmup, a.batch, attackStep);
  }
  out.eval = await timeIt(a.iters, a.warmup, a.evalBatch, () => rt.logits(evalBatch.x, a.evalBatch));
  return out;
}

function printReport(report: any, profiles: Record<Step, ProfileSummary> | undefined): void {
  const { advrun, torch, ratio, fractionOfPeak: peak, stateInputs } = report;
  console.log(`${report.arch} width=${report.width ?? 'default'} input=${report.input.join('x')} batch=${report.batch} threads=${report.threads} (${report.cpu})`);
  console.log(`run-time-weight convolutions: ${report.nchwcBlock > 1 ? `NCHWc kernels, block ${report.nchwcBlock}` : 'ONNX Runtime Conv (im2col + GEMM; NCHWc lowering off or unavailable)'}`);
  console.log(`machine FP32 peak in ONNX Runtime: ${report.peakGflops.toFixed(1)} GFLOP/s (MatMul 1536^3 ${report.peakMatmulGflops.toFixed(1)}, constant-weight 3x3 Conv ${report.peakConvGflops.toFixed(1)}); forward ${(report.forwardGflopPerImage * 1000).toFixed(1)} MFLOP/image`);
  console.log('step     advrun ms   advrun img/s   torch ms   torch img/s   advrun/torch   advrun %peak   torch %peak');
  const pad = (v: number | undefined, d: number, w: number) => (v === undefined ? '-' : v.toFixed(d)).padStart(w);
  const row = (label: string, k: Step, mine: StepTiming, frac: number) => {
    const t = torch?.[k];
    console.log(`${label.padEnd(8)} ${pad(mine.ms, 1, 9)}   ${pad(mine.imgPerSec, 1, 12)}   ${pad(t?.ms, 1, 8)}   ${pad(t?.imgPerSec, 1, 11)}   ${pad(t ? mine.imgPerSec / t.imgPerSec : undefined, 2, 12)}   ${pad(100 * frac, 1, 12)}   ${pad(peak.torch ? 100 * peak.torch[k] : undefined, 1, 11)}`);
  };
  for (const k of STEPS) row(k, k, advrun[k], peak.advrun[k]);
  if (stateInputs) {
    console.log(`state as graph inputs (no pre-packing; attack and eval rows above compile the state in${report.attackSteps > 1 ? `, attack amortised over ${report.attackSteps} steps per state, rebuild included` : ''}):`);
    for (const k of ['attack', 'eval'] as const) row(`  ${k}`, k, stateInputs[k], peak.stateInputs[k]);
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
    .option('threads', { type: 'number', describe: 'threads for both engines (default: all cores)', coerce: wholeNumber('threads', 0) })
    .option('torch', { type: 'boolean', default: true, describe: 'also run the PyTorch counterpart (--no-torch to skip)' })
    .option('attack-steps', { type: 'number', default: 10, describe: 'attack steps per model state (PGD-10: 10); the compiled-state session rebuild is spread over them' })
    .option('profile', { type: 'string', describe: 'after timing, rerun each step with ONNX Runtime\'s profiler and summarise kernel time by op type and forward/backward/update; traces go to this directory ("" = a temp dir)' })
    .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const a = argv as any;
    const threads = a.threads ?? cpus().length;
    const cfg = { model: modelSpecFrom(a), loss: { kind: 'ce' as const, labelSmoothing: a.labelSmoothing }, optimizer: sgdConfig(a), plannedBatch: a.batch };
    const art = ensureArtifacts(cfg, mkdtempSync(join(tmpdir(), 'advrun-bench-')));
    const state = initialState(art.manifest, 0);
    if (!Number.isInteger(a.attackSteps) || a.attackSteps < 1) throw new UserError(`--attack-steps must be a positive integer, got ${a.attackSteps}`);
    const rt = new ModelRuntime(art, state, { threads });
    const rng = new Rng(0);
    const train = randomBatch(rng, a.batch, rt.inputShape, cfg.model.numClasses);
    const evalBatch = randomBatch(rng, a.evalBatch, rt.inputShape, cfg.model.numClasses);
    const advrun = await timeSteps(a, rt, state, train, evalBatch) as Timings;
    await rt.release();
    // The peak of a process doing what a training run does (train, attack, eval), before the comparison below.
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    let stateInputs: Omit<Timings, 'train'> | undefined;
    if (rt.stateBinding === 'compiled') {
      const irt = new ModelRuntime(art, state, { threads, stateBinding: 'inputs' });
      stateInputs = await timeSteps(a, irt, state, train, evalBatch, false) as Omit<Timings, 'train'>;
      await irt.release();
    }
    let profiles: Record<Step, ProfileSummary> | undefined;
    if (a.profile !== undefined) {
      const dir = a.profile === '' ? mkdtempSync(join(tmpdir(), 'advrun-profile-')) : resolve(a.profile);
      mkdirSync(dir, { recursive: true });
      // Steady state: each graph's trace covers one session (no state changes between the attack steps).
      const prt = new ModelRuntime(art, state, { threads, profileDir: dir });
      await timeSteps({ ...a, attackSteps: a.iters + a.warmup }, prt, state, train, evalBatch);
      const traces = await prt.endProfiling();
      await prt.release();
      const producers = (graph: string) => producerNames(modelProtoToGraph(art.bytes[graph]!, graph).nodes);
      profiles = Object.fromEntries(STEPS.map((k) => [k, readProfile(traces[STEP_GRAPH[k]]!, a.warmup, producers(STEP_GRAPH[k]))])) as Record<Step, ProfileSummary>;
    }
    const torch = a.torch ? runTorch(a, threads) : undefined;
    const forwardFlops = graphFlops(buildModel(cfg.model, { bnMode: 'eval', seed: 0 }).graph, { N: 1 });
    const peak = await measurePeakGflops(threads);
    const peakGflops = peak.gflops;
    const fraction = <T extends Partial<Timings>>(t: T) => Object.fromEntries(STEPS.filter((k) => t[k]).map((k) => [k, (FORWARD_PASSES[k] * forwardFlops * t[k]!.imgPerSec) / 1e9 / peakGflops])) as Record<Step, number>;
    const report = {
      arch: cfg.model.arch, width: cfg.model.width ?? null, activation: activationName(cfg.model.activation),
      input: rt.inputShape, batch: a.batch, evalBatch: a.evalBatch, threads, iters: a.iters, attackSteps: a.attackSteps,
      stateBinding: rt.stateBinding, memArena: process.env.ADVRUN_MEM_ARENA === '1', nchwcBlock: nchwcWanted() ? await nchwcBlockSize() : 1, advrun, stateInputs: stateInputs ?? null, torch: torch ?? null,
      ratio: torch ? Object.fromEntries(STEPS.map((k) => [k, advrun[k].imgPerSec / torch[k].imgPerSec])) : null,
      ratioStateInputs: torch && stateInputs ? { attack: stateInputs.attack.imgPerSec / torch.attack.imgPerSec, eval: stateInputs.eval.imgPerSec / torch.eval.imgPerSec } : null,
      forwardGflopPerImage: forwardFlops / 1e9, peakGflops, peakMatmulGflops: peak.matmulGflops, peakConvGflops: peak.convGflops,
      fractionOfPeak: { advrun: fraction(advrun), stateInputs: stateInputs ? fraction(stateInputs) : null, torch: torch ? fraction(torch) : null },
      advrunPeakRssMb: peakRssMb, rssRatio: torch ? peakRssMb / torch.peakRssMb : null, cpu: cpus()[0]?.model ?? 'unknown',
      profile: profiles ?? null,
    };
    if (a.json) { console.log(JSON.stringify(report)); return; }
    printReport(report, profiles);
  },
};
