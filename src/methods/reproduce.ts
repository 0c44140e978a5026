// `advrun reproduce twins|sat|rfn --preset smoke|cpu|paper`: each paper's table, run through the grid
// runner, written as DIR/table.md and DIR/table.csv with our numbers (mean ± std over seeds), the
// paper's published numbers beside them, and a verdict computed from the numbers.
//
// Presets: `smoke` finishes in about a minute (numbers meaningless, and labelled so); `cpu` is a whole
// table in about an hour on 2 cores (Fashion-MNIST, small CNN, 3 seeds); `paper` is the paper's own
// configuration (ResNet-50, CIFAR-10 upsampled to 224 or ImageNet), for GPU machines (hours to days),
// with the data given by --data-dir and TWINS' robust checkpoint by --checkpoint.
//
// Every preset goes through the same two steps: plan (grid specs built from the preset's settings and
// expanded into runs: a pure function of the options, which --dry-run writes out) and run (the grids,
// then the tables; RFN also crafts transfer attacks and measures sharpness per seed).

import type { ExecutionProvider } from '../runtime/session.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { createObjectCsvStringifier } from 'csv-writer';
import { cliPath } from '../grid/worker.js';
import { buildTable, expandGrid, meanStd, runGrid, runPaths, validateSpec, type CellStats, type GridPlan, type GridTable, type RunGridOptions } from '../grid/index.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { provenance } from '../util/provenance.js';

export const PAPERS = ['twins', 'sat', 'rfn'] as const;
export type Paper = (typeof PAPERS)[number];
export const PRESETS = ['smoke', 'cpu', 'paper'] as const;
export type Preset = (typeof PRESETS)[number];

type Flat = Record<string, unknown>;

export interface ReproduceOptions {
  out: string;
  preset: Preset;
  /** Paper preset: SAT and RFN, the ImageNet root (train/ and val/); TWINS, where the CIFAR-10 files are (optional). */
  dataDir?: string;
  /** TWINS paper preset: the robust ImageNet ResNet-50 to fine-tune (.pt, .safetensors or an advrun checkpoint). */
  checkpoint?: string;
  /** Execution provider of every run and command (default cpu). */
  ep?: ExecutionProvider;
  /** Paper preset: the batch size (GPU memory); SAT and RFN scale the learning rate as 0.1 x B/256. */
  batchSize?: number;
  /** Seeds instead of the preset's. */
  seeds?: number[];
  grid?: Omit<RunGridOptions, 'out'>;
  log?: (line: string) => void;
}

export interface ReproduceResult {
  table: string;
  csv: string;
  verdict: string;
  seconds: number;
}

/** One grid of a reproduction, expanded: where it runs and every run's resolved configuration. */
export interface PlannedStage {
  name: string;
  dir: string;
  plan: GridPlan;
}

/** What a reproduction will do: its grids, what runs after them, and the setting its table describes. */
export interface ReproductionPlan {
  paper: Paper;
  preset: Preset;
  stages: PlannedStage[];
  /** Steps after the grids, for people (RFN: transfer and sharpness per seed). */
  after: string[];
  /** The table's "Our setting" paragraph. */
  note: string;
  /** RFN: the transfer and sharpness settings used after the grids. */
  rfn?: RfnSettings;
}

interface Row {
  label: string;
  cells: { clean: CellStats | undefined; robust: CellStats | undefined };
  paper?: { clean?: number; robust?: number; note?: string };
}

const REFERENCE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'shared', 'papers', 'reference-numbers.json');

/** The papers' published numbers (../shared/papers/reference-numbers.json), when present. */
/** A copy of ../shared/papers/reference-numbers.json kept in the repository, for checkouts without it. */
const REFERENCE_COPY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'methods', 'reference-numbers.json');

let referenceWarned = false;

function referenceNumbers(): Record<string, any> | undefined {
  for (const p of [process.env.ADVRUN_REFERENCE_NUMBERS, REFERENCE, REFERENCE_COPY].filter(Boolean) as string[]) {
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8'));
  }
  if (!referenceWarned) process.stderr.write('advrun: warning: the papers\' reference numbers were not found; set ADVRUN_REFERENCE_NUMBERS=path/to/reference-numbers.json for the paper columns\n');
  referenceWarned = true;
  return undefined;
}

// ---------- presets ----------

/** The knobs that make the smoke and cpu presets small or large; their grids are built from them. */
interface Scale {
  dataset: string;
  width: number;
  limit: number;
  epochs: number;
  steps: number;
  seeds: number[];
  evalLimit: number;
  evalSteps: number;
  valLimit: number;
  batchSize: number;
}

const SCALES: Record<'smoke' | 'cpu', Scale> = {
  smoke: { dataset: 'fashion-mnist-mini', width: 4, limit: 128, epochs: 1, steps: 1, seeds: [0], evalLimit: 50, evalSteps: 2, valLimit: 20, batchSize: 64 },
  cpu: { dataset: 'fashion-mnist', width: 16, limit: 4000, epochs: 5, steps: 5, seeds: [0, 1, 2], evalLimit: 1000, evalSteps: 20, valLimit: 200, batchSize: 128 },
};

function scaleOf(o: ReproduceOptions): Scale {
  const s = SCALES[o.preset as 'smoke' | 'cpu'];
  return o.seeds ? { ...s, seeds: o.seeds } : s;
}

function base(s: Scale, o: ReproduceOptions, extra: Flat = {}): Flat {
  return { dataset: s.dataset, arch: 'small-cnn', width: s.width, limit: s.limit, epochs: s.epochs, steps: s.steps, 'val-limit': s.valLimit, 'val-steps': Math.min(s.steps, 5), 'batch-size': s.batchSize, eps: 0.1, ...epOf(o), ...extra };
}

function evalOf(s: Scale, extra: Flat = {}): Flat {
  return { attack: 'pgd', eps: 0.1, steps: s.evalSteps, limit: s.evalLimit, ...extra };
}

/** The execution provider, only when one is asked for (runs that do not set it resolve to cpu, the same id). */
function epOf(o: ReproduceOptions): Flat {
  return o.ep ? { ep: o.ep } : {};
}

// The papers' own settings (../shared/papers/METHODS.md). Each ImageNet-scale run holds out a fixed
// 10000 (ImageNet) or 1000 (CIFAR-10) training images for advrun's per-epoch validation, and the
// best-epoch checkpoint it selects; the papers train on every image (a 0.8% / 2% difference).

