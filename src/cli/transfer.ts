// `advrun transfer`: the surrogate × target transfer-success matrix (RFN / LGV protocol; see
// src/methods/transfer.ts): BIM (I-FGSM, no random start) on each surrogate, BN in eval mode, on the
// first n examples of the split that every target classifies correctly. Writes transfer.csv,
// transfer.md and transfer.json into --out.

import { wholeNumber } from './options.js';
import { mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { CommandModule } from 'yargs';
import type { Norm } from '../attacks/types.js';
import type { Split } from '../data/index.js';
import { parseClassSpec } from '../data/transforms.js';
import { checkModelFile, withArchOptions } from '../interop/load.js';
import { SELECTION_RULE, TRANSFER_ATTACKS, parseStepSize, transferMatrix, uniqueLabels, writeTransferReport, type TransferAttack, type TransferModel } from '../methods/transfer.js';
import { parseFraction } from '../train/config.js';
import type { ModelRuntime } from '../train/runtime.js';
import { UserError } from '../util/errors.js';
import { provenance } from '../util/provenance.js';
import { loadChosenDataset, resolveDataChoice, runtimeFromCheckpoint } from './load-model.js';
import { interactive, quiet } from './progress.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';

/** Defaults of the LGV/RFN transfer protocol: L∞ 4/255 (L2: 3), step eps/10, 50 iterations. */
const DEFAULT_EPS: Record<Norm, string> = { linf: '4/255', l2: '3' };

function list(text: unknown, what: string): string[] {
  const items = String(text ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UserError(`--${what} needs at least one checkpoint (comma-separated)`);
  return items;
}

export const transferCommand: CommandModule = {
  command: 'transfer',
  describe: 'transfer success of adversarial examples crafted on surrogates against targets (matrix as CSV/Markdown/JSON)',
  builder: (y) => withArchOptions(y)
    .option('surrogates', { type: 'string', demandOption: true, describe: 'comma-separated checkpoints the attack is crafted on' })
    .option('targets', { type: 'string', demandOption: true, describe: 'comma-separated checkpoints the crafted examples are evaluated on (a surrogate may also be a target: white-box cell)' })
    .option('attack', { choices: TRANSFER_ATTACKS, default: 'bim' as const, describe: 'bim = I-FGSM without random start; mifgsm (momentum); pgd (random start)' })
    .option('eps', { type: 'string', describe: 'budget in pixels, e.g. 4/255 (default: linf 4/255, l2 3)' })
    .option('norm', { choices: ['linf', 'l2'] as const, default: 'linf' as const })
    .option('steps', { type: 'number', default: 50 })
    .option('step-size', { type: 'string', default: 'eps/10', describe: 'step size: a number (0.3, 1/255) or a multiple of eps (eps/10, 0.1*eps)' })
    .option('decay', { type: 'number', describe: 'mifgsm: momentum decay (1.0)' })
    .option('random-start', { type: 'boolean', default: true, describe: 'pgd only: --no-random-start for a deterministic start' })
    .option('dataset', { type: 'string', describe: "dataset (default: the first surrogate's training dataset)" })
    .option('data-dir', { type: 'string' })
    .option('classes', { type: 'string', describe: "class subset (default: the first surrogate's)" })
    .option('split', { choices: ['test', 'train', 'val'] as const, default: 'test' as const })
    .option('n', { type: 'number', default: 1000, describe: 'examples: the first n of the split that every target classifies correctly' })
    .option('seed', { type: 'number', default: 0, describe: 'attack seed (pgd random start; bim/mifgsm are deterministic)' })
    .option('batch-size', { type: 'number', default: 256 })
    .option('out', { type: 'string', demandOption: true, describe: 'directory for transfer.csv, transfer.md and transfer.json' })
    .option('ep', { choices: EXECUTION_PROVIDERS, default: 'cpu' as const })
    .option('threads', { type: 'number', default: 0, coerce: wholeNumber('threads', 0) })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (also written to transfer.json)' }),
  handler: async (argv) => {
    const a = argv as any;
    const surrogatePaths = list(a.surrogates, 'surrogates');
    const targetPaths = list(a.targets, 'targets');
    mkdirSync(resolve(a.out), { recursive: true }); // an unusable --out fails now, not after the attacks
    const norm = a.norm as Norm;
    const epsText = a.eps ?? DEFAULT_EPS[norm];
    const eps = parseFraction(epsText, 'eps');
    if (!(eps > 0)) throw new UserError(`--eps must be positive, got ${eps}`);
    if (norm === 'linf' && eps > 1) throw new UserError(`--eps ${eps} is outside the data range [0, 1]`);
    const stepSize = parseStepSize(a.stepSize, eps);
    for (const [k, v] of [['steps', a.steps], ['n', a.n], ['batch-size', a.batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new UserError(`--${k} must be a positive integer, got ${v}`);
    }
    for (const p of [...surrogatePaths, ...targetPaths]) checkModelFile(p); // a missing or foreign file fails before any data is loaded
    // Distinct files (by real path), each named by the first path given for it.
    const keyOf = (p: string) => realpathSync(p);
    const firstPath = new Map<string, string>();
    for (const p of [...surrogatePaths, ...targetPaths]) if (!firstPath.has(keyOf(p))) firstPath.set(keyOf(p), p);
    const allPaths = [...firstPath.values()];

    const split = a.split as Split;
    const choice = resolveDataChoice(surrogatePaths[0]!, { dataset: a.dataset, dataDir: a.dataDir, classes: a.classes, split });
    const ds = await loadChosenDataset(choice);
    const usedClasses = choice.classes ?? null;
    const warnings: string[] = [];
    const log = (m: string) => { if (!quiet(!!a.json)) process.stderr.write(`advrun: warning: ${m}\n`); };
    const warn = (m: string) => { warnings.push(m); log(m); };

    // One runtime per distinct file (a checkpoint that is both surrogate and target is loaded once).
    const runtimes = new Map<string, { rt: ModelRuntime; id: string; arch: string; dataset: unknown; classes: unknown; kind: string }>();
    const info = (p: string) => runtimes.get(keyOf(p))!;
    try {
      // A model's recorded class spec against the classes the data holds: '0-4' and '0,1,2,3,4' are the same.
      const dataClasses = JSON.stringify([...ds.originalClassIds].sort((x, y) => x - y));
      // No spec: every class of the dataset, i.e. as many as the model has outputs.
      const sameClasses = (spec: string | null, modelClasses: number) => {
        if (spec === usedClasses) return true;
        try {
          const ids = spec === null ? Array.from({ length: modelClasses }, (_, i) => i) : parseClassSpec(spec, Number.MAX_SAFE_INTEGER);
          return JSON.stringify(ids) === dataClasses;
        } catch {
          return false; // class names: only the same spelling is recognised
        }
      };
      for (const p of allPaths) {
        const key = keyOf(p);
        const { rt, model } = await runtimeFromCheckpoint(p, { ds, split, arch: a, ep: a.ep, threads: a.threads });
        const extra = model.meta?.extra ?? {};
        runtimes.set(key, { rt, id: model.sha256, arch: model.spec.arch, dataset: extra.dataset ?? null, classes: extra.classes ?? null, kind: model.kind });
        const cls = (extra.classes as string | null | undefined) ?? null;
        const trainedOn = extra.dataset as string | undefined;
        if (model.kind === 'advrun' && trainedOn && trainedOn !== choice.dataset) warn(`${p} was trained on ${trainedOn} but the data is ${choice.dataset}`);
        if (model.kind === 'advrun' && !sameClasses(cls, model.spec.numClasses)) warn(`${p} was trained on classes ${cls ?? 'all'} but the data uses classes ${usedClasses ?? 'all'}`);
      }
      const labels = uniqueLabels(allPaths);
      const labelOf = (p: string) => labels[allPaths.indexOf(firstPath.get(keyOf(p))!)]!;
      const asModel = (p: string): TransferModel => ({ label: labelOf(p), source: p, id: info(p).id, model: info(p).rt });

      let bar: cliProgress.SingleBar | undefined;
      if (interactive(!!a.json)) {
        process.stderr.write(`selecting examples every target classifies correctly (${ds.name} ${split})...\n`);
        bar = new cliProgress.SingleBar({ format: 'transfer |{bar}| {percentage}% batch {value}/{total} | ETA {eta_formatted}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
      }
      let started = false;
      const r = await transferMatrix(surrogatePaths.map(asModel), targetPaths.map(asModel), ds, {
        attack: a.attack as TransferAttack, eps, norm, steps: a.steps, stepSize, seed: a.seed, n: a.n, batchSize: a.batchSize,
        decay: a.decay, randomStart: a.randomStart,
      }, (done, total) => {
        if (!bar) return;
        if (!started) { bar.start(total, 0); started = true; }
        bar.update(done);
      }).finally(() => bar?.stop());

      const nSel = r.selection.indices.length;
      if (nSel < a.n) warn(`only ${nSel} of the ${r.selection.scanned} examples of ${ds.name} ${split} are classified correctly by every target (asked for ${a.n})`);
      const describe = (p: string) => ({ label: labelOf(p), path: resolve(p), sha256: info(p).id, kind: info(p).kind, arch: info(p).arch, dataset: info(p).dataset, classes: info(p).classes });
      const matrix: Record<string, Record<string, number>> = {};
      r.surrogates.forEach((s, si) => { matrix[s] = Object.fromEntries(r.targets.map((t, ti) => [t, r.success[si]![ti]!])); });
      const out = {
        kind: 'transfer',
        metric: 'success rate = 1 - target accuracy on the adversarial examples crafted on the surrogate',
        success: matrix,
        mean: Object.fromEntries(r.surrogates.map((s, si) => [s, r.mean[si]!])),
        mean_transfer: Object.fromEntries(r.surrogates.map((s, si) => [s, r.meanTransfer[si]!])),
        white_box: r.surrogates.flatMap((s, si) => r.targets.filter((_, ti) => r.whiteBox[si]![ti]).map((t) => ({ surrogate: s, target: t }))),
        surrogate_fooled: Object.fromEntries(r.surrogates.map((s, si) => [s, r.surrogateFooled[si]!])),
        attack: a.attack, eps, eps_text: epsText, norm, steps: a.steps, step_size: stepSize, step_size_text: String(a.stepSize),
        random_start: a.attack === 'pgd' ? a.randomStart : false, decay: a.attack === 'mifgsm' ? (a.decay ?? 1.0) : null,
        attack_settings: r.attack, seed: a.seed, bn_mode: 'eval',
        n: nSel, n_requested: a.n, batch_size: a.batchSize,
        selection: { rule: SELECTION_RULE, scanned: r.selection.scanned, indices: Array.from(r.selection.indices) },
        dataset: ds.name, split, classes: usedClasses, data_source: ds.source,
        surrogates: surrogatePaths.map(describe), targets: targetPaths.map(describe),
        warnings, seconds: r.seconds, ...provenance(),
      };
      const dir = resolve(a.out);
      const attackExtras = a.attack === 'mifgsm' ? `, decay ${a.decay ?? 1.0}` : a.attack === 'pgd' ? `, random start ${a.randomStart ? 'on' : 'off'}` : '';
      const caption = `${a.attack} ${norm} eps ${epsText} (${eps.toPrecision(4)}), ${a.steps} steps of ${stepSize.toPrecision(4)}${attackExtras}, BN eval, ${ds.name} ${split}${usedClasses ? ` (classes ${usedClasses})` : ''}, n = ${nSel}, seed ${a.seed}`;
      const files = writeTransferReport(dir, r, out, caption);
      if (a.json) console.log(JSON.stringify(out));
      else {
        console.log(readFileSync(files.md, 'utf8'));
        console.log(`wrote ${files.csv}, ${files.md}, ${files.json}`);
      }
    } finally {
      for (const { rt } of runtimes.values()) await rt.release();
    }
  },
};
