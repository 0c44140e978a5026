// The training loop behind `advrun train`: data, per-method batch preparation (clean, PGD, FGSM-RS,
// TRADES), the generated train step, per-epoch validation, atomic checkpoints and exact resume.
//
// Every random choice is derived from (seed, epoch, batch), so a run resumed from its last
// epoch checkpoint produces exactly the numbers of an uninterrupted run.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { argmaxCorrect } from '../attacks/common.js';
import { createAttack } from '../attacks/index.js';
import { evaluate, type EvaluateOptions } from '../eval/evaluate.js';
import { FgsmRs } from '../attacks/fgsm.js';
import { Pgd } from '../attacks/pgd.js';
import type { Attack, AttackModel } from '../attacks/types.js';
import { loadCheckpoint, saveCheckpoint } from '../checkpoint/checkpoint.js';
import { detectModelKind, forgetModelFile } from '../interop/load.js';
import { decodeForeignState, normalizerMismatch, withoutWrapperPrefixes } from '../interop/state-dict.js';
import { importedState, importOnnx } from '../interop/onnx-import.js';
import { ensureImportedArtifacts } from '../interop/imported-artifacts.js';
import type { ImportedCheckpointSource } from '../interop/load.js';
import { defaultAugment, loadDataset, numBatches, streamBatches, type Dataset } from '../data/index.js';
import { deriveSeed } from '../data/seeds.js';
import { buildModel, parseActivation, type ModelSpec } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { provenance } from '../util/provenance.js';
import { ensureArtifacts, type ArtifactConfig, type Manifest as ArtifactsManifest } from './artifacts.js';
import { sgdConfig, type SgdConfig } from './optimizer.js';
import { kebab, perChannelValues, type Method, type TrainConfig } from './config.js';
import type { Tensor } from '../ir/tensor.js';
import { initialState, ModelRuntime } from './runtime.js';
import type { LossConfig } from './objectives.js';
import { learningRate } from './schedule.js';
import { runFiles, type RunFiles } from './run-files.js';

export interface EpochMetrics {
  epoch: number;
  lr: number;
  train_loss: number;
  train_acc: number;
  val_clean_acc: number;
  val_robust_acc: number | null;
  time_s: number;
}

/** How a run reports progress; the CLI supplies a progress bar on a TTY and nothing in --json/CI mode. */
export interface Reporter {
  start(epochs: number, batchesPerEpoch: number, firstEpoch: number): void;
  batch(epoch: number, index: number, loss: number): void;
  epoch(m: EpochMetrics): void;
  log(message: string): void;
  stop(): void;
}

export const silentReporter: Reporter = { start() {}, batch() {}, epoch() {}, log() {}, stop() {} };

const RESUME_IGNORED = new Set(['ep', 'threads']);

/** Refuse to overwrite another run; on --resume, refuse a changed configuration (name the key). */
function prepareRunDir(files: RunFiles, cfg: TrainConfig, resume: boolean): void {
  if (!existsSync(files.config)) {
    if (resume && existsSync(files.dir)) throw new UserError(`--resume: ${files.dir} has no config.json, so there is no run to resume`);
    return;
  }
  if (!resume) {
    const state = existsSync(files.result) ? 'a finished run' : 'an interrupted run (pass --resume to continue it)';
    throw new UserError(`${files.dir} already holds ${state}; choose another --out`);
  }
  const old = readRunJson(files.config, 'train') as Record<string, unknown>;
  const now = cfg as unknown as Record<string, unknown>;
  // Every setting, the ones set then but not now included (an option left out must not silently change the run).
  for (const k of new Set([...Object.keys(old), ...Object.keys(now)])) {
    if (RESUME_IGNORED.has(k) || JSON.stringify(old[k]) === JSON.stringify(now[k])) continue;
    const was = old[k] === undefined ? 'not set' : `${JSON.stringify(old[k])}`;
    const is = now[k] === undefined ? 'is not set now' : `is ${JSON.stringify(now[k])} now`;
    throw new UserError(`--resume: ${k} was ${was} in ${files.config} but ${is}; resume with the same settings (--${kebab(k)}) or use another --out`);
  }
}

