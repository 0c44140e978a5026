// `advrun reproduce <paper> --preset smoke` produces its table end to end (runs through the grid runner).

import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ROOT, runCli } from '../helpers/cli.js';

function reproduceSmoke(paper: string) {
  const out = mkdtempSync(join(tmpdir(), `advrun-repro-${paper}-`));
  const r = runCli(['reproduce', paper, '--preset', 'smoke', '--out', out, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const md = readFileSync(join(out, 'table.md'), 'utf8');
  const csv = readFileSync(join(out, 'table.csv'), 'utf8').trim().split('\n');
  expect(md).toMatch(/Smoke preset: .*meaningless/);
  expect(md).toMatch(/## Verdict/);
  expect(JSON.parse(r.stdout).verdict).toMatch(/\*\*(yes|no|within noise)\*\*/);
  // A real run records its plan as --dry-run would: every run's configuration and the commit.
  const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8'));
  expect(plan.stages.length).toBeGreaterThan(0);
  expect(plan.stages.every((st: { runs: unknown[] }) => st.runs.length > 0)).toBe(true);
  expect(plan).toHaveProperty('advrun_version');
  return { md, csv, out };
}

describe('advrun reproduce --preset smoke', () => {
  test('sat: every activation and gradient-quality variant, paper numbers beside ours', () => {
    const { md, csv } = reproduceSmoke('sat');
    for (const row of ['relu', 'softplus', 'psoftplus(10)', 'silu', 'gelu-tanh', 'elu', 'smooth-relu', 'smooth backward: attacker', 'smooth backward: optimizer', 'smooth backward: both']) expect(md).toContain(row);
    // Paper numbers come from ../shared/papers/reference-numbers.json beside the checkout.
    if (existsSync(join(ROOT, '..', 'shared', 'papers', 'reference-numbers.json'))) expect(md).toMatch(/\| relu \| .* \| clean 68\.8, robust 33 \|/);
    expect(csv).toHaveLength(11);
  });

  test('twins: pre-trains a source model, fine-tunes it four ways', () => {
    const { md, csv, out } = reproduceSmoke('twins');
    for (const row of ['AT fine-tuning', 'TRADES fine-tuning', 'TWINS-AT', 'TWINS-TRADES']) expect(md).toContain(`| ${row} |`);
    expect(csv).toHaveLength(5);
    expect(existsSync(join(out, 'twins-pretrain'))).toBe(true);
  });

  test('rfn: surrogates (SGD, early-stopped, SAM, l-SAM chosen on validation) against independent targets, with sharpness', () => {
    const { md, csv, out } = reproduceSmoke('rfn');
    for (const row of ['sgd (fully trained)', 'sgd (early-stopped', 'SAM (rho 0.05)', 'l-SAM (rho selected on validation)']) expect(md).toContain(`| ${row}`);
    expect(csv).toHaveLength(5);
    expect(existsSync(join(out, 'rfn-transfer', 'val-seed0', 'transfer.csv'))).toBe(true);
    expect(existsSync(join(out, 'rfn-transfer', 'test-seed0', 'transfer.csv'))).toBe(true);
    // The early-stopping epoch is chosen on validation among the SGD snapshots, like l-SAM's radius.
    expect(existsSync(join(out, 'rfn-transfer', 'val-early-seed0', 'transfer.csv'))).toBe(true);
    expect(md).toMatch(/chosen early-stopping epoch per seed: [12]\b/);
  });
});