/** "30,60,90" -> "30, 60 and 90", for the tables' notes (built from the presets, so they cannot drift). */
function listText(csv: string): string {
  const v = csv.split(',');
  return v.length > 1 ? `${v.slice(0, -1).join(', ')} and ${v.at(-1)}` : v[0]!;
}

/** TWINS: a robust ImageNet ResNet-50 fine-tuned on CIFAR-10 upsampled to 224 inside the model. */
const TWINS_PAPER = {
  seeds: [0, 1, 2], batchSize: 128, lr: 0.003, epochs: 60, milestones: '30,50', momentum: 0.9, weightDecay: 1e-5,
  eps: '8/255', alpha: '2/255', steps: 10, lambda: 1, inputResize: 224, valSplit: 1000,
};

/** SAT's ImageNet recipe. The learning rate is 0.1 x B/256. */
const SAT_PAPER = {
  seeds: [0, 1, 2], batchSize: 256, epochs: 100, warmup: 5, milestones: '30,60,90', momentum: 0.9, weightDecay: 1e-4,
  eps: '4/255', alpha: '4/255', steps: 1, randomStartProb: 0.8, labelSmoothing: 0.1, imageSize: 224, valSplit: 10000,
  evalSteps: 200, evalStepSize: '1/255',
};

/**
 * RFN's ImageNet surrogates and targets. METHODS.md gives no surrogate schedule: this is torchvision's
 * ResNet-50 recipe (90 epochs, lr 0.1 x B/256, x0.1 at 30 and 60, wd 1e-4), snapshots every 10 epochs;
 * the early-stopped surrogate is the snapshot that transfers best on the validation split (METHODS.md:
 * transfer peaks when the learning rate decays), chosen the way l-SAM's radius is.
 */
const RFN_PAPER = {
  seeds: [0, 1, 2], batchSize: 256, epochs: 90, milestones: '30,60', momentum: 0.9, weightDecay: 1e-4, imageSize: 224, valSplit: 10000,
  saveEvery: 10, rhos: [0.2, 0.5, 1.0], targetSeeds: [100, 101],
  eps: '4/255', steps: 50, n: 5000, valN: 1000, sharpN: 1000, iters: 20, samples: 20,
};

/** One line per paper's --preset paper, from the constants above (the CLI help lists them). */
export const PAPER_PRESET_SUMMARY: Record<Paper, string> = {
  twins: `robust ImageNet ResNet-50 (--checkpoint) fine-tuned on CIFAR-10 upsampled to ${TWINS_PAPER.inputResize}; lr ${TWINS_PAPER.lr}, ${TWINS_PAPER.epochs} epochs, batch ${TWINS_PAPER.batchSize}, PGD-${TWINS_PAPER.steps} ${TWINS_PAPER.eps}`,
  sat: `ResNet-50 on ImageNet (--data-dir with train/, val/); PGD-${SAT_PAPER.steps} ${SAT_PAPER.eps}, label smoothing, Nesterov, lr 0.1 x B/256, ${SAT_PAPER.epochs} epochs; PGD-${SAT_PAPER.evalSteps} eval`,
  rfn: `ResNet-50 surrogates on ImageNet (--data-dir): SGD snapshots, SAM, l-SAM; independent ResNet-50 targets; BIM ${RFN_PAPER.steps} steps at ${RFN_PAPER.eps}`,
};

/**
 * ImageNet's normalisation constants, inside the model: what the robust ImageNet checkpoints were trained
 * with (TWINS' code keeps them for CIFAR-10) and torchvision's convention for ImageNet models.
 */
const IMAGENET_NORM = { mean: '0.485,0.456,0.406', std: '0.229,0.224,0.225' };

/** 0.1 x B/256 (Goyal et al.'s linear scaling, which SAT and torchvision's recipe use). */
const imagenetLr = (batchSize: number) => (0.1 * batchSize) / 256;

/** The ImageNet root the SAT and RFN paper presets train (train/) and evaluate (val/) on. */
function imagenetDirs(paper: Paper, o: ReproduceOptions): { train: string; val: string } {
  const hint = 'a folder with train/ and val/, one sub-folder per class';
  if (!o.dataDir) throw new UserError(`reproduce ${paper} --preset paper trains on ImageNet: pass --data-dir DIR (${hint})`);
  const root = resolve(o.dataDir);
  const dirs = { train: join(root, 'train'), val: join(root, 'val') };
  for (const d of Object.values(dirs)) if (!isDir(d)) throw new UserError(`reproduce ${paper} --preset paper: --data-dir ${o.dataDir} has no ${d.slice(root.length + 1)}/ (${hint})`);
  return dirs;
}

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Options that only the paper preset reads are an error elsewhere, rather than silently ignored. */
function checkPresetOptions(paper: Paper, o: ReproduceOptions): void {
  if (o.preset === 'paper') return;
  const only = [['--data-dir', o.dataDir], ['--checkpoint', o.checkpoint], ['--batch-size', o.batchSize]].filter(([, v]) => v !== undefined).map(([k]) => k);
  if (only.length) throw new UserError(`reproduce ${paper} --preset ${o.preset}: ${only.join(', ')} applies to --preset paper only`);
}

function seedsOf(o: ReproduceOptions, dflt: number[]): number[] {
  return o.seeds ?? dflt;
}

function batchOf(o: ReproduceOptions, dflt: number): number {
  const b = o.batchSize ?? dflt;
  if (!Number.isInteger(b) || b < 1) throw new UserError(`--batch-size must be a positive integer, got ${b}`);
  return b;
}

// ---------- planning and running grids ----------

function planStage(name: string, spec: Flat, o: ReproduceOptions): PlannedStage {
  return { name, dir: join(resolve(o.out), name), plan: expandGrid(validateSpec({ name, ...spec }, `reproduce ${name}`)) };
}

async function runStage(stage: PlannedStage, o: ReproduceOptions): Promise<GridTable> {
  o.log?.(`${stage.name}: ${stage.plan.runs.length} runs in ${stage.dir}`);
  const summary = await runGrid(stage.plan, { workers: 1, ...o.grid, out: stage.dir });
  if (summary.failures.length) o.log?.(`${stage.name}: ${summary.failures.length} run(s) failed; they appear as failed in the table`);
  return buildTable(stage.dir);
}