/** A run directory's JSON file (`key` inside it), with a one-line error when it is damaged. */
function readRunJson(path: string, key: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path} is damaged (${(e as Error).message}); restore it or start the run again with another --out`);
  }
  const v = (parsed as Record<string, unknown> | null)?.[key];
  if (!v || typeof v !== 'object') throw new UserError(`${path} has no "${key}" section; restore it or start the run again with another --out`);
  return v;
}

export function modelSpecFor(cfg: Pick<TrainConfig, 'arch' | 'width' | 'depth' | 'activation' | 'inputResize' | 'mean' | 'std'>, ds: Dataset): ModelSpec {
  if (ds.height !== ds.width) throw new UserError(`${ds.name}: images are ${ds.height}x${ds.width}; advrun's models need square inputs`);
  const channelValues = (v: number[] | undefined, what: string, dflt: number[]) => (v ? perChannelValues(v, what, ds.channels, ds.name) : dflt);
  return {
    arch: cfg.arch, width: cfg.width, depth: cfg.depth, activation: parseActivation(cfg.activation),
    numClasses: ds.numClasses, inChannels: ds.channels, imageSize: ds.height, mean: channelValues(cfg.mean, 'mean', ds.mean), std: channelValues(cfg.std, 'std', ds.std),
    ...(cfg.inputResize !== undefined ? { inputResize: cfg.inputResize } : {}),
  };
}

/** The run's SGD settings; the decay scope is recorded only when it is not the default (artifact keys stay put). */
function sgdConfigFor(cfg: TrainConfig): SgdConfig {
  return { ...sgdConfig(cfg), ...(cfg.weightDecayScope ? { decayScope: cfg.weightDecayScope } : {}) };
}

export function artifactConfigFor(cfg: TrainConfig, model: ModelSpec): ArtifactConfig {
  const ls = cfg.labelSmoothing;
  const loss: LossConfig =
    cfg.method === 'trades' || cfg.method === 'ft-trades' ? { kind: 'trades', beta: cfg.beta, labelSmoothing: ls }
    : cfg.method === 'twins-at' ? { kind: 'twins-at', lambda: cfg.lambda, labelSmoothing: ls }
    : cfg.method === 'twins-trades' ? { kind: 'twins-trades', lambda: cfg.lambda, beta: cfg.beta, labelSmoothing: ls }
    : { kind: 'ce', labelSmoothing: ls };
  const sb = cfg.smoothBackward;
  return {
    model, loss,
    optimizer: sgdConfigFor(cfg),
    plannedBatch: cfg.batchSize,
    ...(cfg.method === 'sam' ? { samRho: cfg.rho } : {}),
    ...(sb !== 'none' ? { smoothBackward: { alpha: cfg.smoothAlpha, attacker: sb === 'attacker' || sb === 'both', optimizer: sb === 'optimizer' || sb === 'both' } } : {}),
  };
}

/** Methods whose train step takes the clean batch and the adversarial one (TRADES-style objectives). */
const TAKES_CLEAN_AND_ADV = new Set<Method>(['trades', 'ft-trades', 'twins-trades']);

/** The attack used to make training examples, seeded per batch (eval-mode BN, as recorded in result.json). */
function trainingAttack(cfg: TrainConfig, seed: number): Attack | undefined {
  const pgd = (loss: 'ce' | 'kl') => new Pgd({ eps: cfg.eps, norm: 'linf', steps: cfg.steps, stepSize: cfg.alpha, randomStart: true, randomStartProb: cfg.randomStartProb, loss, seed });
  switch (cfg.method) {
    case 'standard': case 'sam': return undefined;
    case 'fgsm-rs': return new FgsmRs({ eps: cfg.eps, norm: 'linf', stepSize: cfg.alpha, seed });
    case 'trades': case 'ft-trades': return pgd('kl');
    // TWINS-TRADES also trains on CE-based PGD examples (the official code).
    case 'pgd-at': case 'ft-at': case 'twins-at': case 'twins-trades': return pgd('ce');
  }
}

