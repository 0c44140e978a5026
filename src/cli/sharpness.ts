// `advrun sharpness`: largest Hessian eigenvalue (power iteration) and Hessian trace (Hutchinson) of
// the mean CE over a fixed subset of training images, BN in eval mode, w.r.t. all parameters
// (see src/methods/sharpness.ts).

import { wholeNumber } from './options.js';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { CommandModule } from 'yargs';
import { readRange } from '../data/index.js';
import { importedModel } from '../interop/onnx-import.js';
import { withArchOptions } from '../interop/load.js';
import { FD_REL_DEFAULT, HVP_MODES, measureSharpness, type HvpMode } from '../methods/sharpness.js';
import { buildModel } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { checkOutputFile, writeFileAtomic } from '../util/fs.js';
import { provenance } from '../util/provenance.js';
import { loadChosenDataset, openForDataset, resolveDataChoice } from './load-model.js';
import { interactive } from './progress.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';

export const SUBSET_RULE = 'the first n examples, in dataset order, of the training split (after holding out --val and taking the --limit subset of the run, like `advrun train`), no augmentation';

export const sharpnessCommand: CommandModule = {
  command: 'sharpness',
  describe: 'sharpness of a model: largest Hessian eigenvalue and Hessian trace of the training loss (CE, BN eval)',
  builder: (y) => withArchOptions(y)
    .option('model', { type: 'string', demandOption: true, describe: 'advrun checkpoint, PyTorch state_dict (with --arch) or ONNX model' })
    .option('dataset', { type: 'string', describe: "dataset (default: the checkpoint's training dataset)" })
    .option('data-dir', { type: 'string' })
    .option('classes', { type: 'string', describe: "class subset (default: the checkpoint's)" })
    .option('val', { type: 'number', describe: "validation fraction/count held out of the training files before taking the first n, as in advrun train (default: the checkpoint's run's --val-split, else 0.1; 0: none)" })
    .option('n', { type: 'number', default: 1000, describe: 'training images in the fixed subset' })
    .option('iters', { type: 'number', default: 20, describe: 'power-iteration steps (Hessian-vector products) for the top eigenvalue' })
    .option('tol', { type: 'number', default: 0, describe: 'stop power iteration early when the eigenvalue changes by <= tol (relative); 0: always --iters' })
    .option('samples', { type: 'number', default: 20, describe: 'Rademacher vectors for the Hutchinson trace estimate' })
    .option('hvp', { choices: HVP_MODES, default: 'exact' as const, describe: 'exact: double backward (Pearlmutter); fd: central differences of gradients' })
    .option('fd-rel', { type: 'number', default: FD_REL_DEFAULT, describe: '--hvp fd: step r = fd-rel * max(||w||, 1) / ||v||' })
    .option('seed', { type: 'number', default: 0, describe: 'seed of the power-iteration start and the Rademacher vectors' })
    .option('batch-size', { type: 'number', default: 128 })
    .option('out', { type: 'string', describe: 'also write the result JSON to this file' })
    .option('ep', { choices: EXECUTION_PROVIDERS, default: 'cpu' as const })
    .option('threads', { type: 'number', default: 0, coerce: wholeNumber('threads', 0) })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }),
  handler: async (argv) => {
    const a = argv as any;
    for (const [k, v] of [['n', a.n], ['iters', a.iters], ['samples', a.samples], ['batch-size', a.batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new UserError(`--${k} must be a positive integer, got ${v}`);
    }
    if (!(a.fdRel > 0)) throw new UserError(`--fd-rel must be positive, got ${a.fdRel}`);
    if (!(a.tol >= 0)) throw new UserError(`--tol must be >= 0, got ${a.tol}`);
    if (a.out) checkOutputFile(a.out, [a.model], true); // its directory now, not after the computation
    // The images the model was trained on: without what its run held out (an advrun checkpoint records it).
    const choice = resolveDataChoice(a.model, { dataset: a.dataset, dataDir: a.dataDir, classes: a.classes, split: 'train', val: a.val, trainAsSeen: true });
    const ds = await loadChosenDataset(choice);
    const model = await openForDataset(a.model, ds, { arch: a });
    const n = Math.min(a.n, ds.n);
    const data = { images: await readRange(ds, 0, n), labels: ds.labels.subarray(0, n), n, shape: [ds.channels, ds.height, ds.width] };
    const makeModel = model.kind === 'onnx' ? () => importedModel(model.imported!, 'eval') : () => buildModel(model.spec, { bnMode: 'eval', seed: 0 });

    let bar: cliProgress.SingleBar | undefined;
    if (interactive(!!a.json)) bar = new cliProgress.SingleBar({ format: 'sharpness |{bar}| {percentage}% Hv {value}/{total} | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
    let started = false;
    const r = await measureSharpness(makeModel, model.state, data, {
      hvp: a.hvp as HvpMode, fdRel: a.fdRel, batchSize: a.batchSize, iters: a.iters, samples: a.samples, seed: a.seed, tol: a.tol || undefined, ep: a.ep, threads: a.threads,
    }, (done, total) => {
      if (!bar) return;
      if (!started) { bar.start(total, 0); started = true; }
      bar.update(done);
    }).finally(() => bar?.stop());

    const out = {
      kind: 'sharpness',
      lambda_max: r.lambda_max, trace: r.trace, trace_stderr: r.trace_stderr,
      n: r.n, n_requested: a.n, iters: r.iters, iters_run: r.iters_run, tol: a.tol, samples: r.samples, hvp: r.hvp, fd_rel: r.fd_rel, seed: r.seed,
      lambda_history: r.lambda_history,
      loss: r.loss, grad_norm: r.grad_norm, weight_norm: r.weight_norm, num_params: r.num_params, hvp_calls: r.hvp_calls,
      objective: 'mean cross-entropy over the subset, w.r.t. all parameters (BN running statistics fixed)', bn_mode: 'eval',
      estimators: { lambda_max: 'power iteration on Hessian-vector products (Gaussian start, Rayleigh quotient)', trace: 'Hutchinson, Rademacher vectors' },
      subset: { rule: SUBSET_RULE, split: 'train', val: choice.val ?? null, val_from: choice.valFrom, limit: choice.limit ?? null },
      batch_size: a.batchSize,
      model: resolve(a.model), model_sha256: model.sha256, kind_of_model: model.kind, arch: model.spec.arch,
      dataset: ds.name, classes: choice.classes ?? null, data_source: ds.source,
      seconds: r.seconds, ...provenance(),
    };
    if (a.out) writeFileAtomic(resolve(a.out), `${JSON.stringify(out, null, 2)}\n`);
    if (a.json) console.log(JSON.stringify(out));
    else {
      const se = r.trace_stderr === null ? '' : ` ± ${r.trace_stderr.toPrecision(3)}`;
      console.log(`${a.model}: lambda_max ${r.lambda_max.toPrecision(5)} (${r.iters_run} power iterations), trace ${r.trace.toPrecision(5)}${se} (${r.samples} Rademacher samples); mean CE ${r.loss.toFixed(4)} on the first ${r.n} ${ds.name} training images, BN eval, hvp ${r.hvp}`);
    }
  },
};