/** The plan as --dry-run writes it: every run's id, label and full train and eval configuration. */
function planJson(p: ReproductionPlan): Record<string, unknown> {
  return {
    paper: p.paper, preset: p.preset, note: p.note, after: p.after, ...(p.rfn ? { rfn: p.rfn } : {}),
    stages: p.stages.map((s) => ({ name: s.name, dir: s.dir, runs: s.plan.runs.map((r) => ({ id: r.id, label: r.label, train: r.train, eval: r.eval })) })),
  };
}

// ---------- tables ----------

function cell(t: GridTable, metric: 'clean_acc' | 'robust_acc', match: Record<string, string>): CellStats | undefined {
  return t.cells.find((c) => c.metric === metric && Object.entries(match).every(([k, v]) => c.row[k] === v));
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : (100 * v).toFixed(1));
function show(c: CellStats | undefined): string {
  if (!c || c.mean === null) return c ? `missing (${c.failed} failed, ${c.missing} missing)` : '–';
  const std = c.std === null ? '' : ` ± ${pct(c.std)}`;
  const gaps = c.failed + c.missing > 0 ? `; ${c.failed} failed, ${c.missing} missing` : '';
  return `${pct(c.mean)}${std} (n=${c.n}${gaps})`;
}

/**
 * SAT's claim has two parts, judged over the n smooth activations against ReLU (beyond noise):
 * more robust (yes: most are; no: at least as many are less robust as more) and no accuracy cost
 * (yes: none loses clean accuracy; no: half or more do). "yes" needs both parts, either "no" refutes it.
 */
export function satVerdict(n: number, robustBetter: number, robustWorse: number, cleanWorse: number): 'yes' | 'no' | 'within noise' {
  const robust = robustBetter > n / 2 ? 'yes' : robustWorse > 0 && robustWorse >= robustBetter ? 'no' : 'within noise';
  const free = cleanWorse === 0 ? 'yes' : cleanWorse >= n / 2 ? 'no' : 'within noise';
  return robust === 'no' || free === 'no' ? 'no' : robust === 'yes' && free === 'yes' ? 'yes' : 'within noise';
}

/** "higher than", "lower than", "within noise of", for verdict sentences. */
function than(c: ReturnType<typeof compareCells>): string {
  return c === 'higher' ? 'higher than' : c === 'lower' ? 'lower than' : c === 'within noise' ? 'within noise of' : 'not comparable with';
}

/** Is a's mean above b's by more than twice the standard error of the difference? */
export function compareCells(a: CellStats | undefined, b: CellStats | undefined): 'higher' | 'lower' | 'within noise' | 'unknown' {
  if (!a || !b || a.mean === null || b.mean === null) return 'unknown';
  const se = Math.sqrt(((a.std ?? 0) ** 2) / Math.max(1, a.n) + ((b.std ?? 0) ** 2) / Math.max(1, b.n));
  const diff = a.mean - b.mean;
  if (a.n < 2 || b.n < 2) return 'within noise'; // one seed cannot separate an effect from noise
  if (diff > 2 * se) return 'higher';
  if (diff < -2 * se) return 'lower';
  return 'within noise';
}

/** A reproduction's table.md: title, smoke warning, our setting, the table, the verdict, provenance. */
function markdownReport(title: string, preset: Preset, note: string, table: string[], verdict: string, footnote: string): string {
  const lines = [
    `# ${title} — advrun reproduction (preset: ${preset})`,
    '',
    preset === 'smoke' ? '> **Smoke preset: tiny runs to check the pipeline. The numbers are meaningless.**\n' : '',
    note,
    '',
    ...table,
    '',
    '## Verdict',
    '',
    verdict,
    '',
    `advrun ${provenance().advrun_version}, commit ${provenance().git_commit ?? 'unknown'}${provenance().git_dirty ? ' with uncommitted changes' : ''}. ${footnote}`,
    '',
  ];
  return lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n');
}

function renderTable(title: string, preset: Preset, scaleNote: string, rows: Row[], paperHeader: string, verdict: string): { md: string; csv: string } {
  const table = [
    `| setting | clean acc (ours) | robust acc (ours) | ${paperHeader} |`,
    '| --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.label} | ${show(r.cells.clean)} | ${show(r.cells.robust)} | ${r.paper ? [r.paper.clean !== undefined ? `clean ${r.paper.clean}` : '', r.paper.robust !== undefined ? `robust ${r.paper.robust}` : '', r.paper.note ?? ''].filter(Boolean).join(', ') : '–'} |`),
  ];
  const md = markdownReport(title, preset, scaleNote, table, verdict, 'Accuracies in percent, mean ± std over seeds (n = runs with a value).');
  const csv = createObjectCsvStringifier({
    header: ['setting', 'clean_mean', 'clean_std', 'robust_mean', 'robust_std', 'n', 'failed', 'missing', 'paper_clean', 'paper_robust'].map((id) => ({ id, title: id })),
  });
  const records = rows.map((r) => ({
    setting: r.label, clean_mean: r.cells.clean?.mean ?? '', clean_std: r.cells.clean?.std ?? '', robust_mean: r.cells.robust?.mean ?? '', robust_std: r.cells.robust?.std ?? '',
    n: r.cells.robust?.n ?? r.cells.clean?.n ?? 0, failed: r.cells.clean?.failed ?? 0, missing: r.cells.clean?.missing ?? 0,
    paper_clean: r.paper?.clean ?? '', paper_robust: r.paper?.robust ?? '',
  }));
  return { md, csv: csv.getHeaderString()! + csv.stringifyRecords(records) };
}


// ---------- SAT ----------

const SAT_ACTIVATIONS: [string, string][] = [
  ['relu', 'relu'], ['softplus', 'softplus'], ['psoftplus(10)', 'parametric_softplus'], ['silu', 'silu'],
  ['gelu-tanh', 'gelu'], ['elu', 'elu'], ['smooth-relu', 'smooth_relu'], // GELU: SAT's code uses the tanh approximation
];
const GRADIENT_QUALITY = ['attacker', 'optimizer', 'both'];

