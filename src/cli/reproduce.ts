// `advrun reproduce twins|sat|rfn --preset smoke|cpu|paper --out DIR [--dry-run]`

import type { CommandModule } from 'yargs';
import { PAPER_PRESET_SUMMARY, PAPERS, PRESETS, reproduce, writePlan, type Paper, type Preset } from '../methods/reproduce.js';
import type { ExecutionProvider } from '../runtime/session.js';
import { quiet } from './progress.js';
import { EXECUTION_PROVIDERS } from '../runtime/providers.js';
import { planText } from './grid.js';

const EPILOG = `Presets:
  smoke  about a minute: tiny runs that check the pipeline (numbers meaningless)
  cpu    a whole table in about an hour on 2 cores (Fashion-MNIST, small CNN)
  paper  the paper's own configuration, for GPU machines (--ep cuda):
${Object.entries(PAPER_PRESET_SUMMARY).map(([paper, line]) => `    ${paper.padEnd(6)} ${line}`).join('\n')}
--dry-run writes every run's configuration to DIR/plan.json, runs nothing (a real run writes the same file first).`;

/** --seeds as numbers (planReproduction checks them: non-negative integers). */
function seedList(text: unknown): number[] | undefined {
  return text === undefined ? undefined : String(text).split(',').map((s) => (s.trim() === '' ? NaN : Number(s.trim())));
}

export const reproduceCommand: CommandModule = {
  command: 'reproduce <paper>',
  describe: "run a paper's table (twins, sat, rfn) and write DIR/table.md and table.csv with a verdict",
  builder: (y) => y
    .positional('paper', { choices: PAPERS, describe: 'which paper' })
    .option('preset', { choices: PRESETS, default: 'smoke' as Preset, describe: 'smoke (~1 min, meaningless numbers), cpu (~1 h on 2 cores), paper (the paper\'s configuration; GPU, hours)' })
    .option('out', { type: 'string', demandOption: true, describe: 'results directory (re-running resumes)' })
    .option('data-dir', { type: 'string', describe: 'paper preset: ImageNet root with train/ and val/ (sat, rfn); CIFAR-10 files (twins, optional: downloaded otherwise)' })
    .option('checkpoint', { type: 'string', alias: 'init', describe: 'paper preset, twins: the robust ImageNet ResNet-50 to fine-tune (.pt/.safetensors state_dict, robustness-library checkpoint, advrun checkpoint)' })
    .option('batch-size', { type: 'number', describe: "paper preset: batch size (sat and rfn scale the lr as 0.1 x B/256); default the paper's" })
    .option('seeds', { type: 'string', describe: "comma-separated seeds instead of the preset's (e.g. 0 for one run per setting)" })
    .option('ep', { choices: EXECUTION_PROVIDERS, describe: 'execution provider of every run (default cpu)' })
    .option('workers', { type: 'number', default: 1, describe: 'runs at once' })
    .option('dry-run', { type: 'boolean', default: false, describe: "write every run's full configuration to DIR/plan.json and print the runs, without running anything" })
    .option('json', { type: 'boolean', default: false })
    .epilog(EPILOG),
  handler: async (argv) => {
    const a = argv as unknown as { paper: Paper; preset: Preset; out: string; dataDir?: string; checkpoint?: string; batchSize?: number; seeds?: string; ep?: ExecutionProvider; workers: number; dryRun: boolean; json: boolean };
    const log = (l: string) => { if (!quiet(a.json)) process.stderr.write(`${l}\n`); };
    const o = { out: a.out, preset: a.preset, dataDir: a.dataDir, checkpoint: a.checkpoint, batchSize: a.batchSize, seeds: seedList(a.seeds), ep: a.ep, grid: { workers: a.workers }, log };
    if (a.dryRun) {
      const { path, plan } = writePlan(a.paper, o);
      const runs = plan.stages.reduce((n, s) => n + s.plan.runs.length, 0);
      if (a.json) console.log(JSON.stringify({ paper: a.paper, preset: a.preset, plan: path, runs }));
      else {
        for (const s of plan.stages) console.log(planText(s.plan, s.dir));
        for (const step of plan.after) console.log(`then ${step}`);
        console.log(`(dry run: wrote ${path} with every run's configuration; nothing was run)`);
      }
      return;
    }
    const r = await reproduce(a.paper, o);
    if (a.json) console.log(JSON.stringify({ paper: a.paper, preset: a.preset, out: a.out, seconds: r.seconds, verdict: r.verdict }));
    else console.log(`${r.table}\n(wrote ${a.out}/table.md and table.csv in ${r.seconds.toFixed(0)}s)`);
  },
};