/** Methods an imported ONNX graph can be fine-tuned with: cross-entropy on clean or adversarial batches. */
const ONNX_FINE_TUNE_METHODS = new Set<Method>(['standard', 'pgd-at', 'fgsm-rs', 'ft-at']);

/**
 * `--init model.onnx`: fine-tune the imported graph itself (its initializers become parameters, its own
 * head is kept), so the dataset must have the model's input size and classes.
 */
async function importForFineTuning(cfg: TrainConfig, bytes: Uint8Array, ds: Dataset, graphsDir: string) {
  if (!ONNX_FINE_TUNE_METHODS.has(cfg.method)) throw new UserError(`--init ${cfg.init}: an imported ONNX model fine-tunes with ${[...ONNX_FINE_TUNE_METHODS].join(', ')} (cross-entropy), not ${cfg.method}`);
  const im = await importOnnx(bytes, cfg.init!);
  const sp = im.spec;
  if (sp.inChannels !== ds.channels || sp.imageSize !== ds.height || sp.numClasses !== ds.numClasses) {
    throw new UserError(`--init ${cfg.init} takes ${sp.inChannels}x${sp.imageSize}x${sp.imageSize} images and ${sp.numClasses} classes but ${ds.name} has ${ds.channels}x${ds.height}x${ds.width} and ${ds.numClasses}`);
  }
  const train = { labelSmoothing: cfg.labelSmoothing, optimizer: sgdConfigFor(cfg), plannedBatch: cfg.batchSize };
  // Recorded in the checkpoints: advrun eval/export rebuild the model from this ONNX file (see openModel).
  const onnx: ImportedCheckpointSource = { file: resolve(cfg.init!), sha256: im.sha256 };
  return { spec: sp, artifacts: ensureImportedArtifacts(im, graphsDir, { train }), state: importedState(im), onnx };
}

function withZeroMomentum(state: Map<string, Tensor>, manifest: ArtifactsManifest): Map<string, Tensor> {
  const out = new Map(state);
  for (const m of manifest.momentum) out.set(m, { dtype: 'float32', dims: [...state.get(m.slice('momentum.'.length))!.dims], data: new Float32Array(state.get(m.slice('momentum.'.length))!.data.length) });
  return out;
}

/**
 * The tensors of a pre-trained model: an advrun checkpoint, or a PyTorch state_dict (.pt / .safetensors)
 * with its wrapper prefixes removed. A checkpoint that records its input normaliser (robustness library)
 * must be fine-tuned with that normalisation: its features were learnt on inputs normalised that way.
 */
function pretrainedState(init: string, spec: ModelSpec, expectedNames: string[]): { state: Map<string, Tensor>; spec?: ModelSpec } {
  const kind = detectModelKind(init);
  forgetModelFile(init); // read once here; not kept for the whole run
  if (kind.kind === 'advrun') return { state: kind.checkpoint!.state, spec: kind.checkpoint!.meta.model };
  if (kind.kind !== 'pytorch') throw new UserError(`--init ${init}: fine-tuning starts from an advrun checkpoint or a PyTorch state_dict (.pt / .safetensors), not an ONNX model`);
  const foreign = decodeForeignState(kind.bytes, init);
  const mismatch = normalizerMismatch(foreign, spec, `--init ${init}`);
  if (mismatch) throw new UserError(mismatch);
  return { state: withoutWrapperPrefixes(foreign.tensors, expectedNames).tensors };
}

/**
 * Initial state of a fine-tuning run: every tensor of the pre-trained model except the linear head,
 * which is new (seeded); TWINS' frozen BN layers start as copies of the pre-trained BN layers.
 */
