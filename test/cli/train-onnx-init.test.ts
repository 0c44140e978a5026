// Fine-tuning an imported ONNX model end to end, as a user runs it: `advrun train --init model.onnx`
// (preact18_w4: opset 13, BN partly folded into convs, a view reshape chain), then `advrun eval` and
// `advrun export --format onnx` of the resulting checkpoint, which records the ONNX file (path and
// SHA-256) its graph is rebuilt from.

import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { ROOT, runCli } from '../helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'advrun-onnx-init-'));
const FIX = join(ROOT, 'test', 'fixtures', 'interop');

describe('advrun train --init model.onnx', () => {
  test('fine-tunes preact18_w4.onnx; eval and export of its checkpoint rebuild the imported graph', () => {
    const dir = tmp();
    const env = { ADVRUN_GRAPHS_DIR: join(dir, 'graphs') };
    const onnx = join(dir, 'preact18_w4.onnx');
    copyFileSync(join(FIX, 'preact18_w4.onnx'), onnx);
    const out = join(dir, 'run');
    const t = runCli(['train', '--method', 'pgd-at', '--init', onnx, '--epochs', '1', '--limit', '64', '--val-limit', '20', '--steps', '1', '--out', out], env);
    expect(t.code, t.stderr).toBe(0);
    const ck = join(out, 'checkpoint.safetensors');
    expect(existsSync(ck)).toBe(true);
    const meta = loadCheckpoint(ck).meta;
    expect(meta.model.arch).toBe('onnx');
    expect(meta.extra?.onnx).toMatchObject({ file: onnx, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const e = runCli(['eval', '--model', ck, '--limit', '50', '--steps', '2', '--json'], env);
    expect(e.code, e.stderr).toBe(0);
    const r = JSON.parse(e.stdout);
    expect(r).toMatchObject({ n: 50, arch: 'onnx', dataset: 'fashion-mnist-mini' });
    expect(r.clean_acc).toBeGreaterThanOrEqual(r.robust_acc);

    // The exported inference model carries the fine-tuned weights: the same accuracies.
    const exported = join(dir, 'finetuned.onnx');
    const x = runCli(['export', '--model', ck, '--format', 'onnx', '--out', exported], env);
    expect(x.code, x.stderr).toBe(0);
    const e2 = runCli(['eval', '--model', exported, '--dataset', 'fashion-mnist-mini', '--limit', '50', '--steps', '2', '--json'], env);
    expect(e2.code, e2.stderr).toBe(0);
    expect(JSON.parse(e2.stdout)).toMatchObject({ clean_acc: r.clean_acc, robust_acc: r.robust_acc, n: 50 });

    // A different file at the recorded path is refused with a one-line error.
    copyFileSync(join(FIX, 'act_cnn.onnx'), onnx);
    const bad = runCli(['eval', '--model', ck, '--limit', '10', '--steps', '1', '--json'], env);
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/fine-tuned from .*preact18_w4\.onnx with SHA-256 .* restore the original ONNX file/);
  }, 120_000);
});
