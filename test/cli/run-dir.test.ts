// A run directory is never silently changed by a wrong command: --resume refuses any setting that differs
// from the recorded one (also an option left out), damaged run files are one-line errors, and a run that
// cannot start leaves nothing that blocks the corrected command.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runCli } from '../helpers/cli.js';

const tiny = ['--arch', 'small-cnn', '--width', '4', '--method', 'standard', '--epochs', '1', '--val-limit', '20', '--batch-size', '50'];
const oneLine = (stderr: string) => {
  expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
};

describe('run directories', () => {
  test('--resume with an option left out (or changed) is refused and config.json is left as it was', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'advrun-rundir-')), 'r');
    expect(runCli(['train', ...tiny, '--limit', '100', '--out', out]).code).toBe(0);
    const config = readFileSync(join(out, 'config.json'));
    const dropped = runCli(['train', ...tiny, '--out', out, '--resume']);
    expect(dropped.code).toBe(2);
    expect(dropped.stderr).toMatch(/--resume: limit was 100 in .*config\.json but is not set now; resume with the same settings \(--limit\)/);
    oneLine(dropped.stderr);
    const changed = runCli(['train', ...tiny, '--limit', '100', '--classes', '0-4', '--out', out, '--resume']);
    expect(changed.stderr).toMatch(/--resume: classes was not set in .* but is "0-4" now/);
    expect(readFileSync(join(out, 'config.json')).equals(config)).toBe(true);
  });

  test('damaged run files on --resume are one-line errors naming the file', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'advrun-rundir-')), 'r');
    expect(runCli(['train', ...tiny, '--limit', '100', '--out', out]).code).toBe(0);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    writeFileSync(join(out, 'metrics.jsonl'), `${metrics}{junk\n`);
    const junk = runCli(['train', ...tiny, '--limit', '100', '--out', out, '--resume']);
    expect(junk.stderr).toMatch(/metrics\.jsonl: line 2 is not a metrics record/);
    oneLine(junk.stderr);
    // Fewer records than the checkpoint's epochs: resuming would lose them.
    writeFileSync(join(out, 'metrics.jsonl'), '');
    const emptied = runCli(['train', ...tiny, '--limit', '100', '--out', out, '--resume']);
    expect(emptied.stderr).toMatch(/metrics\.jsonl has 0 epoch records but .*checkpoint\.safetensors is after epoch 1/);
    oneLine(emptied.stderr);
    writeFileSync(join(out, 'config.json'), '{bad');
    const bad = runCli(['train', ...tiny, '--limit', '100', '--out', out, '--resume']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/config\.json is damaged/);
    oneLine(bad.stderr);
  });

  test('a run that cannot start (no WebGPU adapter) leaves no run behind: the corrected command works', (ctx) => {
    const out = join(mkdtempSync(join(tmpdir(), 'advrun-rundir-')), 'r');
    const bad = runCli(['train', ...tiny, '--limit', '100', '--ep', 'webgpu', '--out', out]);
    if (bad.code === 0) ctx.skip('this machine has a WebGPU adapter');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--ep webgpu is not available/);
    oneLine(bad.stderr);
    expect(existsSync(out)).toBe(false); // not even the directory
    // --threads is checked before anything is read or made, on the command line and in a config file.
    expect(runCli(['train', ...tiny, '--threads', '-3', '--out', out]).stderr).toMatch(/--threads must be a whole number >= 0, got -3 \(see `advrun train --help`\)/);
    const cfg = join(mkdtempSync(join(tmpdir(), 'advrun-rundir-')), 'c.yaml');
    writeFileSync(cfg, 'threads: 1.5\n');
    expect(runCli(['train', ...tiny, '--config', cfg, '--out', out]).stderr).toMatch(/--threads must be a whole number >= 0, got 1\.5/);
    expect(existsSync(out)).toBe(false);
    expect(runCli(['train', ...tiny, '--limit', '100', '--out', out]).code).toBe(0);
  });
});
