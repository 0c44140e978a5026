// `advrun grid`: experiment grids from a spec file: plan, run (local pool or Slurm), run-one (one
// Slurm array task), status and table. The work is in src/grid; this is options and output.

import cliProgress from 'cli-progress';
import type { Argv, CommandModule } from 'yargs';
import { expandGrid, labelText, type GridPlan } from '../grid/expand.js';
import { runGrid, runOne, type GridEvent, type GridSummary } from '../grid/scheduler.js';
import { loadSpec } from '../grid/spec.js';
import { countsText, formatDuration, gridStatus, renderStatus } from '../grid/status.js';
import { buildTable, renderCsv, renderJson, renderMarkdown, writeTables } from '../grid/table.js';
import { interactive } from './progress.js';

type Args = Record<string, any>;

/** A plan as `advrun grid plan` prints it: a header line (naming the runs' directory if given), then one line per run. */
export function planText(plan: GridPlan, dir?: string): string {
  const dup = plan.duplicates ? ` (${plan.duplicates} duplicate${plan.duplicates > 1 ? 's' : ''} merged)` : '';
  const lines = [`grid ${plan.spec.name}: ${plan.runs.length} run${plan.runs.length === 1 ? '' : 's'}${dir ? ` in ${dir}` : ''}${dup}`];
  for (const r of plan.runs) lines.push(`  #${r.index} ${r.id} ${labelText(r.label)}`);
  return lines.join('\n');
}

/** Abort on the first SIGINT/SIGTERM (children stopped, locks released); exit at once on the second. */
function abortOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const handler = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write(`advrun: ${sig}: stopping runs (they resume on the next grid run)\n`);
    ac.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', handler); process.off('SIGTERM', handler); } };
}

/** A bar with done/running/failed and ETA on a TTY; one line per finished run on a pipe; nothing with --json. */
function gridReporter(json: boolean, name: string): { onEvent: (e: GridEvent) => void; stop: () => void } {
  let total = 0, done = 0, running = 0, failed = 0, workers = 1;
  const durations: number[] = [];
  const eta = () => (durations.length ? formatDuration((durations.reduce((a, v) => a + v, 0) / durations.length) * (total - done - failed) / workers) : '?');
  const bar = interactive(json) ? new cliProgress.SingleBar({
    format: `grid ${name} |{bar}| {value}/{total} done | {running} running | {failed} failed | ETA {left}`, stream: process.stderr, hideCursor: true,
  }, cliProgress.Presets.shades_classic) : null;
  const log = (m: string) => { if (!json && !bar) process.stderr.write(`${m}\n`); };
  const update = () => bar?.update(done, { running, failed, left: eta() });
  return {
    onEvent(e) {
      if (e.type === 'plan') {
        ({ total, done } = e);
        workers = Math.max(1, e.workers);
        bar?.start(total, done, { running, failed, left: '?' });
        log(`grid ${name}: ${total} runs, ${done} already done${e.workers ? `; ${e.workers} at once, ${e.threadsPerRun} threads each` : ''}`);
      } else if (e.type === 'start') {
        running++;
        update();
      } else if (e.type === 'finish') {
        running--;
        const o = e.report.outcome;
        if (o === 'done' || o === 'skipped') { done++; if (o === 'done') durations.push(e.report.seconds); }
        if (o === 'failed') failed++;
        update();
        log(`[${done}/${total}] #${e.run.index} ${e.run.id} ${labelText(e.run.label)}: ${o}${e.report.resumed ? ' (resumed)' : ''} in ${e.report.seconds.toFixed(1)}s${e.report.error ? `: ${e.report.error}` : ''}`);
      } else if (e.type === 'submitted') {
        log(`submitted slurm job ${e.submission.job_id} (array ${e.submission.indices.length} tasks)`);
      } else if (e.type === 'poll') {
        ({ done, running, failed } = e.counts);
        update();
      }
    },
    stop: () => bar?.stop(),
  };
}

function summaryText(s: GridSummary): string {
  const did = Object.entries(s.outcomes).filter(([, ids]) => ids.length).map(([k, ids]) => `${ids.length} ${k}`).join(', ');
  const lines = [`grid ${s.name}: ${countsText(s.counts)} of ${s.total}${did ? ` (this run: ${did})` : ''}`];
  if (s.outcomes.held.length) lines.push(`${s.outcomes.held.length} run(s) are being run by another scheduler`);
  for (const f of s.failures) lines.push(`  failed #${f.index} ${f.id}: ${f.error} (log: ${s.dir}/runs/${f.id}/)`);
  if (s.submission && !s.tables) lines.push(`slurm job ${s.submission.job_id}: follow with \`advrun grid status ${s.dir}\`, then \`advrun grid table ${s.dir}\``);
  if (s.tables) lines.push(`tables: ${s.tables.md}, ${s.tables.csv}, ${s.tables.json}`);
  return lines.join('\n');
}

const threadingOptions = (y: Argv) => y
  .option('threads-per-run', { type: 'number', describe: 'ONNX Runtime threads per run (default: machine threads / workers)' })
  .option('retries', { type: 'number', describe: 'extra attempts for a failed run (default 0, or executor.retries)' })
  .option('json', { type: 'boolean', default: false, describe: 'print one JSON object; no progress output' });

