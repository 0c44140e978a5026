// Grid specs: validation (every typo named with the nearest valid key, nothing starts on a bad
// spec), expansion counts with include/exclude/overrides, and stable run ids.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expandGrid } from '../../src/grid/expand.js';
import { validateSpec } from '../../src/grid/spec.js';
import { UserError } from '../../src/util/errors.js';
import { ensureBuilt, removeTempDirs, runCli, tempDir, TINY_BASE, TINY_EVAL, writeSpec } from './helpers.js';

const spec = (extra: object) => ({ name: 't', base: TINY_BASE, eval: TINY_EVAL, ...extra });
const errorOf = (obj: unknown): string => {
  try {
    expandGrid(validateSpec(obj, 'spec.yaml'));
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message;
  }
  throw new Error('expected the spec to be rejected');
};

afterAll(removeTempDirs);

describe('grid spec validation', () => {
  it('names an unknown key and the nearest valid one, wherever it is', () => {
    expect(errorOf({ ...spec({}), axis: { seed: [0] } })).toContain('top level: unknown key "axis" (did you mean "axes"?)');
    expect(errorOf(spec({ base: { ...TINY_BASE, epochz: 2 } }))).toContain('base: unknown key "epochz" (did you mean "epochs"?)');
    expect(errorOf(spec({ axes: { 'val-limt': [10, 20] } }))).toContain('unknown key "val-limt" (did you mean "val-limit"?)');
    expect(errorOf(spec({ axes: { 'eval.stpes': [1, 2] } }))).toContain('axes: unknown key "eval.stpes" (did you mean "eval.steps"?)');
    expect(errorOf(spec({ eval: { ...TINY_EVAL, stpes: 3 } }))).toContain('eval: unknown key "stpes" (did you mean "steps"?)');
    expect(errorOf(spec({ axes: { seed: [0, 1] }, table: { rows: ['sed'] } }))).toContain('unknown key "sed" (did you mean "seed"?)');
    expect(errorOf(spec({ table: { metric: 'robust_ac' } }))).toContain('unknown metric "robust_ac" (did you mean "robust_acc"?)');
    expect(errorOf(spec({ executor: { kind: 'slurm', partiton: 'gpu' } }))).toContain('executor: unknown key "partiton" (did you mean "partition"?)');
    expect(errorOf(spec({ overrides: [{ match: { seed: 0 }, sett: { lr: 0.1 } }] }))).toContain('unknown key "sett" (did you mean "set"?)');
  });

  it('checks value types and values before anything runs', () => {
    expect(errorOf(spec({ base: { ...TINY_BASE, epochs: 'two' } }))).toContain('base.epochs: must be an integer, got "two"');
    expect(errorOf(spec({ axes: { eps: ['8/255', 'big'] } }))).toContain('axes.eps: must be a number or a fraction like 8/255, got "big"');
    expect(errorOf(spec({ eval: { ...TINY_EVAL, attack: 'pgdd' } }))).toContain('eval.attack: must be one of');
    expect(errorOf(spec({ axes: { epochs: [1, 0] } }))).toMatch(/run epochs=0.*--epochs must be a positive integer/);
    expect(errorOf(spec({ base: { ...TINY_BASE, arch: 'small-cn' } }))).toContain('unknown arch "small-cn" (did you mean "small-cnn"?)');
    expect(errorOf(spec({ base: { ...TINY_BASE, threads: 2 } }))).toContain('"threads" is set by the scheduler');
    expect(errorOf(spec({ axes: { seed: [] } }))).toContain('axes.seed: must not be an empty list');
  });

  it('reports every problem at once, on one line', () => {
    const msg = errorOf({ ...spec({ base: { ...TINY_BASE, epochz: 2 }, table: { metric: 'robust_ac' } }), axis: {} });
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(/^grid spec spec\.yaml: /);
    for (const part of ['"axis"', '"epochz"', '"robust_ac"']) expect(msg).toContain(part);
  });

  it('refuses a table whose cells would mix runs that differ in a key not aggregated over', () => {
    const msg = errorOf(spec({ axes: { lr: [0.1, 0.05], seed: [0, 1] }, table: { rows: ['seed'], columns: [] } }));
    expect(msg).toContain('differ in lr; add "lr" to table rows, columns or over');
  });

  it('needs an eval section for clean_acc/robust_acc tables', () => {
    expect(errorOf({ name: 't', base: TINY_BASE, table: { metric: 'robust_acc' } })).toContain('comes from the evaluation');
  });
});