/** Every activation, and ReLU with each smooth-backward variant, over the seeds. */
function satGrid(trainBase: Flat, evalSpec: Flat, seeds: number[]): Flat {
  return {
    base: trainBase,
    axes: { activation: SAT_ACTIVATIONS.map(([a]) => a), seed: seeds },
    include: GRADIENT_QUALITY.map((v) => ({ activation: 'relu', 'smooth-backward': v, seed: seeds })),
    eval: evalSpec,
    table: { rows: ['activation', 'smooth-backward'], columns: [], metric: ['clean_acc', 'robust_acc'], over: ['seed'] },
  };
}

function planSat(o: ReproduceOptions): ReproductionPlan {
  if (o.preset !== 'paper') {
    const s = scaleOf(o);
    const note = `Our setting: ${s.dataset}, small-cnn width ${s.width}, PGD-AT (eps 0.1, ${s.steps} steps), ${s.epochs} epochs on ${s.limit} images, evaluated with PGD-${s.evalSteps} at eps 0.1 on ${s.evalLimit} test images; seeds ${s.seeds.join(', ')}. Paper columns: ResNet-50 on ImageNet, eps 4/255, PGD-200 — a different dataset and scale, shown for direction only.`;
    return { paper: 'sat', preset: o.preset, stages: [planStage('sat', satGrid(base(s, o, { method: 'pgd-at' }), evalOf(s), s.seeds), o)], after: [], note };
  }
  const p = SAT_PAPER, dirs = imagenetDirs('sat', o), batch = batchOf(o, p.batchSize), seeds = seedsOf(o, p.seeds);
  const trainBase: Flat = {
    dataset: `folder:${dirs.train}`, 'image-size': p.imageSize, ...IMAGENET_NORM, arch: 'resnet50', method: 'pgd-at', eps: p.eps, alpha: p.alpha, steps: p.steps,
    'random-start-prob': p.randomStartProb, 'label-smoothing': p.labelSmoothing, momentum: p.momentum, nesterov: true, lr: imagenetLr(batch),
    'batch-size': batch, warmup: p.warmup, epochs: p.epochs, schedule: 'piecewise', milestones: p.milestones, 'weight-decay': p.weightDecay,
    'weight-decay-scope': 'weights', 'val-split': p.valSplit, 'val-limit': 1000, 'val-steps': 10, ...epOf(o),
  };
  const evalSpec: Flat = { dataset: `folder:${dirs.val}`, split: 'test', attack: 'pgd', eps: p.eps, steps: p.evalSteps, 'step-size': p.evalStepSize, 'batch-size': Math.min(batch, 128) };
  const note = `Our setting: the paper's. ResNet-50 on ImageNet (${dirs.train}, images resized to cover and centre-cropped to 224, ImageNet's mean/std inside the model), PGD-${p.steps} training attack (eps ${p.eps}, step ${p.alpha}, random start with probability ${p.randomStartProb}, BN in eval mode), adversarial images only, label smoothing ${p.labelSmoothing}, SGD Nesterov momentum ${p.momentum}, lr 0.1 x ${batch}/256 = ${imagenetLr(batch)} with a ${p.warmup}-epoch linear warm-up from 0, x0.1 at epochs ${listText(p.milestones)} of ${p.epochs}, weight decay ${p.weightDecay} on conv/FC weights only; evaluated with PGD-${p.evalSteps} (eps ${p.eps}, step ${p.evalStepSize}) on the whole val folder (${dirs.val}); seeds ${seeds.join(', ')}. Differences from the paper: augmentation is advrun's random crop (4-pixel padding) and flip, not RandomResizedCrop; ${p.valSplit} training images are held out for per-epoch validation.`;
  return { paper: 'sat', preset: 'paper', stages: [planStage('sat', satGrid(trainBase, evalSpec, seeds), o)], after: [], note };
}

async function runSat(o: ReproduceOptions, plan: ReproductionPlan): Promise<Omit<ReproduceResult, 'seconds'>> {
  const table = await runStage(plan.stages[0]!, o);
  const ref = referenceNumbers()?.sat?.paper ?? {};
  const at = (act: string, sb = 'none') => ({ clean: cell(table, 'clean_acc', { activation: act, smoothBackward: sb }), robust: cell(table, 'robust_acc', { activation: act, smoothBackward: sb }) });
  const rows: Row[] = SAT_ACTIVATIONS.map(([act, key]) => ({ label: act, cells: at(act), paper: ref[key] ? { clean: ref[key].clean, robust: ref[key].pgd200 } : undefined }));
  for (const v of GRADIENT_QUALITY) rows.push({ label: `relu, smooth backward: ${v}`, cells: at('relu', v) });
  const relu = rows[0]!.cells;
  const smooth = rows.slice(1, SAT_ACTIVATIONS.length);
  const versusRelu = (what: 'robust' | 'clean', c: 'higher' | 'lower') => smooth.filter((r) => compareCells(r.cells[what], relu[what]) === c).length;
  const robustBetter = versusRelu('robust', 'higher'), cleanWorse = versusRelu('clean', 'lower');
  const holds = satVerdict(smooth.length, robustBetter, versusRelu('robust', 'lower'), cleanWorse);
  const gq = GRADIENT_QUALITY.map((v, i) => {
    const r = rows[SAT_ACTIVATIONS.length + i]!.cells;
    return `${v}: robust ${than(compareCells(r.robust, relu.robust))} ReLU, clean ${than(compareCells(r.clean, relu.clean))} ReLU`;
  });
  const verdict = `Does "smooth activations improve robustness without hurting accuracy" hold at this scale? **${holds}**: ${robustBetter} of ${smooth.length} smooth activations are more robust than ReLU beyond noise (2 standard errors), ${cleanWorse} lose clean accuracy beyond noise. Gradient-quality variants (paper: attacker-only raises robustness and lowers accuracy; optimizer-only and both raise both): ${gq.join('; ')}.`;
  const header = o.preset === 'paper' ? 'paper (same setting)' : 'paper (ImageNet, ResNet-50)';
  const out = renderTable('SAT: smooth adversarial training', o.preset, plan.note, rows, header, verdict);
  return { table: out.md, csv: out.csv, verdict };
}

// ---------- TWINS ----------

const TWINS_METHODS: [string, string][] = [['ft-at', 'AT fine-tuning'], ['ft-trades', 'TRADES fine-tuning'], ['twins-at', 'TWINS-AT'], ['twins-trades', 'TWINS-TRADES']];

