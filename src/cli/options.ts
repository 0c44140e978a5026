// Option groups shared by several commands, and their conversion into configs.

import type { Argv } from 'yargs';
import { archNames, parseActivation, type ModelSpec } from '../models/index.js';
import { parseNumberList, perChannelValues } from '../train/config.js';
import { UserError } from '../util/errors.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';

export function withModelOptions<T>(y: Argv<T>) {
  return y
    .option('arch', { type: 'string', default: 'small-cnn', describe: `architecture (${archNames().join(', ')})` })
    .option('width', { type: 'number', describe: 'base width (channels of the first stage)' })
    .option('activation', { type: 'string', default: 'relu', describe: 'relu|softplus|psoftplus(a)|silu|gelu|gelu-tanh|elu|celu(a)|smooth-relu' })
    .option('in-channels', { type: 'number', default: 1, describe: 'input channels' })
    .option('image-size', { type: 'number', default: 28, describe: 'input height = width' })
    .option('num-classes', { type: 'number', default: 10, describe: 'number of classes' })
    .option('mean', { type: 'string', default: '0.2860', describe: 'per-channel mean, comma-separated (normalisation inside the model)' })
    .option('std', { type: 'string', default: '0.3530', describe: 'per-channel std, comma-separated' });
}

export function withOptimizerOptions<T>(y: Argv<T>) {
  return y
    .option('momentum', { type: 'number', default: 0.9 })
    .option('nesterov', { type: 'boolean', default: false })
    .option('weight-decay', { type: 'number', default: 5e-4 })
    .option('label-smoothing', { type: 'number', default: 0 });
}

/** The trailing options of the evaluating commands (eval, compare): batch size, execution provider, threads, --json. */
/** yargs `coerce` for a whole-number option: `min` 1 (a count) or 0 (threads: 0 = ONNX Runtime's default). */
export function wholeNumber(name: string, min: 0 | 1 = 1) {
  return (v: unknown) => {
    if (v === undefined) return v;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UserError(`--${name} must be a whole number >= ${min}, got ${String(v)}`);
    return n;
  };
}

export function withEvalRunOptions<T>(y: Argv<T>) {
  return y
    .option('batch-size', { type: 'number', default: 256, coerce: wholeNumber('batch-size') })
    .option('ep', { choices: EXECUTION_PROVIDERS, default: 'cpu' as const })
    .option('threads', { type: 'number', default: 0, coerce: wholeNumber('threads', 0) })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' });
}

function numberList(text: string, what: string, n: number): number[] {
  return perChannelValues(parseNumberList(text, what), what, n, 'the model');
}

export function modelSpecFrom(a: { arch: string; width?: number; activation: string; inChannels: number; imageSize: number; numClasses: number; mean: string; std: string }): ModelSpec {
  for (const [k, v] of [['in-channels', a.inChannels], ['image-size', a.imageSize], ['num-classes', a.numClasses]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`--${k} must be a positive integer, got ${v}`);
  }
  const std = numberList(a.std, 'std', a.inChannels);
  if (std.some((s) => s <= 0)) throw new UserError('--std values must be positive');
  return {
    arch: a.arch, numClasses: a.numClasses, inChannels: a.inChannels, imageSize: a.imageSize, width: a.width,
    activation: parseActivation(a.activation), mean: numberList(a.mean, 'mean', a.inChannels), std,
  };
}


