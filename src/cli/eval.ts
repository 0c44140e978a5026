// `advrun eval`: clean and robust accuracy of a checkpoint under one attack.

import type { CommandModule } from 'yargs';
import { ATTACK_NAMES, defaultRandomStart } from '../attacks/index.js';
import type { Split } from '../data/index.js';
import { evaluate } from '../eval/evaluate.js';
import { withArchOptions } from '../interop/load.js';
import { wholeNumber, withEvalRunOptions } from './options.js';
import { parseFraction } from '../train/config.js';
import { UserError } from '../util/errors.js';
import { provenance } from '../util/provenance.js';
import { runtimeFromCheckpoint } from './load-model.js';

export const evalCommand: CommandModule = {
  command: 'eval',
  describe: 'evaluate a checkpoint: clean accuracy and accuracy under an attack',
  builder: (y) => withEvalRunOptions(withArchOptions(y)
    .option('model', { type: 'string', demandOption: true, describe: 'advrun checkpoint, PyTorch state_dict (.pt/.pth torch.save or .safetensors; give --arch etc.) or ONNX model (.onnx)' })
    .option('dataset', { type: 'string', describe: "dataset (default: the checkpoint's training dataset)" })
    .option('data-dir', { type: 'string' })
    .option('classes', { type: 'string', describe: "class subset (default: the checkpoint's)" })
    .option('split', { choices: ['test', 'train', 'val'] as const, default: 'test' as const, describe: "test; train: the whole training file (the part a run held out included); val: the part the checkpoint's run held out (its --val-split)" })
    .option('limit', { type: 'number', describe: 'evaluate the first N examples', coerce: wholeNumber('limit') })
    .option('attack', { choices: [...ATTACK_NAMES, 'none'], default: 'pgd' })
    .option('eps', { type: 'string', default: '0.1', describe: 'budget in pixels, e.g. 0.1 or 8/255' })
    .option('norm', { choices: ['linf', 'l2'] as const, default: 'linf' as const })
    .option('steps', { type: 'number', describe: 'iterations (attack default when omitted: pgd 10, apgd 100)' })
    .option('step-size', { type: 'string', describe: 'step size (attack default when omitted)' })
    .option('random-start', { type: 'boolean', describe: 'random start (default: on for pgd, apgd-*, aa-lite; fgsm, bim and mifgsm have none); --no-random-start for deterministic PGD' })
    .option('restarts', { type: 'number', default: 1 })
    .option('n-queries', { type: 'number', describe: 'Square: queries per example (5000)' })
    .option('seed', { type: 'number', default: 0 })),
  handler: async (argv) => {
    const a = argv as any;
    const { rt, model, ds } = await runtimeFromCheckpoint(a.model, { dataset: a.dataset, dataDir: a.dataDir, classes: a.classes, split: a.split as Split, arch: a, ep: a.ep, threads: a.threads });
    const spec = model.spec;
    try {
      const eps = parseFraction(a.eps, 'eps');
      if (a.norm === 'linf' && !(eps >= 0 && eps <= 1)) throw new UserError(`--eps ${eps} is outside the data range [0, 1]`);
      const r = await evaluate(rt, ds, {
        attack: a.attack === 'none' ? null : a.attack, eps, norm: a.norm, steps: a.steps,
        stepSize: a.stepSize === undefined ? undefined : parseFraction(a.stepSize, 'step-size'),
        randomStart: a.randomStart ?? defaultRandomStart(a.attack), restarts: a.restarts, nQueries: a.nQueries, seed: a.seed, batchSize: a.batchSize, limit: a.limit,
      });
      for (const w of r.warnings) process.stderr.write(`advrun: warning: ${w}\n`);
      const out = { clean_acc: r.clean_acc, robust_acc: r.robust_acc, n: r.n, attack: r.attack, model: a.model, arch: spec.arch, dataset: ds.name, split: a.split, classes: ds.originalClassIds, seed: a.seed, bn_mode: 'eval', seconds: r.seconds, warnings: r.warnings, ...provenance() };
      if (a.json) console.log(JSON.stringify(out));
      else console.log(`${ds.name} ${a.split} n=${r.n}: clean ${(100 * r.clean_acc).toFixed(2)}%${r.robust_acc === null ? '' : `, ${a.attack} ${(100 * r.robust_acc).toFixed(2)}% (eps ${eps}, ${a.norm})`}`);
    } finally {
      await rt.release();
    }
  },
};