export function fineTuneState(init: string, manifest: ArtifactsManifest, seed: number): Map<string, Tensor> {
  const fresh = initialState(manifest, seed);
  const spec = manifest.config.model;
  const pre = pretrainedState(init, spec, [...fresh.keys()]);
  for (const k of ['arch', 'width', 'depth', 'inChannels'] as const) {
    if (pre.spec && pre.spec[k] !== spec[k]) throw new UserError(`--init ${init} is a ${k} ${JSON.stringify(pre.spec[k])} model but this run builds ${k} ${JSON.stringify(spec[k])}`);
  }
  // What the network body sees: a 224 ImageNet model fine-tunes on 32x32 images upsampled to 224 inside it.
  const seen = (s: ModelSpec) => s.inputResize ?? s.imageSize;
  if (pre.spec && seen(pre.spec) !== seen(spec)) throw new UserError(`--init ${init} was trained on ${seen(pre.spec)}x${seen(pre.spec)} inputs but this run feeds it ${seen(spec)}x${seen(spec)}; use --input-resize ${seen(pre.spec)}`);
  // The head is the module of the last parameter a single forward pass creates (fc.bias, linear.bias...).
  const last = buildModel(spec, { bnMode: 'eval', seed: 0 }).params.at(-1)!.name;
  const head = last.slice(0, last.lastIndexOf('.') + 1);
  for (const name of fresh.keys()) {
    if (name.startsWith('momentum.') || name.startsWith(head)) continue;
    const source = name.startsWith('frozen.') ? name.slice('frozen.'.length) : name;
    const t = pre.state.get(source);
    if (!t) throw new UserError(`--init ${init} has no tensor "${source}" for ${spec.arch}`);
    if (t.dims.join() !== fresh.get(name)!.dims.join()) throw new UserError(`--init ${init}: tensor "${source}" has shape [${t.dims}] but the model needs [${fresh.get(name)!.dims}]`);
    fresh.set(name, t);
  }
  return fresh;
}

/** Number of correctly classified examples. */
export function accuracy(logits: Float32Array, y: Int32Array, k: number): number {
  return argmaxCorrect(logits, y, k).reduce((a, v) => a + v, 0);
}

/**
 * The per-epoch validation, computed as `advrun eval` computes accuracy: clean, and PGD at the training eps with
 * --val-steps steps and the run's seed (fixed, so epochs are comparable) on the clean-correct examples of the
 * first --val-limit validation images.
 */
function validationOptions(cfg: TrainConfig): EvaluateOptions {
  return { attack: cfg.eps > 0 ? 'pgd' : null, eps: cfg.eps, norm: 'linf', steps: cfg.valSteps, randomStart: true, seed: cfg.seed, batchSize: cfg.batchSize, limit: cfg.valLimit, sanityChecks: false };
}

function valAttackSettings(cfg: TrainConfig): Record<string, unknown> {
  const o = validationOptions(cfg);
  return o.attack ? createAttack(o.attack, o).settings() : { attack: null };
}

export async function validate(model: AttackModel, ds: Dataset, cfg: TrainConfig): Promise<{ clean: number; robust: number | null }> {
  const r = await evaluate(model, ds, validationOptions(cfg));
  return { clean: r.clean_acc, robust: r.robust_acc };
}

export interface TrainOutcome {
  files: RunFiles;
  metrics: EpochMetrics[];
  bestEpoch: number;
  seconds: number;
}

