// `advrun reproduce twins|sat|rfn --preset smoke|cpu|paper --out DIR`

import type { CommandModule } from 'yargs';
import { PAPERS, PRESETS, reproduce, type Paper, type Preset } from '../methods/reproduce.js';
import { quiet } from './progress.js';

export const reproduceCommand: CommandModule = {
  command: 'reproduce <paper>',
  describe: "run a paper's table (twins, sat, rfn) and write DIR/table.md and table.csv with a verdict",
  builder: (y) => y
    .positional('paper', { choices: PAPERS, describe: 'which paper' })
    .option('preset', { choices: PRESETS, default: 'smoke' as Preset, describe: 'smoke (~1 min, meaningless numbers), cpu (~1 h on 2 cores), paper (GPU, hours)' })
    .option('out', { type: 'string', demandOption: true, describe: 'results directory (re-running resumes)' })
    .option('workers', { type: 'number', default: 1, describe: 'runs at once' })
    .option('json', { type: 'boolean', default: false }),
  handler: async (argv) => {
    const a = argv as unknown as { paper: Paper; preset: Preset; out: string; workers: number; json: boolean };
    const log = (l: string) => { if (!quiet(a.json)) process.stderr.write(`${l}\n`); };
    const r = await reproduce(a.paper, { out: a.out, preset: a.preset, grid: { workers: a.workers }, log });
    if (a.json) console.log(JSON.stringify({ paper: a.paper, preset: a.preset, out: a.out, seconds: r.seconds, verdict: r.verdict }));
    else console.log(`${r.table}\n(wrote ${a.out}/table.md and table.csv in ${r.seconds.toFixed(0)}s)`);
  },
};