/** The four fine-tuning methods over the seeds, from `init`. */
function twinsGrid(trainBase: Flat, evalSpec: Flat, seeds: number[]): Flat {
  return {
    base: trainBase,
    axes: { method: TWINS_METHODS.map(([m]) => m), seed: seeds },
    eval: evalSpec,
    table: { rows: ['method'], columns: [], metric: ['clean_acc', 'robust_acc'], over: ['seed'] },
  };
}

function planTwins(o: ReproduceOptions): ReproductionPlan {
  if (o.preset !== 'paper') {
    const s = scaleOf(o);
    // Source task: adversarial pre-training on classes 0-4; downstream: classes 5-9 with a new head, from
    // the pre-training run's checkpoint (its path is known from the plan before anything runs).
    const pre = planStage('twins-pretrain', {
      base: base(s, o, { method: 'pgd-at', classes: '0-4', limit: s.limit * 2, seed: 0 }),
      axes: {}, eval: null, table: { rows: ['method'], columns: [], metric: ['val_robust_acc'], over: [] },
    }, o);
    const init = runPaths(pre.dir, pre.plan.runs[0]!.id).checkpoint;
    // One training-attack step for every method (eps/4, as the paper's 2/255 at 8/255): left to the defaults,
    // TRADES' KL attack and PGD would each get their own.
    const fine = planStage('twins', twinsGrid(base(s, o, { classes: '5-9', init, lr: 0.01, lambda: 1, schedule: 'piecewise', alpha: 0.025 }), evalOf(s, { classes: '5-9' }), s.seeds), o);
    const note = `Our setting: ${s.dataset}; source model small-cnn width ${s.width} adversarially pre-trained (PGD-AT, eps 0.1) on classes 0-4, fine-tuned on classes 5-9 with a new head (lr 0.01, lambda 1, training attacks with step 0.025 for every method, ${s.epochs} epochs, ${s.limit} images); evaluated with PGD-${s.evalSteps} at eps 0.1 on ${s.evalLimit} test images of classes 5-9; seeds ${s.seeds.join(', ')}. The paper's table values were not retrievable; its claim is qualitative.`;
    return { paper: 'twins', preset: o.preset, stages: [pre, fine], after: [], note };
  }
  const p = TWINS_PAPER, batch = batchOf(o, p.batchSize), seeds = seedsOf(o, p.seeds);
  if (!o.checkpoint) throw new UserError('reproduce twins --preset paper fine-tunes a robust ImageNet ResNet-50: pass --checkpoint PATH (torchvision-layout .pt/.safetensors state_dict, a robustness-library checkpoint, or an advrun checkpoint)');
  const init = resolve(o.checkpoint);
  if (!existsSync(init)) throw new UserError(`reproduce twins --preset paper: --checkpoint ${o.checkpoint} does not exist`);
  if (o.dataDir !== undefined && !isDir(o.dataDir)) throw new UserError(`reproduce twins --preset paper: --data-dir ${o.dataDir} is not a directory (it should hold the CIFAR-10 files; omit it to download them)`);
  const data: Flat = o.dataDir ? { 'data-dir': resolve(o.dataDir) } : {};
  const trainBase: Flat = {
    dataset: 'cifar10', ...data, arch: 'resnet50', 'input-resize': p.inputResize, ...IMAGENET_NORM, init, lr: p.lr, epochs: p.epochs, schedule: 'piecewise',
    milestones: p.milestones, 'batch-size': batch, momentum: p.momentum, 'weight-decay': p.weightDecay, eps: p.eps, alpha: p.alpha, steps: p.steps,
    lambda: p.lambda, 'val-split': p.valSplit, 'val-limit': 1000, 'val-steps': 10, ...epOf(o),
  };
  const evalSpec: Flat = { ...data, attack: 'pgd', eps: p.eps, steps: p.steps, 'step-size': p.alpha, 'batch-size': Math.min(batch, 128) };
  const note = `Our setting: the paper's. The robust ImageNet ResNet-50 ${init} fine-tuned on CIFAR-10 (32x32, upsampled bilinearly to ${p.inputResize} and normalised with ImageNet's mean/std inside the model, as the official code does; random crop and flip) with a new 10-way head: SGD momentum ${p.momentum}, lr ${p.lr}, x0.1 at epochs ${listText(p.milestones)} of ${p.epochs}, batch ${batch}, weight decay ${p.weightDecay}, PGD-${p.steps} (eps ${p.eps}, step ${p.alpha}) training examples, lambda ${p.lambda}; evaluated with PGD-${p.steps} (eps ${p.eps}, step ${p.alpha}) on the 10000 CIFAR-10 test images; seeds ${seeds.join(', ')}. Differences from the paper: ${p.valSplit} training images are held out for per-epoch validation. The paper's table values were not retrievable; its claim is qualitative.`;
  return { paper: 'twins', preset: 'paper', stages: [planStage('twins', twinsGrid(trainBase, evalSpec, seeds), o)], after: [], note };
}

async function runTwins(o: ReproduceOptions, plan: ReproductionPlan): Promise<Omit<ReproduceResult, 'seconds'>> {
  const fine = plan.stages.at(-1)!;
  if (plan.stages.length > 1) {
    const pre = plan.stages[0]!;
    await runStage(pre, o);
    const init = runPaths(pre.dir, pre.plan.runs[0]!.id).checkpoint;
    if (!existsSync(init)) throw new UserError(`TWINS pre-training did not produce ${init}; see ${pre.dir}`);
  }
  const table = await runStage(fine, o);
  const rows: Row[] = TWINS_METHODS.map(([m, label]) => ({ label, cells: { clean: cell(table, 'clean_acc', { method: m }), robust: cell(table, 'robust_acc', { method: m }) } }));
  const pair = (twins: Row, base_: Row) => {
    const c = compareCells(twins.cells.clean, base_.cells.clean), r = compareCells(twins.cells.robust, base_.cells.robust);
    return { c, r, holds: c === 'higher' && r === 'higher' ? 'yes' : c === 'lower' || r === 'lower' ? 'no' : 'within noise' };
  };
  const at = pair(rows[2]!, rows[0]!), tr = pair(rows[3]!, rows[1]!);
  const verdict = `Does "TWINS beats AT and TRADES fine-tuning on both clean and robust accuracy" hold at this scale? TWINS-AT vs AT fine-tuning: **${at.holds}** (clean ${at.c}, robust ${at.r}); TWINS-TRADES vs TRADES fine-tuning: **${tr.holds}** (clean ${tr.c}, robust ${tr.r}). "higher/lower" means beyond 2 standard errors over seeds.`;
  const out = renderTable('TWINS: robust fine-tuning with two-wing BN', o.preset, plan.note, rows, 'paper', verdict);
  return { table: out.md, csv: out.csv, verdict };
}