const planCommand: CommandModule = {
  command: 'plan <spec>',
  describe: 'validate a grid spec and print its runs and their count, running nothing',
  builder: (y) => y.positional('spec', { type: 'string', describe: 'YAML or JSON grid spec' }).option('json', { type: 'boolean', default: false }),
  handler: (argv) => {
    const a = argv as Args;
    const plan = expandGrid(loadSpec(a.spec));
    if (a.json) console.log(JSON.stringify({ name: plan.spec.name, count: plan.runs.length, duplicates: plan.duplicates, runs: plan.runs.map(({ flat: _f, ...r }) => r) }));
    else console.log(planText(plan));
  },
};

const runCommand: CommandModule = {
  command: 'run <spec>',
  describe: 'run a grid (skips finished runs, resumes interrupted ones, retries failed ones) and write its tables',
  builder: (y) => threadingOptions(y.positional('spec', { type: 'string', describe: 'YAML or JSON grid spec' })
    .option('out', { type: 'string', demandOption: true, describe: 'results directory (shared by every scheduler of this grid)' })
    .option('workers', { type: 'number', describe: 'runs at once (local); array throttle (slurm)' })
    .option('executor', { choices: ['local', 'slurm'] as const, describe: "where runs execute (default: the spec's executor, else local)" })
    .option('wait', { type: 'boolean', default: false, describe: 'slurm: wait for the job array to finish, then write the tables' })),
  handler: async (argv) => {
    const a = argv as Args;
    const plan = expandGrid(loadSpec(a.spec));
    const rep = gridReporter(a.json, plan.spec.name);
    const sig = abortOnSignals();
    let s: GridSummary;
    try {
      s = await runGrid(plan, { out: a.out, workers: a.workers, threadsPerRun: a.threadsPerRun, retries: a.retries, executor: a.executor, wait: a.wait, signal: sig.signal, onEvent: rep.onEvent });
    } finally {
      rep.stop();
      sig.dispose();
    }
    if (a.json) console.log(JSON.stringify(s));
    else console.log(`${summaryText(s)}${s.tables ? `\n\n${renderMarkdown(buildTable(s.dir))}` : ''}`);
    if (sig.signal.aborted) process.exitCode = 130;
    else if (s.failures.length) process.exitCode = 1;
  },
};

const runOneCommand: CommandModule = {
  command: 'run-one <spec>',
  describe: 'run the grid run at --index (what each Slurm array task does)',
  builder: (y) => threadingOptions(y.positional('spec', { type: 'string' })
    .option('index', { type: 'number', demandOption: true, describe: 'run index in the plan (e.g. $SLURM_ARRAY_TASK_ID)' })
    .option('out', { type: 'string', demandOption: true, describe: 'results directory' })),
  handler: async (argv) => {
    const a = argv as Args;
    const sig = abortOnSignals();
    try {
      const { run, report } = await runOne(expandGrid(loadSpec(a.spec)), a.index, { out: a.out, threadsPerRun: a.threadsPerRun, retries: a.retries, signal: sig.signal });
      if (a.json) console.log(JSON.stringify({ index: run.index, id: run.id, ...report }));
      else console.log(`#${run.index} ${run.id} ${labelText(run.label)}: ${report.outcome}${report.error ? `: ${report.error}` : ''}`);
      if (report.outcome === 'failed' || report.outcome === 'interrupted') process.exitCode = 1;
    } finally {
      sig.dispose();
    }
  },
};

const statusCommand: CommandModule = {
  command: 'status <dir>',
  describe: "show a grid's runs done/running/failed/pending and ETA, from its files (and squeue/sacct for Slurm)",
  builder: (y) => y.positional('dir', { type: 'string' })
    .option('all', { type: 'boolean', default: false, describe: 'list finished runs too' })
    .option('json', { type: 'boolean', default: false }),
  handler: (argv) => {
    const a = argv as Args;
    const st = gridStatus(a.dir);
    console.log(a.json ? JSON.stringify(st) : renderStatus(st, a.all));
  },
};

const tableCommand: CommandModule = {
  command: 'table <dir>',
  describe: 'build the result table from the files: writes table.md, table.csv, table.json and prints one',
  builder: (y) => y.positional('dir', { type: 'string' })
    .option('format', { choices: ['md', 'csv', 'json'] as const, default: 'md' as const, describe: 'which form to print' })
    .option('write', { type: 'boolean', default: true, describe: 'also write the three files into DIR (--no-write)' }),
  handler: (argv) => {
    const a = argv as Args;
    const t = buildTable(a.dir);
    if (a.write) writeTables(a.dir, t);
    process.stdout.write(a.format === 'csv' ? renderCsv(t) : a.format === 'json' ? renderJson(t) : renderMarkdown(t));
  },
};

export const gridCommand: CommandModule = {
  command: 'grid <command>',
  describe: 'experiment grids from a spec: plan, run (local pool or Slurm), status, table',
  builder: (y) => y.command(planCommand).command(runCommand).command(runOneCommand).command(statusCommand).command(tableCommand)
    .demandCommand(1, 'name a grid command: plan, run, run-one, status or table'),
  handler: () => {},
};
