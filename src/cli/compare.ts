// `advrun compare`: evaluate a model in advrun beside a PyTorch reference (bench/torch_eval.py) and
// check logits and accuracies against tolerances. `--dump-data FILE` writes the data slice that
// torch_eval.py reads.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadDataset, type Dataset, type Split } from '../data/index.js';
import {
  attackOptionsFrom, compareWithReference, dumpData, evaluatePerExample, firstExamples, formatComparison, loadDumpedData, readReference,
  type AttackSettings, type Reference,
} from '../interop/compare.js';
import { openModel, withArchOptions } from '../interop/load.js';
import { parseFraction } from '../train/config.js';
import { ModelRuntime } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { provenance } from '../util/provenance.js';
import { withEvalRunOptions } from './options.js';
import { GRAPHS_DIR } from './train.js';

async function selectData(a: any, ref: Reference | undefined): Promise<Dataset> {
  let ds: Dataset;
  if (a.data) ds = loadDumpedData(a.data);
  else {
    let name = a.dataset as string | undefined, split = a.split as Split | undefined;
    if (!name && ref?.data.source) [name, split] = ref.data.source.split(' ') as [string, Split];
    if (!name && ref?.data.file && existsSync(ref.data.file)) return firstExamples(loadDumpedData(ref.data.file), a.limit ?? ref.data.n);
    if (!name) throw new UserError('name the data: --data FILE (from --dump-data) or --dataset NAME');
    ds = await loadDataset(name, split ?? 'test', { dataDir: a.dataDir, classes: a.classes, val: split === 'val' ? 0.1 : undefined });
  }
  const n = a.limit ?? ref?.data.n ?? ds.n;
  return firstExamples(ds, n);
}

function attackSettings(a: any, ref: Reference): AttackSettings | null {
  const base = ref.attack;
  if (a.attack === 'none') return null;
  if (!base && !a.attack) return null;
  const name = a.attack ?? base!.attack;
  const eps = a.eps !== undefined ? parseFraction(a.eps, 'eps') : base?.eps;
  if (eps === undefined) throw new UserError('--eps is needed (the reference has no attack)');
  const steps = name === 'fgsm' ? 1 : a.steps ?? base?.steps ?? 10;
  const dflt = name === 'fgsm' ? eps : name === 'bim' ? eps / steps : (2.5 * eps) / steps;
  // The reference's step size holds while attack, eps and steps are the reference's; otherwise the attack's default.
  const sameRun = base !== null && base.attack === name && base.eps === eps && base.steps === steps;
  const stepSize = a.stepSize !== undefined ? parseFraction(a.stepSize, 'step-size') : sameRun ? base.stepSize : dflt;
  return { attack: name, norm: a.norm ?? base?.norm ?? 'linf', eps, steps, stepSize, randomStart: false, restarts: 1, loss: a.loss ?? base?.loss ?? 'ce' };
}

export const compareCommand: CommandModule = {
  command: 'compare',
  describe: "compare advrun's logits and clean/robust accuracy with a PyTorch reference (bench/torch_eval.py)",
  builder: (y) => withEvalRunOptions(withArchOptions(y)
    .option('model', { type: 'string', describe: 'advrun checkpoint, PyTorch state_dict (.pt/.safetensors, with --arch) or .onnx' })
    .option('reference', { type: 'string', describe: 'reference JSON written by bench/torch_eval.py' })
    .option('dump-data', { type: 'string', describe: 'write the data slice (--dataset/--split/--limit) as safetensors for torch_eval.py, then exit' })
    .option('data', { type: 'string', describe: 'data slice written by --dump-data (instead of --dataset)' })
    .option('dataset', { type: 'string', describe: "dataset (default: the reference's)" })
    .option('data-dir', { type: 'string' })
    .option('classes', { type: 'string' })
    .option('split', { choices: ['test', 'train', 'val'] as const })
    .option('limit', { type: 'number', describe: "the first N examples (default: the reference's n)" })
    .option('attack', { choices: ['fgsm', 'bim', 'pgd', 'none'], describe: "attack (default: the reference's); deterministic ones only, so the two sides compare point by point (pgd without random start)" })
    .option('eps', { type: 'string', describe: "budget (default: the reference's)" })
    .option('norm', { choices: ['linf', 'l2'] as const })
    .option('steps', { type: 'number' })
    .option('step-size', { type: 'string' })
    .option('loss', { choices: ['ce', 'dlr'] as const, describe: 'pgd loss' })
    .option('tol-logits', { type: 'number', default: 1e-4, describe: 'max |logit difference| on the reference rows' })
    .option('tol-acc', { type: 'number', default: 0.5, describe: 'max accuracy difference, in points' })),
  handler: async (argv) => {
    const a = argv as any;
    if (a.dumpData) {
      const ds = await selectData({ ...a, dataset: a.dataset ?? (a.data ? undefined : 'fashion-mnist-mini') }, undefined);
      const r = dumpData(ds, resolve(a.dumpData));
      if (a.json) console.log(JSON.stringify({ file: a.dumpData, n: r.n, sha256: r.sha256, source: `${ds.name} ${ds.split}` }));
      else console.log(`wrote ${a.dumpData}: ${r.n} examples of ${ds.name} ${ds.split} (sha256 ${r.sha256.slice(0, 16)}...)`);
      return;
    }
    if (!a.model || !a.reference) throw new UserError('compare needs --model and --reference (or --dump-data FILE to write a data slice)');
    const ref = readReference(a.reference);
    const ds = await selectData(a, ref);
    const m = await openModel(a.model, { arch: a, data: { channels: ds.channels, height: ds.height, numClasses: ds.numClasses, mean: ds.mean, std: ds.std }, graphsDir: GRAPHS_DIR });
    const spec = m.spec;
    if (ds.channels !== spec.inChannels || ds.height !== spec.imageSize || ds.numClasses !== spec.numClasses) {
      throw new UserError(`${a.model} expects ${spec.inChannels}x${spec.imageSize}x${spec.imageSize} images and ${spec.numClasses} classes but the data has ${ds.channels}x${ds.height}x${ds.width} and ${ds.numClasses}`);
    }
    const settings = attackSettings(a, ref);
    const rt = new ModelRuntime(m.artifacts, m.state, { ep: a.ep, threads: a.threads });
    try {
      const atk = settings ? attackOptionsFrom(settings) : null;
      const r = await evaluatePerExample(rt, ds, atk?.name ?? null, atk?.options ?? { eps: 0, norm: 'linf', seed: 0 }, a.batchSize);
      const c = compareWithReference(r, ds, ref, { logits: a.tolLogits, accPoints: a.tolAcc });
      if (a.json) console.log(JSON.stringify({ ...c, model: a.model, kind: m.kind, reference_file: a.reference, notes: m.notes, ...provenance() }));
      else console.log(formatComparison(c));
      if (!c.pass) process.exitCode = 1;
    } finally {
      await rt.release();
    }
  },
};
