// `advrun train`: adversarial (or standard) training of a built-in architecture on a dataset.

import { wholeNumber } from './options.js';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Argv, CommandModule } from 'yargs';
import { DATASET_NAMES } from '../data/index.js';
import { archNames } from '../models/index.js';
import { camel, METHODS, readConfigFile, resolveTrainConfig, TRAIN_KEYS, type TrainConfig } from '../train/config.js';
import { train } from '../train/loop.js';
import { trainReporter } from './progress.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';

/** The generated-graph cache: <repo>/graphs (located from this module, whatever the working directory), or ADVRUN_GRAPHS_DIR. */
export const GRAPHS_DIR = resolve(process.env.ADVRUN_GRAPHS_DIR ?? fileURLToPath(new URL('../../graphs/', import.meta.url)));

function options(y: Argv) {
  return y
    .option('config', { type: 'string', describe: 'YAML/JSON file with the same keys; command-line values override it' })
    .option('arch', { type: 'string', describe: `architecture: ${archNames().join(', ')} (default small-cnn)` })
    .option('width', { type: 'number', describe: 'base width (small-cnn: 16; preact-resnet18, resnet50: 64; wrn: widen factor, 10)' })
    .option('depth', { type: 'number', describe: 'WideResNet depth' })
    .option('activation', { type: 'string', describe: 'relu|softplus|psoftplus(a)|silu|gelu|gelu-tanh|elu|celu(a)|smooth-relu' })
    .option('dataset', { type: 'string', describe: `${DATASET_NAMES.join(', ')} (default fashion-mnist-mini, shipped)` })
    .option('data-dir', { type: 'string', describe: 'directory holding the dataset files' })
    .option('image-size', { type: 'number', describe: 'folder: datasets: decode images to this square size (default 32)' })
    .option('input-resize', { type: 'number', describe: 'bilinearly upsample the input to this size inside the model (e.g. 224 for an ImageNet ResNet-50 on CIFAR)' })
    .option('mean', { type: 'string', describe: "the model's per-channel normalisation mean, comma-separated (default: the dataset's)" })
    .option('std', { type: 'string', describe: "the model's per-channel normalisation std (default: the dataset's)" })
    .option('classes', { type: 'string', describe: 'class subset, e.g. 0-4 or 5,7,9' })
    .option('val-split', { type: 'number', describe: 'fraction (or count) of the training set held out for validation (0.1)' })
    .option('limit', { type: 'number', describe: 'use only this many training examples' })
    .option('augment', { type: 'boolean', describe: 'random crop + flip (default true; --no-augment)' })
    .option('method', { choices: METHODS, describe: 'training method (default pgd-at)' })
    .option('epochs', { type: 'number' })
    .option('batch-size', { type: 'number' })
    .option('lr', { type: 'number' })
    .option('schedule', { choices: ['piecewise', 'cosine', 'cyclic', 'constant'] })
    .option('milestones', { type: 'string', describe: 'piecewise: epochs at which the lr is multiplied by 0.1, e.g. 30,60,90 (default 50% and 75% of training)' })
    .option('warmup', { type: 'number', describe: 'linear warm-up epochs (from 0)' })
    .option('momentum', { type: 'number' })
    .option('nesterov', { type: 'boolean' })
    .option('weight-decay', { type: 'number' })
    .option('weight-decay-scope', { choices: ['all', 'weights'], describe: 'all parameters (default) or conv/linear weights only (no BN affine, no biases)' })
    .option('label-smoothing', { type: 'number' })
    .option('eps', { type: 'string', describe: 'training attack L-inf budget in pixels, e.g. 0.1 or 8/255' })
    .option('alpha', { type: 'string', describe: 'training attack step size (default: method-specific)' })
    .option('steps', { type: 'number', describe: 'training attack steps' })
    .option('random-start-prob', { type: 'number', describe: 'probability of the random start per training example (1; SAT: 0.8)' })
    .option('beta', { type: 'number', describe: "TRADES' beta (6)" })
    .option('init', { type: 'string', describe: 'pre-trained checkpoint to fine-tune (ft-at, ft-trades, twins-at, twins-trades); the head is new' })
    .option('lambda', { type: 'number', describe: "TWINS' weight of the frozen wing's loss (1.0)" })
    .option('rho', { type: 'number', describe: "SAM's radius (0.05; large values = l-SAM / RFN)" })
    .option('smooth-backward', { choices: ['none', 'attacker', 'optimizer', 'both'], describe: "SAT: ReLU forward with sigma(alpha x) in the backward pass of the training attack and/or the weight update" })
    .option('smooth-alpha', { type: 'number', describe: 'alpha of the smooth backward (10)' })
    .option('save-every', { type: 'number', describe: 'also keep a checkpoint every K epochs (early-stopping baselines)' })
    .option('val-steps', { type: 'number', describe: 'PGD steps for per-epoch validation (10)' })
    .option('val-limit', { type: 'number', describe: 'validation examples evaluated per epoch (500)' })
    .option('seed', { type: 'number' })
    .option('ep', { choices: EXECUTION_PROVIDERS, describe: 'execution provider' })
    .option('threads', { type: 'number', describe: 'ONNX Runtime intra-op threads (0 = all cores)', coerce: wholeNumber('threads', 0) })
    .option('out', { type: 'string', demandOption: true, describe: 'run directory' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted run in --out' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON; no progress output' });
}


/** Config file values, then command-line values on top (only the options the user actually gave). */
export function mergeConfig(argv: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const fromFile = argv.config ? readConfigFile(String(argv.config), keys) : {};
  const fromCli: Record<string, unknown> = {};
  for (const k of keys) if (argv[k] !== undefined) fromCli[k] = argv[k];
  return { ...fromFile, ...fromCli };
}

export const trainCommand: CommandModule = {
  command: 'train',
  describe: 'train a model (standard, PGD-AT, TRADES, FGSM-RS, SAM, TWINS and fine-tuning) and write config, metrics, checkpoints, result',
  builder: (y) => options(y),
  handler: async (argv) => {
    const a = argv as Record<string, unknown>;
    const cfg: TrainConfig = resolveTrainConfig(mergeConfig(a, TRAIN_KEYS.map(camel)) as Partial<TrainConfig>);
    // Every file is written atomically, so stopping at once is safe; say how to continue.
    for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.once(sig, () => {
        const started = existsSync(join(String(a.out), 'checkpoint.safetensors'));
        process.stderr.write(started
          ? `advrun: interrupted; ${String(a.out)} keeps the last finished epoch: run the same command with --resume to continue\n`
          : `advrun: interrupted before the first epoch finished; run the same command again${existsSync(join(String(a.out), 'config.json')) ? ' with --resume' : ''}\n`);
        process.exit(code);
      });
    }
    const outcome = await train(cfg, { out: String(a.out), resume: !!a.resume, graphsDir: GRAPHS_DIR, reporter: trainReporter(!!a.json) });
    const last = outcome.metrics[outcome.metrics.length - 1]!;
    if (a.json) console.log(JSON.stringify({ out: outcome.files.dir, seconds: outcome.seconds, best_epoch: outcome.bestEpoch, final: last }));
    else console.log(`done in ${outcome.seconds.toFixed(0)}s: ${outcome.files.dir} (val clean ${(100 * last.val_clean_acc).toFixed(1)}%${last.val_robust_acc === null ? '' : `, PGD-${cfg.valSteps} ${(100 * last.val_robust_acc).toFixed(1)}%`})`);
  },
};
