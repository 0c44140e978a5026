// The interop commands as a user runs them (the built dist/ program): `compare --dump-data`,
// `compare` against a PyTorch reference, `eval` on .pt / .onnx, `export`, and one-line errors
// (a malicious pickle, a state_dict without --arch).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { encodeTorchStateDict } from '../../src/interop/torch-file.js';
import { dataSha256, readReference } from '../../src/interop/compare.js';
import { writeZip } from '../../src/interop/zip.js';
import { toNumbers } from '../../src/ir/tensor.js';
import { loadOnnxFile } from '../../src/onnx/io.js';
import { ROOT, runCli } from '../helpers/cli.js';
import { debianTorch, fix, fmnistTest, tempDir } from './helpers.js';

const env = { ADVRUN_GRAPHS_DIR: tempDir('advrun-graphs-') };
const run = (args: string[]) => runCli(args, env);

function expectUserError(r: { code: number; stderr: string }, pattern: RegExp) {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe('interop commands', () => {
  const dir = tempDir();

  test('compare --dump-data writes the slice torch_eval.py reads', async () => {
    const out = join(dir, 'slice.safetensors');
    const r = run(['compare', '--dump-data', out, '--dataset', 'fashion-mnist-mini', '--limit', '20', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    const ds = await fmnistTest(20);
    expect(info).toMatchObject({ n: 20, sha256: dataSha256(ds.images, ds.labels), source: 'fashion-mnist-mini test' });
    const f = readSafetensors(out);
    expect(f.tensors.get('images')!.dims).toEqual([20, 1, 28, 28]);
    expect(f.tensors.get('labels')).toMatchObject({ dtype: 'int64', dims: [20] });
    expect(toNumbers(f.tensors.get('labels')!)).toEqual([...ds.labels]);
  });

  test('compare: the GELU/SiLU/Softplus/ELU CNN (ONNX) against its PyTorch reference passes', () => {
    const r = run(['compare', '--model', fix('act_cnn.onnx'), '--reference', fix('act_cnn_ref.json'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout);
    const ref = readReference(fix('act_cnn_ref.json'));
    expect(c.pass).toBe(true);
    expect(c.kind).toBe('onnx');
    expect(c.advrun.n).toBe(500);
    expect(Math.abs(c.advrun.clean_acc - ref.clean_acc)).toBeLessThanOrEqual(0.005);
    expect(Math.abs(c.advrun.robust_acc - ref.robust_acc!)).toBeLessThanOrEqual(0.005);
    expect(c.diff.logits_max_abs).toBeLessThanOrEqual(1e-4);
    expect(c.advrun.attack).toMatchObject({ attack: 'pgd', eps: 0.03, steps: 10, randomStart: false });
    // Different data is a failure (exit code 1), not a silent comparison.
    const bad = run(['compare', '--model', fix('act_cnn.onnx'), '--reference', fix('act_cnn_ref.json'), '--limit', '10', '--attack', 'none']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/FAIL {2}data: different/);
  });

  test('eval accepts .pt (with --arch), .safetensors and .onnx', async () => {
    const ref = readReference(fix('preact18_w4_ref.json'));
    const base = ['--dataset', 'fashion-mnist-mini', '--limit', '24', '--attack', 'pgd', '--eps', '0.03', '--no-random-start', '--json'];
    const pt = run(['eval', '--model', fix('preact18_w4.pt'), '--arch', 'preact-resnet18', '--width', '4', ...base]);
    expect(pt.code, pt.stderr).toBe(0);
    const r = JSON.parse(pt.stdout);
    const count = (s: string) => [...s.slice(0, 24)].filter((c) => c === '1').length / 24;
    expect(r.clean_acc).toBe(count(ref.per_example!.clean));
    expect(r.robust_acc).toBe(count(ref.per_example!.robust!));
    expect(pt.stderr).toMatch(/prefix "module\." stripped/);
    const onnx = run(['eval', '--model', fix('preact18_w4.onnx'), ...base]);
    expect(onnx.code, onnx.stderr).toBe(0);
    expect(JSON.parse(onnx.stdout)).toMatchObject({ clean_acc: r.clean_acc, robust_acc: r.robust_acc, arch: 'onnx' });
    const st = run(['eval', '--model', fix('preact18_w4.safetensors'), '--arch', 'preact-resnet18', '--width', '4', '--dataset', 'fashion-mnist-mini', '--limit', '24', '--attack', 'none', '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ clean_acc: r.clean_acc, robust_acc: null, arch: 'preact-resnet18' });
    expectUserError(run(['eval', '--model', fix('preact18_w4.safetensors'), '--dataset', 'fashion-mnist-mini', '--limit', '8']), /^advrun: .*preact18_w4\.safetensors is a PyTorch state_dict, which does not record its architecture: pass --arch/);
  });

  const torch = debianTorch();
  test.skipIf(!torch.ok)(`the documented workflow: compare --dump-data, bench/torch_eval.py, compare${torch.ok ? '' : ` [skipped: ${torch.reason}]`}`, () => {
    const slice = join(dir, 'slice.safetensors'), ref = join(dir, 'wf_ref.json'); // written by the --dump-data test
    execFileSync('/usr/bin/python3', [join(ROOT, 'bench', 'torch_eval.py'), '--checkpoint', fix('preact18_w4.pt'), '--arch', 'preact-resnet18', '--width', '4',
      '--data', slice, '--attack', 'bim', '--eps', '8/255', '--steps', '5', '--out', ref], { stdio: 'pipe', timeout: 120_000 });
    const r = run(['compare', '--model', fix('preact18_w4.pt'), '--arch', 'preact-resnet18', '--width', '4', '--data', slice, '--reference', ref, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const c = JSON.parse(r.stdout);
    expect(c.advrun.attack).toMatchObject({ attack: 'bim', steps: 5, eps: 8 / 255 });
    expect(c.diff).toMatchObject({ clean_disagree: 0, robust_disagree: 0 });
  });
  if (!torch.ok) test.skip(`torch_eval.py workflow skipped: ${torch.reason}`, () => {});

  test('a malicious pickle is refused in one line and nothing runs', () => {
    const marker = join(dir, 'pwned');
    const cmd = Buffer.from(`touch ${marker}`, 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(cmd.length);
    const pkl = Buffer.concat([Buffer.from('\x80\x02cposix\nsystem\nX', 'latin1'), len, cmd, Buffer.from('\x85R.', 'latin1')]);
    const evil = join(dir, 'evil.pt');
    writeFileSync(evil, Buffer.concat(writeZip([{ name: 'evil/data.pkl', data: pkl }, { name: 'evil/version', data: Buffer.from('3\n') }])));
    expectUserError(run(['eval', '--model', evil, '--arch', 'small-cnn', '--dataset', 'fashion-mnist-mini', '--limit', '8']), /refusing to load global "posix\.system"/);
    expect(existsSync(marker)).toBe(false);
    expect(encodeTorchStateDict([]).length).toBeGreaterThan(0);
  });

  test('export: torch.save state_dict and ONNX from a PyTorch checkpoint', () => {
    // (safetensors export: export.test.ts, in process)
    for (const [format, file] of [['pt-state-dict', 'm.pt'], ['onnx', 'm.onnx']]) {
      const r = run(['export', '--model', fix('preact18_w4.pt'), '--arch', 'preact-resnet18', '--width', '4', '--format', format!, '--out', join(dir, file!)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`wrote .*${file!.replace('.', '\\.')} \\(${format}, \\d+ tensors\\) from pytorch model`));
    }
    expect(readFileSync(join(dir, 'm.pt')).subarray(0, 2).toString('latin1')).toBe('PK');
    expect(loadOnnxFile(join(dir, 'm.onnx')).shape('input')).toEqual(['N', 1, 28, 28]); // re-imports: export.test.ts
    const bad = run(['export', '--model', fix('preact18_w4.pt'), '--format', 'keras', '--out', join(dir, 'x')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Choices: "onnx", "safetensors", "pt-state-dict"/);
  });
});
