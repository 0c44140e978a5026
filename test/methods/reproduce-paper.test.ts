// `advrun reproduce <paper> --preset paper --dry-run`: the papers' own configurations, expanded through the
// same grid code as the smoke and cpu presets, written to DIR/plan.json without running anything; and the
// one-line errors for missing inputs.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { satVerdict } from '../../src/methods/reproduce.js';

let root: string, imagenet: string, checkpoint: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'advrun-repro-paper-'));
  // Fake inputs: a dry run only checks that they exist.
  imagenet = join(root, 'imagenet');
  for (const split of ['train', 'val']) mkdirSync(join(imagenet, split, 'n01440764'), { recursive: true });
  checkpoint = join(root, 'resnet50_linf_eps4.0.ckpt');
  writeFileSync(checkpoint, 'not read by a dry run');
});

interface PlannedRun { id: string; label: Record<string, string>; train: Record<string, any>; eval: Record<string, any> | null }
interface Plan { paper: string; preset: string; note: string; after: string[]; rfn?: Record<string, any>; stages: { name: string; dir: string; runs: PlannedRun[] }[] }

function dryRun(paper: string, args: string[]): { plan: Plan; out: string; stdout: string } {
  const out = join(root, `${paper}-${Math.random().toString(36).slice(2, 8)}`);
  const r = runCli(['reproduce', paper, '--out', out, '--dry-run', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return { plan: JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')), out, stdout: r.stdout };
}

/** The single line a failing command prints. */
function failure(args: string[]): string {
  const r = runCli(args);
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

const values = (runs: PlannedRun[], key: string) => [...new Set(runs.map((r) => JSON.stringify(r.train[key])))].map((v) => (v === undefined ? undefined : JSON.parse(v)));

describe('reproduce --preset paper --dry-run', () => {
  test('twins: robust ImageNet ResNet-50 on CIFAR-10 upsampled to 224, lr 0.003, 60 epochs, x0.1 at 30 and 50', () => {
    const { plan, out, stdout } = dryRun('twins', ['--preset', 'paper', '--checkpoint', checkpoint, '--ep', 'cuda']);
    expect(plan.stages.map((s) => s.name)).toEqual(['twins']);
    const runs = plan.stages[0]!.runs;
    expect(runs).toHaveLength(12);
    expect(values(runs, 'method').sort()).toEqual(['ft-at', 'ft-trades', 'twins-at', 'twins-trades']);
    expect(values(runs, 'seed')).toEqual([0, 1, 2]);
    const t = runs[0]!.train;
    expect(t).toMatchObject({
      arch: 'resnet50', dataset: 'cifar10', inputResize: 224, init: checkpoint, lr: 0.003, epochs: 60, schedule: 'piecewise', milestones: [30, 50],
      batchSize: 128, momentum: 0.9, nesterov: false, weightDecay: 1e-5, steps: 10, lambda: 1, ep: 'cuda',
      mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], // the ImageNet checkpoint's normalisation, as TWINS' code keeps it
    });
    expect(t.eps).toBeCloseTo(8 / 255, 12);
    expect(t.alpha).toBeCloseTo(2 / 255, 12);
    expect(runs[0]!.eval).toMatchObject({ attack: 'pgd', steps: 10, split: 'test' });
    expect(runs[0]!.eval!.eps).toBeCloseTo(8 / 255, 12);
    expect(runs[0]!.eval!.stepSize).toBeCloseTo(2 / 255, 12);
    // The table's note is built from the same settings as the runs.
    expect(plan.note).toMatch(/upsampled bilinearly to 224/);
    expect(plan.note).toMatch(/lr 0\.003, x0\.1 at epochs 30 and 50 of 60, batch 128, weight decay 0\.00001, PGD-10 \(eps 8\/255, step 2\/255\)/);
    // Listed as `advrun grid plan` lists a grid: a header with the stage's directory, then index, id and label per run.
    expect(stdout).toMatch(/^grid twins: 12 runs in .*twins$/m);
    expect(stdout.match(/^ {2}#\d+ [0-9a-f]{12} /gm)).toHaveLength(12);
    expect(existsSync(join(out, 'twins'))).toBe(false); // nothing ran
  });

  test('sat: ResNet-50 on the ImageNet folder, every activation, PGD-1 4/255, SAT optimiser; PGD-200 on val', () => {
    const { plan } = dryRun('sat', ['--preset', 'paper', '--data-dir', imagenet]);
    expect(plan.note).toMatch(/PGD-1 training attack \(eps 4\/255, step 4\/255, random start with probability 0\.8.*5-epoch linear warm-up from 0, x0\.1 at epochs 30, 60 and 90 of 100, weight decay 0\.0001 on conv\/FC weights only; evaluated with PGD-200 \(eps 4\/255, step 1\/255\)/);
    const runs = plan.stages[0]!.runs;
    expect(runs).toHaveLength(30);
    expect(values(runs, 'activation')).toEqual(['relu', 'softplus', 'psoftplus(10)', 'silu', 'gelu-tanh', 'elu', 'smooth-relu']);
    expect(values(runs.filter((r) => r.train.activation === 'relu'), 'smoothBackward')).toEqual(['none', 'attacker', 'optimizer', 'both']);
    const t = runs[0]!.train;
    expect(t).toMatchObject({
      arch: 'resnet50', dataset: `folder:${join(imagenet, 'train')}`, imageSize: 224, method: 'pgd-at', steps: 1, randomStartProb: 0.8,
      labelSmoothing: 0.1, nesterov: true, momentum: 0.9, lr: 0.1, batchSize: 256, warmup: 5, epochs: 100, schedule: 'piecewise',
      milestones: [30, 60, 90], weightDecay: 1e-4, weightDecayScope: 'weights',
    });
    expect(t.eps).toBeCloseTo(4 / 255, 12);
    expect(t.alpha).toBeCloseTo(4 / 255, 12);
    const e = runs[0]!.eval!;
    expect(e).toMatchObject({ dataset: `folder:${join(imagenet, 'val')}`, split: 'test', attack: 'pgd', steps: 200 });
    expect(e.eps).toBeCloseTo(4 / 255, 12);
    expect(e.stepSize).toBeCloseTo(1 / 255, 12);
    expect(e.limit).toBeUndefined(); // the whole val folder
  });

  test('sat: the learning rate follows 0.1 x B/256; --seeds narrows the grid', () => {
    const { plan } = dryRun('sat', ['--preset', 'paper', '--data-dir', imagenet, '--batch-size', '1024', '--seeds', '0']);
    const runs = plan.stages[0]!.runs;
    expect(runs).toHaveLength(10);
    expect(runs[0]!.train).toMatchObject({ batchSize: 1024, lr: 0.4 });
  });

  test('rfn: ResNet-50 surrogates (SGD with snapshots, SAM 0.05, l-SAM candidates) and independent targets, BIM 50 at 4/255', () => {
    const { plan } = dryRun('rfn', ['--preset', 'paper', '--data-dir', imagenet]);
    expect(plan.stages.map((s) => s.name)).toEqual(['rfn-surrogates', 'rfn-targets']);
    const [sur, tgt] = plan.stages as [Plan['stages'][0], Plan['stages'][0]];
    expect(sur.runs).toHaveLength(15); // 3 seeds x (SGD, SAM 0.05, l-SAM 0.2 / 0.5 / 1.0)
    expect(values(sur.runs.filter((r) => r.train.method === 'sam'), 'rho').sort()).toEqual([0.05, 0.2, 0.5, 1]);
    const sgd = sur.runs.find((r) => r.train.method === 'standard')!.train;
    expect(sgd).toMatchObject({ arch: 'resnet50', imageSize: 224, epochs: 90, milestones: [30, 60], lr: 0.1, weightDecay: 1e-4, saveEvery: 10, eps: 0 });
    // Targets are independently trained: no copy of a surrogate (the grid's base run is excluded).
    expect(values(tgt.runs, 'seed')).toEqual([100, 101]);
    expect(tgt.runs.every((r) => r.train.saveEvery === 0)).toBe(true);
    expect(plan.rfn).toMatchObject({ earlyEpochs: [10, 20, 30, 40, 50, 60, 70, 80], eps: '4/255', steps: 50, testN: 5000, testData: ['--dataset', `folder:${join(imagenet, 'val')}`] });
    expect(plan.after).toHaveLength(12);
  });

  test('smoke and cpu presets dry-run too (TWINS fine-tunes the planned pre-training checkpoint)', () => {
    const { plan } = dryRun('twins', ['--preset', 'smoke']);
    const [pre, fine] = plan.stages as [Plan['stages'][0], Plan['stages'][0]];
    expect(fine.runs[0]!.train.init).toBe(join(pre.dir, 'runs', pre.runs[0]!.id, 'checkpoint.safetensors'));
    const rfn = dryRun('rfn', ['--preset', 'cpu']).plan;
    expect(rfn.stages[1]!.runs.map((r) => r.train.arch)).toEqual(['small-cnn', 'preact-resnet18', 'wrn']);
  });

  test('missing inputs are one-line errors naming the option', () => {
    const out = join(root, 'err');
    expect(failure(['reproduce', 'sat', '--preset', 'paper', '--out', out, '--dry-run'])).toMatch(/reproduce sat --preset paper trains on ImageNet: pass --data-dir DIR/);
    expect(failure(['reproduce', 'rfn', '--preset', 'paper', '--out', out])).toMatch(/pass --data-dir DIR/);
    expect(failure(['reproduce', 'twins', '--preset', 'paper', '--out', out, '--dry-run'])).toMatch(/pass --checkpoint PATH/);
    expect(failure(['reproduce', 'twins', '--preset', 'paper', '--out', out, '--checkpoint', join(root, 'nope.pt')])).toMatch(/--checkpoint .*nope\.pt does not exist/);
    expect(failure(['reproduce', 'sat', '--preset', 'paper', '--out', out, '--data-dir', join(imagenet, 'train')])).toMatch(/has no train\/ \(a folder with train\/ and val\//);
    expect(failure(['reproduce', 'sat', '--preset', 'cpu', '--out', out, '--data-dir', imagenet])).toMatch(/--data-dir applies to --preset paper only/);
    for (const seeds of ['1,a', '1,,2', '-1']) expect(failure(['reproduce', 'rfn', '--preset', 'smoke', '--out', out, '--seeds', seeds, '--dry-run'])).toMatch(/--seeds must be non-negative integers/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('SAT verdict', () => {
  // 6 smooth activations against ReLU: (more robust, less robust, less accurate), each beyond noise.
  test('"yes" needs robustness for most and no accuracy cost; either part failing is "no"', () => {
    expect(satVerdict(6, 4, 0, 0)).toBe('yes');
    expect(satVerdict(6, 6, 0, 3)).toBe('no'); // more robust, but half of them lose clean accuracy
    expect(satVerdict(6, 1, 2, 0)).toBe('no'); // more are less robust than more robust
    expect(satVerdict(6, 4, 0, 1)).toBe('within noise'); // one pays in accuracy
    expect(satVerdict(6, 2, 1, 0)).toBe('within noise');
    expect(satVerdict(6, 0, 0, 0)).toBe('within noise');
  });
});

describe("the repository's copy of the papers' reference numbers", () => {
  test('equals ../shared/papers/reference-numbers.json where that exists', (ctx) => {
    const shared = join(import.meta.dirname, '..', '..', '..', 'shared', 'papers', 'reference-numbers.json');
    if (!existsSync(shared)) ctx.skip('no ../shared/papers beside this checkout');
    const copy = join(import.meta.dirname, '..', '..', 'src', 'methods', 'reference-numbers.json');
    expect(JSON.parse(readFileSync(copy, 'utf8'))).toEqual(JSON.parse(readFileSync(shared, 'utf8')));
  });
});
