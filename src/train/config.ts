// The resolved configuration of a training run: every setting that changes the result, with the
// defaults of the adversarial-training literature, validated before anything runs.

import { readFileSync } from 'node:fs';
import { closest } from 'fastest-levenshtein';
import YAML from 'yaml';
import { UserError } from '../util/errors.js';
import { DECAY_SCOPES, sgdConfig, type DecayScope } from './optimizer.js';
import type { ScheduleKind } from './schedule.js';
import type { ExecutionProvider } from '../runtime/providers.js';

export const METHODS = ['standard', 'pgd-at', 'trades', 'fgsm-rs', 'sam', 'ft-at', 'ft-trades', 'twins-at', 'twins-trades'] as const;
/** Methods that fine-tune a pre-trained checkpoint (--init) with a new linear head. */
export const FINE_TUNE_METHODS: readonly Method[] = ['ft-at', 'ft-trades', 'twins-at', 'twins-trades'];
export const SMOOTH_BACKWARD = ['none', 'attacker', 'optimizer', 'both'] as const;
export type Method = (typeof METHODS)[number];

export interface TrainConfig {
  arch: string;
  width?: number;
  depth?: number;
  activation: string;
  dataset: string;
  dataDir?: string;
  /** folder: datasets: decode (resize, centre-crop) images to this square size (default 32). */
  imageSize?: number;
  /** Bilinear upsampling inside the model, as its first op (TWINS: CIFAR-10 to 224 for an ImageNet ResNet-50). */
  inputResize?: number;
  /**
   * The model's normalisation constants, per channel (default: the dataset's). An ImageNet checkpoint keeps
   * ImageNet's when fine-tuned on CIFAR-10, as TWINS' code does.
   */
  mean?: number[];
  std?: number[];
  classes?: string;
  /** Fraction (<1) or count of the training set held out for validation. */
  valSplit: number;
  /** Use only this many training examples (after the validation split). */
  limit?: number;
  augment: boolean;
  method: Method;
  epochs: number;
  batchSize: number;
  lr: number;
  schedule: ScheduleKind;
  /** Piecewise schedule: epochs at which the learning rate is multiplied by 0.1 (default: 50% and 75% of training). */
  milestones?: number[];
  /** Linear warm-up from 0 over this many epochs. */
  warmup: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Conv/linear 'weights' only (no BN affine, no biases); unset: every parameter (PyTorch's default). */
  weightDecayScope?: Exclude<DecayScope, 'all'>;
  labelSmoothing: number;
  /** Training attack budget (L-inf, pixels). */
  eps: number;
  /** Training attack step size. */
  alpha: number;
  /** Training attack steps. */
  steps: number;
  /** Probability (< 1) that a training-attack example gets the random start (else it starts at x); SAT: 0.8. Unset: always. */
  randomStartProb?: number;
  /** TRADES' beta. */
  beta: number;
  /** Validation: PGD steps and examples evaluated each epoch. */
  valSteps: number;
  valLimit: number;
  seed: number;
  ep: ExecutionProvider;
  threads: number;
  /** Pre-trained checkpoint to fine-tune (ft-*, twins-*); its head is replaced by a new one. */
  init?: string;
  /** TWINS' weight of the frozen wing's loss. */
  lambda: number;
  /** SAM's neighbourhood radius (0.05 = SAM; larger = l-SAM / RFN). */
  rho: number;
  /** SAT's gradient-quality variants: ReLU forward with the sigma(alpha x) derivative in the backward pass. */
  smoothBackward: (typeof SMOOTH_BACKWARD)[number];
  smoothAlpha: number;
  /** Keep a snapshot every K epochs (early-stopping baselines); 0 = none. */
  saveEvery: number;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'eps' | 'alpha' | 'steps'> & Partial<TrainConfig> = {
  arch: 'small-cnn', activation: 'relu', dataset: 'fashion-mnist-mini', valSplit: 0.1, augment: true,
  method: 'pgd-at', epochs: 10, batchSize: 128, lr: 0.1, schedule: 'piecewise', warmup: 0, momentum: 0.9,
  nesterov: false, weightDecay: 5e-4, labelSmoothing: 0, beta: 6, valSteps: 10, valLimit: 500, seed: 0, ep: 'cpu', threads: 0,
  lambda: 1, rho: 0.05, smoothBackward: 'none', smoothAlpha: 10, saveEvery: 0,
};

export const TRAIN_KEYS = [...Object.keys(TRAIN_DEFAULTS), 'width', 'depth', 'dataDir', 'imageSize', 'inputResize', 'classes', 'limit', 'eps', 'alpha', 'steps', 'init', 'milestones', 'weightDecayScope', 'randomStartProb', 'mean', 'std'];

/** "8/255" or "0.1" -> number. */
export function parseFraction(text: string | number, what: string): number {
  if (typeof text === 'number') return text;
  const m = /^\s*([0-9.eE+-]+)\s*(?:\/\s*([0-9.eE+-]+))?\s*$/.exec(text);
  const v = m ? Number(m[1]) / (m[2] ? Number(m[2]) : 1) : NaN;
  if (!Number.isFinite(v)) throw new UserError(`--${what} "${text}" is not a number (use e.g. 0.1 or 8/255)`);
  return v;
}

/** Option names: kebab-case on the command line and in files, camelCase in configs. */
export const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
export const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Options that say where and how a run is written, not what it computes: command line only. */
const COMMAND_LINE_ONLY = ['out', 'config', 'resume', 'json'];

/** Read a YAML/JSON config file; unknown keys are an error naming the nearest valid key. */
export function readConfigFile(path: string, validKeys: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`cannot read config file ${path}`);
  }
  let obj: unknown;
  try {
    obj = /\.json$/i.test(path) ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new UserError(`config file ${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new UserError(`config file ${path} must hold a mapping of option: value`);
  const out: Record<string, unknown> = {};
  const valid = validKeys.map(camel);
  for (const [k, v] of Object.entries(obj)) {
    const key = camel(k);
    if (COMMAND_LINE_ONLY.includes(key)) throw new UserError(`config file ${path}: "${k}" is given on the command line (--${kebab(key)}), not in a config file`);
    if (!valid.includes(key)) throw new UserError(`config file ${path}: unknown key "${k}" (did you mean "${kebab(closest(key, valid))}"?)`);
    out[key] = v;
  }
  return out;
}

/** "30,60,90" (command line, grid specs) or [30, 60, 90] (config files) -> sorted epochs, validated. */
export function parseMilestones(v: string | number | number[], epochs: number): number[] {
  const list = Array.isArray(v) ? v : String(v).split(',').map((s) => Number(s.trim()));
  if (list.some((m) => !Number.isFinite(m) || m <= 0 || m >= epochs)) throw new UserError(`--milestones ${String(v)}: each must be an epoch strictly between 0 and --epochs ${epochs}`);
  if (list.some((m, i) => i > 0 && m <= list[i - 1]!)) throw new UserError(`--milestones ${String(v)}: epochs must increase`);
  return list.map(Number);
}

/** "0.485,0.456,0.406" (command line, grid specs) or [0.485, 0.456, 0.406] (config files) -> numbers. */
export function parseNumberList(v: string | number | number[], what: string): number[] {
  const list = Array.isArray(v) ? v.map(Number) : String(v).split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((x) => !Number.isFinite(x))) throw new UserError(`--${what} "${String(v)}" is not a comma-separated list of numbers`);
  return list;
}

/** Per-channel values (--mean, --std) for `channels` channels: one value stands for every channel. */
export function perChannelValues(list: number[], what: string, channels: number, owner: string): number[] {
  if (list.length === 1 && channels > 1) return Array<number>(channels).fill(list[0]!);
  if (list.length !== channels) throw new UserError(`--${what} has ${list.length} values but ${owner} has ${channels} channels`);
  return list;
}

type ListKeys = 'milestones' | 'mean' | 'std';
type RawTrainConfig = Partial<Omit<TrainConfig, ListKeys>> & { eps?: number | string; alpha?: number | string } & { [K in ListKeys]?: string | number | number[] };

/** Defaults that depend on the method (the papers' settings, scaled to the eps given). */
export function resolveTrainConfig(raw: RawTrainConfig): TrainConfig {
  const c = { ...TRAIN_DEFAULTS, ...raw } as Omit<TrainConfig, ListKeys | 'eps' | 'alpha'> & RawTrainConfig;
  if (!METHODS.includes(c.method)) throw new UserError(`unknown method "${c.method}"; use one of ${METHODS.join(', ')}`);
  const clean = c.method === 'standard' || c.method === 'sam';
  const eps = c.eps === undefined ? (clean ? 0 : 0.1) : parseFraction(c.eps, 'eps');
  if (!(eps >= 0 && eps <= 1)) throw new UserError(`--eps ${eps} is outside the data range [0, 1] (images are in [0,1]; use e.g. 8/255)`);
  const steps = c.steps ?? (c.method === 'fgsm-rs' ? 1 : 10);
  // PGD-AT: eps/4 (2/255 at 8/255); TRADES: 0.007 at 0.031 (~eps/4.4); FGSM-RS: 1.25 eps.
  const alphaDefault = c.method === 'fgsm-rs' ? 1.25 * eps : c.method === 'trades' || c.method === 'ft-trades' ? (eps * 0.007) / 0.031 : eps / 4;
  const alpha = c.alpha === undefined ? alphaDefault : parseFraction(c.alpha, 'alpha');
  const { milestones: rawMilestones, mean, std, ...rest } = c;
  const cfg: TrainConfig = { ...rest, eps, alpha, steps };
  if (mean !== undefined) cfg.mean = parseNumberList(mean, 'mean');
  if (std !== undefined) cfg.std = parseNumberList(std, 'std');
  if (cfg.std?.some((s) => !(s > 0))) throw new UserError('--std values must be positive');
  if (rawMilestones !== undefined) {
    if (cfg.schedule !== 'piecewise') throw new UserError(`--milestones applies to --schedule piecewise, not ${cfg.schedule}`);
    cfg.milestones = parseMilestones(rawMilestones, cfg.epochs);
  }
  const positiveInts: (keyof TrainConfig)[] = ['epochs', 'batchSize', 'steps', 'valLimit'];
  for (const k of positiveInts) if (!Number.isInteger(cfg[k]) || (cfg[k] as number) < 1) throw new UserError(`--${kebab(k)} must be a positive integer, got ${cfg[k]}`);
  if (!(cfg.lr > 0)) throw new UserError(`--lr must be positive, got ${cfg.lr}`);
  if (!Number.isInteger(cfg.threads) || cfg.threads < 0) throw new UserError(`--threads must be a whole number >= 0, got ${cfg.threads}`); // config files skip the option's own check
  sgdConfig(cfg); // validates momentum, nesterov and weight decay (one-line errors); the loop builds its own later
  if (!clean && eps === 0) throw new UserError(`--method ${cfg.method} needs --eps > 0`);
  if (FINE_TUNE_METHODS.includes(cfg.method) && !cfg.init) throw new UserError(`--method ${cfg.method} fine-tunes a pre-trained model: pass --init CHECKPOINT`);
  if (cfg.method.startsWith('twins') && cfg.batchSize % 2 !== 0) throw new UserError(`--method ${cfg.method} splits each batch into two halves: --batch-size must be even, got ${cfg.batchSize}`);
  if (!SMOOTH_BACKWARD.includes(cfg.smoothBackward)) throw new UserError(`--smooth-backward must be one of ${SMOOTH_BACKWARD.join(', ')}`);
  if (cfg.smoothBackward !== 'none' && cfg.activation !== 'relu') throw new UserError('--smooth-backward changes ReLU\'s backward pass: use it with --activation relu');
  if (!(cfg.rho > 0)) throw new UserError(`--rho must be positive, got ${cfg.rho}`);
  if (!Number.isInteger(cfg.saveEvery) || cfg.saveEvery < 0) throw new UserError('--save-every must be a non-negative integer');
  if (!['piecewise', 'cosine', 'cyclic', 'constant'].includes(cfg.schedule)) throw new UserError(`unknown --schedule "${cfg.schedule}"; use piecewise, cosine, cyclic or constant`);
  if (cfg.labelSmoothing < 0 || cfg.labelSmoothing >= 1) throw new UserError('--label-smoothing must be in [0, 1)');
  // The defaults are stored as "unset", so a run's id (a hash of its config) is the same however it is spelled
  // and did not change when these options were added.
  const scope = cfg.weightDecayScope as DecayScope | undefined;
  if (scope !== undefined && !DECAY_SCOPES.includes(scope)) throw new UserError(`--weight-decay-scope must be one of ${DECAY_SCOPES.join(', ')}, got ${scope}`);
  if (scope === 'all') delete cfg.weightDecayScope;
  const prob = cfg.randomStartProb;
  if (prob !== undefined && !(prob >= 0 && prob <= 1)) throw new UserError(`--random-start-prob must be in [0, 1], got ${prob}`);
  if (prob === 1) delete cfg.randomStartProb;
  if (!(cfg.warmup >= 0 && cfg.warmup < cfg.epochs)) throw new UserError(`--warmup must be at least 0 and below --epochs ${cfg.epochs}, got ${cfg.warmup}`);
  for (const k of ['imageSize', 'inputResize'] as const) {
    const v = cfg[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > 4096)) throw new UserError(`--${kebab(k)} must be a whole number of pixels (1..4096), got ${v}`);
  }
  // Built-in datasets have one size; upsampling them is the model's job (--input-resize).
  if (cfg.imageSize !== undefined && !cfg.dataset.startsWith('folder:')) throw new UserError(`--image-size sets the decoded size of folder: datasets; ${cfg.dataset} has a fixed size (use --input-resize to upsample inside the model)`);
  return cfg;
}