export async function train(cfg: TrainConfig, opts: { out: string; resume?: boolean; graphsDir: string; reporter?: Reporter }): Promise<TrainOutcome> {
  const reporter = opts.reporter ?? silentReporter;
  const files = runFiles(opts.out);
  prepareRunDir(files, cfg, !!opts.resume);

  const dataOpts = { dataDir: cfg.dataDir, imageSize: cfg.imageSize, classes: cfg.classes, val: cfg.valSplit, seed: 0, log: (l: string) => reporter.log(l) };
  const trainSet = await loadDataset(cfg.dataset, 'train', { ...dataOpts, limit: cfg.limit });
  const valSet = await loadDataset(cfg.dataset, 'val', dataOpts);
  reporter.log(`data: ${trainSet.name} from ${trainSet.source} (${trainSet.n} train, ${valSet.n} validation images)`);
  const init = cfg.init ? detectModelKind(cfg.init) : undefined;
  const imported = init?.kind === 'onnx' ? await importForFineTuning(cfg, init.bytes, trainSet, opts.graphsDir) : undefined;
  if (imported) forgetModelFile(cfg.init!); // other kinds: fineTuneState takes them from this read, then drops it
  const spec = imported?.spec ?? modelSpecFor(cfg, trainSet);
  const artifacts = imported?.artifacts ?? ensureArtifacts(artifactConfigFor(cfg, spec), opts.graphsDir);

  let rt: ModelRuntime;
  let metrics: EpochMetrics[] = [];
  let best = { epoch: -1, score: -Infinity };
  let startEpoch = 0;
  if (opts.resume && existsSync(files.checkpoint)) {
    const ck = loadCheckpoint(files.checkpoint);
    rt = new ModelRuntime(artifacts, ck.state, { ep: cfg.ep, threads: cfg.threads });
    rt.step = ck.meta.step;
    startEpoch = ck.meta.epoch;
    best = (ck.meta.extra?.best as typeof best) ?? best;
    // Keep only the epochs the checkpoint includes: later lines belong to the interrupted epoch.
    metrics = readMetrics(files.metrics).filter((m) => m.epoch < startEpoch);
    if (metrics.length < startEpoch) {
      throw new UserError(`${files.metrics} has ${metrics.length} epoch records but ${files.checkpoint} is after epoch ${startEpoch}; restore the file (resuming would lose those epochs' records) or start again with another --out`);
    }
    reporter.log(`resuming ${files.dir} after epoch ${startEpoch}`);
  } else {
    const state = imported ? withZeroMomentum(imported.state, artifacts.manifest) : cfg.init ? fineTuneState(cfg.init, artifacts.manifest, cfg.seed) : initialState(artifacts.manifest, cfg.seed);
    rt = new ModelRuntime(artifacts, state, { ep: cfg.ep, threads: cfg.threads });
  }
  // The train step's session exists before the run directory says a run is in it: a run that cannot start
  // (an unavailable --ep, bad --threads) leaves nothing that would block the corrected command.
  await rt.prepare();
  mkdirSync(files.dir, { recursive: true });
  writeFileAtomic(files.config, JSON.stringify({ train: cfg, model: spec, artifacts: artifacts.manifest.key, ...provenance() }, null, 2));
  writeFileAtomic(files.metrics, metrics.map((m) => JSON.stringify(m) + '\n').join(''));

  const schedule = { kind: cfg.schedule, lr: cfg.lr, epochs: cfg.epochs, warmup: cfg.warmup, milestones: cfg.milestones?.map((m) => m / cfg.epochs) };
  const nb = numBatches(trainSet.n, cfg.batchSize, false);
  const augment = cfg.augment ? defaultAugment(trainSet) : false;
  const k = spec.numClasses;
  const twins = cfg.method.startsWith('twins');
  reporter.start(cfg.epochs, nb, startEpoch);
  try {
    for (let epoch = startEpoch; epoch < cfg.epochs; epoch++) {
      const te = Date.now();
      let lossSum = 0, correct = 0, seen = 0, lr = 0;
      await rt.restartStateRuns(); // what ran before (the last validation) must not change this epoch: exact --resume
      const attacker = rt.trainingAttacker();
      for await (const batch of streamBatches(trainSet, { batchSize: cfg.batchSize, seed: cfg.seed, epoch, augment })) {
        if (twins && batch.n % 2 === 1) {
          if (epoch === startEpoch) reporter.log(`TWINS: dropping the last batch of each epoch (${batch.n} images, odd)`);
          continue;
        }
        lr = learningRate(schedule, epoch + batch.index / nb);
        const attack = trainingAttack(cfg, deriveSeed(cfg.seed, epoch, batch.index));
        const xAdv = attack ? (await attack.run(attacker, batch.x, batch.y, batch.n)).xAdv : undefined;
        const { loss, logits } = TAKES_CLEAN_AND_ADV.has(cfg.method)
          ? await rt.trainStep(batch.x, batch.y, batch.n, lr, xAdv)
          : await rt.trainStep(xAdv ?? batch.x, batch.y, batch.n, lr);
        lossSum += loss * batch.n;
        correct += accuracy(logits, batch.y, k);
        seen += batch.n;
        reporter.batch(epoch, batch.index, loss);
      }
      const val = await validate(rt, valSet, cfg);
      const m: EpochMetrics = { epoch, lr, train_loss: lossSum / seen, train_acc: correct / seen, val_clean_acc: val.clean, val_robust_acc: val.robust, time_s: (Date.now() - te) / 1000 };
      metrics.push(m);
      const score = val.robust ?? val.clean;
      const isBest = score > best.score;
      if (isBest) best = { epoch, score };
      const meta = { model: spec, epoch: epoch + 1, step: rt.step, extra: { best, artifacts: artifacts.manifest.key, dataset: cfg.dataset, classes: cfg.classes ?? null, valSplit: cfg.valSplit, limit: cfg.limit ?? null, method: cfg.method, ...(imported ? { onnx: imported.onnx } : {}) } };
      const state = rt.getState();
      // Metrics, best and snapshots first, the latest checkpoint last: a crash in between leaves the
      // latest checkpoint one epoch behind, and resuming drops the extra metrics line and redoes that
      // epoch identically.
      writeFileAtomic(files.metrics, metrics.map((x) => JSON.stringify(x) + '\n').join(''));
      if (isBest) saveCheckpoint(files.best, state, meta);
      if (cfg.saveEvery > 0 && (epoch + 1) % cfg.saveEvery === 0) saveCheckpoint(files.snapshot(epoch + 1), state, meta);
      saveCheckpoint(files.checkpoint, state, meta);
      reporter.epoch(m);
    }
  } finally {
    reporter.stop();
    await rt.release();
  }
  // Training time over every epoch, those before a --resume included (each epoch records its own).
  const seconds = metrics.reduce((a, m) => a + m.time_s, 0);
  const last = metrics[metrics.length - 1]!;
  writeFileAtomic(files.result, JSON.stringify({
    kind: 'train', method: cfg.method, dataset: cfg.dataset, arch: cfg.arch, activation: cfg.activation,
    epochs: cfg.epochs, seed: cfg.seed, attack: cfg.eps === 0 ? null : { norm: 'linf', eps: cfg.eps, alpha: cfg.alpha, steps: cfg.steps, random_start_prob: cfg.randomStartProb ?? 1, bn_mode: 'eval', smooth_backward: cfg.smoothBackward },
    method_settings: methodSettings(cfg),
    final: { val_clean_acc: last.val_clean_acc, val_robust_acc: last.val_robust_acc, val_attack: { ...valAttackSettings(cfg), n: Math.min(cfg.valLimit, valSet.n) } },
    best_epoch: best.epoch, checkpoint: files.checkpoint, best_checkpoint: files.best, train_seconds: seconds, ...provenance(),
  }, null, 2));
  return { files, metrics, bestEpoch: best.epoch, seconds };
}

/** The settings specific to the method, for result.json (they change the number). */
function methodSettings(cfg: TrainConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (cfg.init) out.init = cfg.init;
  if (cfg.method.includes('trades')) out.beta = cfg.beta;
  if (cfg.method.startsWith('twins')) out.lambda = cfg.lambda;
  if (cfg.method === 'sam') out.rho = cfg.rho;
  if (cfg.smoothBackward !== 'none') out.smooth_backward = { variant: cfg.smoothBackward, alpha: cfg.smoothAlpha };
  if (cfg.activation !== 'relu') out.activation = cfg.activation;
  return out;
}

export function readMetrics(path: string): EpochMetrics[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').map((l, i) => {
    if (!l.trim()) return undefined;
    try {
      return JSON.parse(l) as EpochMetrics;
    } catch {
      throw new UserError(`${path}: line ${i + 1} is not a metrics record; remove it (or restore the file) and resume again`);
    }
  }).filter((m): m is EpochMetrics => m !== undefined);
}
