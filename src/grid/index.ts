// Experiment grids: the programmatic API behind `advrun grid` (and the runner other commands, such
// as `advrun reproduce`, put their tables through).
//
//   const spec = loadSpec('grid.yaml');            // or validateSpec(object, 'where it came from')
//   const plan = expandGrid(spec);                 // plan.runs: index, id (config hash), label, train, eval
//   const summary = await runGrid(spec, { out: 'results/grid', workers: 2, retries: 1 });
//   const table = buildTable('results/grid');      // from the files only; renderMarkdown/Csv/Json(table)
//   gridStatus('results/grid');                    // done/running/failed/interrupted/pending, ETA, Slurm queue
//
// runGrid is safe to call again on the same directory (finished runs are skipped, interrupted ones
// resume, failed ones are retried) and concurrently from several processes or machines (a lock per
// run). With { executor: 'slurm' } it submits the unfinished runs as one job array and, unless
// { wait: false }, waits for it. Invalid specs throw a UserError naming the key and the nearest valid one.

export { loadSpec, validateSpec, METRICS, type GridSpec, type TableSpec, type ExecutorSpec, type Metric } from './spec.js';
export { expandGrid, runId, labelText, type GridPlan, type PlannedRun, type EvalConfig } from './expand.js';
export { runGrid, runOne, prepareDir, type RunGridOptions, type GridSummary, type GridEvent } from './scheduler.js';
export { executeRun, type RunOutcome, type RunReport } from './worker.js';
export { buildTable, meanStd, renderMarkdown, renderCsv, renderJson, writeTables, type GridTable, type CellStats, type RunEntry } from './table.js';
export { gridStatus, renderStatus, type GridStatus } from './status.js';
export { gridPaths, runPaths, runState, readGridFile, type RunStatus, type RunState } from './rundir.js';