// ---------- entry ----------

const PLANNERS: Record<Paper, (o: ReproduceOptions) => ReproductionPlan> = { twins: planTwins, sat: planSat, rfn: planRfn };

/** Every grid a reproduction would run, fully expanded, without running anything (--dry-run). */
function planReproduction(paper: Paper, o: ReproduceOptions): ReproductionPlan {
  const plan = PLANNERS[paper];
  if (!plan) throw new UserError(`unknown paper "${paper}"; use ${PAPERS.join(', ')}`);
  if (!PRESETS.includes(o.preset)) throw new UserError(`unknown preset "${o.preset}"; use ${PRESETS.join(', ')}`);
  if (o.seeds && (o.seeds.length === 0 || o.seeds.some((s) => !Number.isInteger(s) || s < 0))) throw new UserError(`--seeds must be non-negative integers, e.g. 0,1,2`);
  checkPresetOptions(paper, o);
  return plan(o);
}

/** Plan (written to DIR/plan.json first, as --dry-run writes it), then run every grid and write DIR/table.md, table.csv and reproduce.json. */
export async function reproduce(paper: Paper, o: ReproduceOptions): Promise<ReproduceResult> {
  const t0 = Date.now();
  const plan = planReproduction(paper, o);
  writePlanFile(o, plan);
  const r = await { twins: runTwins, sat: runSat, rfn: runRfn }[paper](o, plan);
  const dir = resolve(o.out);
  writeFileAtomic(join(dir, 'table.md'), r.table);
  writeFileAtomic(join(dir, 'table.csv'), r.csv);
  const seconds = (Date.now() - t0) / 1000;
  writeFileAtomic(join(dir, 'reproduce.json'), JSON.stringify({ paper, preset: o.preset, seconds, verdict: r.verdict, ...provenance() }, null, 2));
  return { ...r, seconds };
}

/** --dry-run: the plan, written to DIR/plan.json. */
export function writePlan(paper: Paper, o: ReproduceOptions): { path: string; plan: ReproductionPlan } {
  const plan = planReproduction(paper, o);
  return { path: writePlanFile(o, plan), plan };
}

/** DIR/plan.json: every run's full configuration, with the commit and versions that planned it. */
function writePlanFile(o: ReproduceOptions, plan: ReproductionPlan): string {
  const path = join(resolve(o.out), 'plan.json');
  writeFileAtomic(path, JSON.stringify({ ...planJson(plan), ...provenance() }, null, 2));
  return path;
}

// ---------- RFN ----------

interface Stats { mean: number | null; std: number | null; n: number }

/** Over the seeds that produced a number (a failed step leaves a gap, counted as missing). */
function stats(values: (number | null | undefined)[]): Stats {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return { ...meanStd(v), n: v.length };
}

/** Stats as a CellStats, so the shared comparison and rendering apply. */
function asCell(st: Stats, expected: number): CellStats {
  return { row: {}, column: {}, metric: 'robust_acc', mean: st.mean, std: st.std, n: st.n, expected, failed: 0, missing: expected - st.n } as CellStats;
}