describe('grid expansion', () => {
  const expand = (extra: object) => expandGrid(validateSpec(spec(extra), 't'));

  it('is the cartesian product of the axes, minus excludes, plus includes', () => {
    expect(expand({ axes: { eps: [0.05, 0.1], seed: [0, 1, 2] } }).runs).toHaveLength(6);
    expect(expand({ axes: { eps: [0.05, 0.1], seed: [0, 1, 2] }, exclude: [{ eps: 0.05, seed: [1, 2] }] }).runs).toHaveLength(4);
    const plan = expand({
      axes: { eps: [0.05, 0.1], seed: [0, 1, 2] },
      exclude: [{ eps: 0.05, seed: 2 }],
      include: [{ method: 'standard', eps: 0, seed: [0, 1, 2] }, { eps: 0.1, seed: 0 }],
      table: { rows: ['method', 'eps'] },
    });
    // 6 - 1 excluded + 3 included; the second include repeats run (eps 0.1, seed 0) and is merged.
    expect(plan.runs).toHaveLength(8);
    expect(plan.duplicates).toBe(1);
    expect(plan.runs.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(plan.runs.filter((r) => r.train.method === 'standard')).toHaveLength(3);
  });

  it('without axes a grid is its base run, or only its includes when it has some', () => {
    expect(expand({ axes: {} }).runs).toHaveLength(1);
    const plan = expand({ axes: {}, include: [{ seed: [3, 4] }], table: { rows: ['seed'] } });
    expect(plan.runs.map((r) => r.train.seed)).toEqual([3, 4]);
  });

  it('excludes match resolved values, so defaults and fractions match too', () => {
    const plan = expand({ axes: { eps: ['8/255', 0.1], method: ['pgd-at', 'trades'] }, exclude: [{ eps: 0.03137254901960784, method: 'pgd-at' }], table: { rows: ['eps', 'method'] } });
    expect(plan.runs.map((r) => `${r.label.eps} ${r.label.method}`)).toEqual(['8/255 trades', '0.1 pgd-at', '0.1 trades']);
  });

  it('applies overrides to the runs they match and re-derives dependent defaults', () => {
    const plan = expand({ axes: { eps: [0.05, 0.1] }, overrides: [{ match: { eps: 0.1 }, set: { alpha: 0.02, 'val-limit': 40 } }], table: { rows: ['eps'], over: ['alpha', 'val-limit'] } });
    expect(plan.runs.map((r) => [r.train.eps, r.train.alpha, r.train.valLimit])).toEqual([[0.05, 0.0125, 50], [0.1, 0.02, 40]]);
  });

  it('evaluates at the training eps unless eval.eps is given', () => {
    const plan = expandGrid(validateSpec({ base: TINY_BASE, axes: { eps: ['8/255'] }, eval: { steps: 2 } }, 't'));
    expect(plan.runs[0]!.eval!.eps).toBeCloseTo(8 / 255, 12);
  });

  it('exclude and overrides match list-valued settings (milestones) written as on the command line', () => {
    const base = { ...TINY_BASE, epochs: 8 };
    const plan = expandGrid(validateSpec({ base, axes: { milestones: ['4,6', '2,6', '3,5'] }, exclude: [{ milestones: '4,6' }], overrides: [{ match: { milestones: ['2,6'] }, set: { lr: 0.05 } }], eval: null, table: { rows: ['milestones'], metric: ['val_robust_acc'] } }, 't'));
    expect(plan.runs.map((r) => [r.train.milestones, r.train.lr])).toEqual([[[2, 6], 0.05], [[3, 5], 0.1]]);
    const numbers = expandGrid(validateSpec({ base, axes: { milestones: ['4,6', '2,6'] }, exclude: [{ milestones: [4, 6] }], eval: null, table: { rows: ['milestones'], metric: ['val_robust_acc'] } }, 't'));
    expect(numbers.runs.map((r) => r.train.milestones)).toEqual([[2, 6]]);
    // A single milestone written as a plain number, as in axes.
    const single = expandGrid(validateSpec({ base, axes: { milestones: [3, '2,3'] }, exclude: [{ milestones: 3 }], eval: null, table: { rows: ['milestones'], metric: ['val_robust_acc'] } }, 't'));
    expect(single.runs.map((r) => r.train.milestones)).toEqual([[2, 3]]);
  });

  it('eval.* keys in exclude or overrides need an eval: section, as in axes', () => {
    const spec = (extra: object) => ({ base: TINY_BASE, axes: { eps: [0.05, 0.1] }, eval: null, table: { rows: ['eps'], metric: ['val_robust_acc'] }, ...extra });
    expect(errorOf(spec({ exclude: [{ 'eval.steps': 5 }] }))).toContain('exclude: "eval.steps" needs an eval: section');
    expect(errorOf(spec({ overrides: [{ match: { eps: 0.1 }, set: { 'eval.steps': 5 } }] }))).toContain('overrides: "eval.steps" needs an eval: section');
  });

  it('gives each attack its own random-start default: none for FGSM, BIM and MI-FGSM, which reject one', () => {
    const plan = expandGrid(validateSpec({ base: TINY_BASE, axes: { 'eval.attack': ['pgd', 'bim', 'mifgsm', 'fgsm', 'apgd-ce'] }, eval: { steps: 2 } }, 't'));
    expect(plan.runs.map((r) => [r.eval!.attack, r.eval!.randomStart])).toEqual([['pgd', true], ['bim', false], ['mifgsm', false], ['fgsm', false], ['apgd-ce', true]]);
    const off = expandGrid(validateSpec({ base: TINY_BASE, eval: { steps: 2, 'random-start': false } }, 't'));
    expect(off.runs[0]!.eval!.randomStart).toBe(false);
  });

  it('gives each run an id from its resolved config: same config, same id, however it is written', () => {
    const a = expandGrid(validateSpec({ base: { ...TINY_BASE, 'val-limit': 50 }, axes: { eps: ['8/255'] }, eval: TINY_EVAL }, 'a'));
    const b = expandGrid(validateSpec({ eval: { limit: 50, steps: 2, eps: 0.1 }, axes: { eps: [8 / 255] }, base: { ...TINY_BASE, valLimit: 50, lr: 0.1, method: 'pgd-at' } }, 'b'));
    expect(a.runs[0]!.id).toMatch(/^[0-9a-f]{12}$/);
    expect(b.runs[0]!.id).toBe(a.runs[0]!.id);
    const c = expandGrid(validateSpec({ base: TINY_BASE, axes: { eps: ['8/255'] }, eval: { ...TINY_EVAL, steps: 3 } }, 'c'));
    expect(c.runs[0]!.id).not.toBe(a.runs[0]!.id);
  });
});

describe('advrun grid plan (CLI)', () => {
  beforeAll(ensureBuilt);

  it('prints the runs and their count without running anything', () => {
    const dir = tempDir('plan');
    const p = writeSpec(dir, spec({ axes: { eps: [0.05, 0.1], seed: [0, 1] }, exclude: [{ eps: 0.05, seed: 1 }] }));
    const r = runCli(['grid', 'plan', p]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^grid t: 3 runs\n/);
    expect(r.stdout).toContain('#2 ');
    expect(r.stdout).toContain('eps=0.1 seed=1');
    const j = JSON.parse(runCli(['grid', 'plan', p, '--json']).stdout);
    expect(j.count).toBe(3);
    expect(j.runs[0].train.width).toBe(4);
  });

  it('reads YAML specs (the example in test/grid)', () => {
    const r = runCli(['grid', 'plan', join(import.meta.dirname, 'example-grid.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('grid example: 5 runs');
    expect(r.stdout).toContain('eps=8/255 seed=1 method=pgd-at');
  });

  it('rejects an invalid spec with one line and creates nothing', () => {
    const dir = tempDir('bad');
    const p = join(dir, 'bad.yaml');
    writeFileSync(p, 'base:\n  arch: small-cnn\n  epochz: 1\naxes:\n  seed: [0, 1]\n');
    const out = join(dir, 'out');
    const r = runCli(['grid', 'run', p, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('unknown key "epochz" (did you mean "epochs"?)');
    expect(existsSync(out)).toBe(false);
  });
});