/** Run an advrun command (transfer, sharpness) as its own process, as the grid does, and parse its --json. */
function advrunJson(args: string[]): Record<string, any> {
  const r = spawnSync(process.execPath, [cliPath(), ...args, '--json'], { encoding: 'utf8', env: { ...process.env, CI: 'true' }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new UserError(`advrun ${args[0]} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Per preset: l-SAM radii, targets, BIM (eps, steps), test/validation images, sharpness subset and iterations. */
const RFN_SCALES = {
  smoke: { rhos: [0.5], targets: [{ arch: 'small-cnn', width: 8 }, { arch: 'small-cnn', width: 4, activation: 'elu' }], eps: '0.1', steps: 5, n: 100, valN: 100, sharpN: 64, iters: 3, samples: 3 },
  cpu: { rhos: [0.2, 0.5], targets: [{ arch: 'small-cnn', width: 32 }, { arch: 'preact-resnet18', width: 8 }, { arch: 'wrn', depth: 10, width: 2 }], eps: '0.1', steps: 50, n: 1000, valN: 200, sharpN: 1000, iters: 10, samples: 10 },
};

/** What RFN does after its grids: the transfer protocol and the sharpness measurement, per seed. */
interface RfnSettings {
  seeds: number[];
  /** l-SAM's candidate radii (the one transferring best on the validation split is used). */
  rhos: number[];
  /** Epochs of the SGD snapshots the early-stopped surrogate is chosen from (on the validation split). */
  earlyEpochs: number[];
  eps: string;
  steps: number;
  valN: number;
  testN: number;
  /** Extra `advrun transfer` arguments naming the test data (ImageNet: the val folder). */
  testData: string[];
  sharp: { n: number; iters: number; samples: number };
}

function rfnSurrogates(trainBase: Flat, rhos: number[], seeds: number[]): Flat {
  return {
    base: trainBase,
    axes: { seed: seeds },
    include: [0.05, ...rhos].map((rho) => ({ method: 'sam', rho, seed: seeds })),
    eval: null, table: { rows: ['method', 'rho'], columns: [], metric: ['val_clean_acc'], over: ['seed'] },
  };
}

/** Only the listed targets (a grid without axes but with includes is just its includes). */
function rfnTargets(trainBase: Flat, targets: Flat[]): Flat {
  return {
    base: trainBase, axes: {}, include: targets,
    eval: null, table: { rows: ['arch', 'width', 'depth', 'activation', 'seed'], columns: [], metric: ['val_clean_acc'], over: [] },
  };
}

function planRfn(o: ReproduceOptions): ReproductionPlan {
  if (o.preset !== 'paper') {
    // Standard training is cheap next to adversarial training: the smoke preset still trains the models
    // enough that some test images are classified correctly by every target.
    const s0 = scaleOf(o), r = RFN_SCALES[o.preset];
    const s: Scale = { ...s0, limit: Math.max(s0.limit, 512), epochs: Math.max(s0.epochs, 3) };
    // Surrogates: SGD with a snapshot every epoch (early stopping), SAM and large-radius SAM, standard (not adversarial) training.
    const sur = planStage('rfn-surrogates', rfnSurrogates(base(s, o, { method: 'standard', eps: 0, 'save-every': 1 }), r.rhos, s.seeds), o);
    // Targets: independently trained models of other architectures and seeds.
    const tgt = planStage('rfn-targets', rfnTargets(base(s, o, { method: 'standard', eps: 0 }), r.targets.map((t, i) => ({ ...t, seed: 100 + i }))), o);
    const rfn: RfnSettings = {
      seeds: s.seeds, rhos: r.rhos, earlyEpochs: snapshotEpochs(s.epochs, 1), eps: r.eps, steps: r.steps, valN: r.valN, testN: r.n, testData: [],
      sharp: { n: r.sharpN, iters: r.iters, samples: r.samples },
    };
    const note = `Our setting: ${s.dataset}; surrogates small-cnn width ${s.width} trained normally for ${s.epochs} epochs on ${s.limit} images (SGD with a snapshot every epoch, the early-stopping epoch chosen on the validation split, SAM rho 0.05, l-SAM rho from {${r.rhos.join(', ')}} chosen on the validation split); targets: ${r.targets.map((t) => Object.entries(t).map(([k, v]) => `${k} ${v}`).join(' ')).join('; ')} (independently trained, not adversarially); BIM (I-FGSM, no random start) L-inf eps ${r.eps}, step eps/10, ${r.steps} iterations, on the first ${r.n} test images every target classifies correctly; success = 1 - target accuracy, averaged over the targets; sharpness: largest Hessian eigenvalue and Hutchinson trace of the CE loss on ${r.sharpN} training images, eval mode; seeds ${s.seeds.join(', ')}. The paper (ImageNet, ResNet-50) reports only a qualitative claim here: ${referenceNumbers()?.rfn?.claim ?? 'see ../shared/papers'}.`;
    return { paper: 'rfn', preset: o.preset, stages: [sur, tgt], after: rfnAfter(rfn), note, rfn };
  }
  const p = RFN_PAPER, dirs = imagenetDirs('rfn', o), batch = batchOf(o, p.batchSize), seeds = seedsOf(o, p.seeds);
  const trainBase: Flat = {
    dataset: `folder:${dirs.train}`, 'image-size': p.imageSize, ...IMAGENET_NORM, arch: 'resnet50', method: 'standard', eps: 0, lr: imagenetLr(batch), 'batch-size': batch,
    momentum: p.momentum, 'weight-decay': p.weightDecay, epochs: p.epochs, schedule: 'piecewise', milestones: p.milestones, 'val-split': p.valSplit, 'val-limit': 1000, ...epOf(o),
  };
  const sur = planStage('rfn-surrogates', rfnSurrogates({ ...trainBase, 'save-every': p.saveEvery }, p.rhos, seeds), o);
  const tgt = planStage('rfn-targets', rfnTargets(trainBase, p.targetSeeds.map((seed) => ({ seed }))), o);
  const rfn: RfnSettings = {
    seeds, rhos: p.rhos, earlyEpochs: snapshotEpochs(p.epochs, p.saveEvery), eps: p.eps, steps: p.steps, valN: p.valN, testN: p.n, testData: ['--dataset', `folder:${dirs.val}`],
    sharp: { n: p.sharpN, iters: p.iters, samples: p.samples }, // sharpness holds out what each checkpoint's run held out
  };
  const note = `Our setting: the paper's protocol on ImageNet (${dirs.train}, 224x224). Surrogates: ResNet-50 trained normally with SGD (momentum ${p.momentum}, lr 0.1 x ${batch}/256 = ${imagenetLr(batch)}, x0.1 at epochs ${listText(p.milestones)} of ${p.epochs}, weight decay ${p.weightDecay}: torchvision's recipe, as METHODS.md gives none), the snapshot (every ${p.saveEvery} epochs) transferring best on the validation images as the early-stopped surrogate, SAM (rho 0.05) and l-SAM (rho from {${p.rhos.join(', ')}} chosen by transfer success on ${p.valN} held-out training images). Targets: ${p.targetSeeds.length} independently trained ResNet-50s (seeds ${p.targetSeeds.join(', ')}), not adversarially trained — advrun has no other ImageNet architecture, so this is not the paper's zoo of architectures. BIM (I-FGSM, no random start) L-inf eps ${p.eps}, step eps/10, ${p.steps} iterations, on the first ${p.n} images of ${dirs.val} every target classifies correctly; success = 1 - target accuracy, averaged over the targets; sharpness: largest Hessian eigenvalue and Hutchinson trace of the CE loss on ${p.sharpN} training images, eval mode; seeds ${seeds.join(', ')}. The paper reports only a qualitative claim here: ${referenceNumbers()?.rfn?.claim ?? 'see ../shared/papers'}.`;
  return { paper: 'rfn', preset: 'paper', stages: [sur, tgt], after: rfnAfter(rfn), note, rfn };
}

/** Snapshot epochs of a run of `epochs` epochs saving every `every`, before the last (which is the full run). */
function snapshotEpochs(epochs: number, every: number): number[] {
  return Array.from({ length: Math.ceil(epochs / every) - 1 }, (_, i) => (i + 1) * every).filter((e) => e < epochs);
}

function rfnAfter(r: RfnSettings): string[] {
  return r.seeds.flatMap((seed) => [
    `seed ${seed}: advrun transfer from the l-SAM candidates (rho ${r.rhos.join(', ')}) to the targets on ${r.valN} validation images; the best rho is kept`,
    `seed ${seed}: advrun transfer from the SGD snapshots (epochs ${r.earlyEpochs.join(', ')}) to the targets on ${r.valN} validation images; the best epoch is the early-stopped surrogate`,
    `seed ${seed}: advrun transfer (BIM, eps ${r.eps}, ${r.steps} steps, step eps/10) from SGD, SGD early-stopped, SAM and l-SAM to the targets on ${r.testN} test images`,
    `seed ${seed}: advrun sharpness of each of the four surrogates (${r.sharp.n} training images, ${r.sharp.iters} power iterations, ${r.sharp.samples} Hutchinson samples)`,
  ]);
}

async function runRfn(o: ReproduceOptions, plan: ReproductionPlan): Promise<Omit<ReproduceResult, 'seconds'>> {
  const r = plan.rfn!;
  const [sur, tgt] = plan.stages as [PlannedStage, PlannedStage];
  await runStage(sur, o);
  await runStage(tgt, o);
  const ep = o.ep ? ['--ep', o.ep] : [];
  const targets = tgt.plan.runs.map((run) => runPaths(tgt.dir, run.id).checkpoint);
  const ck = (run: { id: string }, epoch?: number) => (epoch ? runPaths(sur.dir, run.id).snapshot(epoch) : runPaths(sur.dir, run.id).checkpoint);
  const transferArgs = (split: string, n: number) => ['--targets', targets.join(','), '--attack', 'bim', '--eps', r.eps, '--steps', String(r.steps), '--step-size', 'eps/10', '--split', split, '-n', String(n), ...ep];

  const kinds = ['sgd (fully trained)', 'sgd (early-stopped, epoch selected on validation)', 'SAM (rho 0.05)', 'l-SAM (rho selected on validation)'];
  const perSeed: Record<string, { success: number[]; lambda: number[]; trace: number[] }> = Object.fromEntries(kinds.map((k) => [k, { success: [], lambda: [], trace: [] }]));
  const chosenRho: number[] = [], chosenEpoch: number[] = [];
  /** The candidate that transfers best on the validation split (`advrun transfer` over all of them at once). */
  const bestOnValidation = <T>(candidates: T[], paths: string[], name: string): T => {
    const val = advrunJson(['transfer', '--surrogates', paths.join(','), ...transferArgs('val', r.valN), '--out', join(resolve(o.out), 'rfn-transfer', name)]);
    const success = Object.values(val.mean_transfer as Record<string, number>); // in --surrogates order
    return candidates[success.indexOf(Math.max(...success))]!;
  };
  for (const seed of r.seeds) {
    const runsOf = (method: string, rho?: number) => sur.plan.runs.find((run) => run.train.seed === seed && run.train.method === method && (rho === undefined || run.train.rho === rho))!;
    // l-SAM's radius and the early-stopping epoch are both chosen by transfer success on the validation
    // split, never on the test set: neither side of the comparison gets more tuning than the other.
    const rho = bestOnValidation(r.rhos, r.rhos.map((rh) => ck(runsOf('sam', rh))), `val-seed${seed}`);
    const early = bestOnValidation(r.earlyEpochs, r.earlyEpochs.map((e) => ck(runsOf('standard'), e)), `val-early-seed${seed}`);
    chosenRho.push(rho);
    chosenEpoch.push(early);
    const surrogates = [ck(runsOf('standard')), ck(runsOf('standard'), early), ck(runsOf('sam', 0.05)), ck(runsOf('sam', rho))];
    const test = advrunJson(['transfer', '--surrogates', surrogates.join(','), ...transferArgs('test', r.testN), ...r.testData, '--out', join(resolve(o.out), 'rfn-transfer', `test-seed${seed}`)]);
    const means = Object.values(test.mean_transfer as Record<string, number>);
    surrogates.forEach((path, i) => {
      const sh = advrunJson(['sharpness', '--model', path, '--n', String(r.sharp.n), '--iters', String(r.sharp.iters), '--samples', String(r.sharp.samples), '--seed', String(seed), ...ep]);
      perSeed[kinds[i]!]!.success.push(means[i]!);
      perSeed[kinds[i]!]!.lambda.push(sh.lambda_max);
      perSeed[kinds[i]!]!.trace.push(sh.trace);
    });
  }
  const n = r.seeds.length;
  const cells = Object.fromEntries(kinds.map((k) => [k, { success: stats(perSeed[k]!.success), lambda: stats(perSeed[k]!.lambda), trace: stats(perSeed[k]!.trace) }]));
  const showStats = (st: Stats, scale = 1, digits = 1) => (st.mean === null ? '–' : `${(st.mean * scale).toFixed(digits)}${st.std === null ? '' : ` ± ${(st.std * scale).toFixed(digits)}`} (n=${st.n})`);
  const versus = (a: string, b: string) => compareCells(asCell(cells[a]!.success, n), asCell(cells[b]!.success, n));
  const lsam = kinds[3]!, es = kinds[1]!, full = kinds[0]!;
  const vsEarly = versus(lsam, es), vsFull = versus(lsam, full);
  const flatter = compareCells(asCell(cells[es]!.lambda, n), asCell(cells[lsam]!.lambda, n));
  const holds = vsEarly === 'higher' ? 'yes' : vsEarly === 'lower' ? 'no' : 'within noise';
  const verdict = `Does "a large-radius SAM surrogate (l-SAM / RFN) transfers better than early stopping" hold at this scale? **${holds}**: l-SAM's mean transfer success is ${than(vsEarly)} the early-stopped SGD surrogate's and ${than(vsFull)} the fully trained one's (higher/lower: beyond 2 standard errors over seeds). Sharpness: the early-stopped surrogate's largest Hessian eigenvalue is ${than(flatter)} l-SAM's. Chosen l-SAM radius per seed: ${chosenRho.join(', ')}; chosen early-stopping epoch per seed: ${chosenEpoch.join(', ')}.`;
  const table = markdownReport('RFN: flat-neighbourhood surrogates for transferable attacks', o.preset, plan.note, [
    '| surrogate | transfer success % (ours) | lambda_max | Hessian trace |',
    '| --- | --- | --- | --- |',
    ...kinds.map((k) => `| ${k} | ${showStats(cells[k]!.success, 100)} | ${showStats(cells[k]!.lambda, 1, 2)} | ${showStats(cells[k]!.trace, 1, 1)} |`),
  ], verdict, 'Mean ± std over seeds; per-seed matrices in rfn-transfer/.');
  const csv = createObjectCsvStringifier({ header: ['surrogate', 'success_mean', 'success_std', 'lambda_max_mean', 'lambda_max_std', 'trace_mean', 'trace_std', 'n'].map((id) => ({ id, title: id })) });
  const records = kinds.map((k) => ({ surrogate: k, success_mean: cells[k]!.success.mean ?? '', success_std: cells[k]!.success.std ?? '', lambda_max_mean: cells[k]!.lambda.mean ?? '', lambda_max_std: cells[k]!.lambda.std ?? '', trace_mean: cells[k]!.trace.mean ?? '', trace_std: cells[k]!.trace.std ?? '', n: cells[k]!.success.n }));
  return { table, csv: csv.getHeaderString()! + csv.stringifyRecords(records), verdict };
}
