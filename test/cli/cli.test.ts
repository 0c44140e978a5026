// The command line as a user meets it: help and version, one-line errors for bad input with nothing
// written, the graphs commands, and an execution provider that is not there.

import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { graphToModelProto, loadOnnxFile } from '../../src/onnx/io.js';
import { newGraph } from '../../src/ir/builder.js';
import { ROOT, runCli } from '../helpers/cli.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'advrun-cli-'));
const FIX = join(ROOT, 'test', 'fixtures', 'torch');

/** A user error: exit code 2, exactly one line on stderr, no stack trace. */
function expectUserError(r: { code: number; stderr: string }, pattern: RegExp) {
  expect(r.code, r.stderr).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
}

describe('advrun CLI', () => {
  test('--version and --help on every command', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(runCli(['--version']).stdout.trim()).toBe(pkg.version);
    for (const cmd of [[], ['train'], ['eval'], ['graphs', 'grad'], ['graphs', 'build'], ['bench']]) {
      const r = runCli([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/--help/);
    }
  });

  test('bad options and values are one-line errors and write nothing', () => {
    const out = join(tmp(), 'run');
    expectUserError(runCli(['train', '--out', out, '--bogus-option', '1']), /Unknown arguments?: bogus-option/);
    expectUserError(runCli(['train', '--out', out, '--arch', 'resnet9000']), /unknown architecture "resnet9000"; available: .*small-cnn/);
    expectUserError(runCli(['train', '--out', out, '--activation', 'swishy']), /unknown activation "swishy"/);
    expectUserError(runCli(['train', '--out', out, '--eps', '2']), /--eps 2 is outside the data range \[0, 1\]/);
    expectUserError(runCli(['train', '--out', out, '--eps', 'abc']), /--eps "abc" is not a number/);
    expectUserError(runCli(['train', '--out', out, '--dataset', 'imagenet']), /unknown dataset ["']imagenet["']/i);
    const corrupt = tmp();
    writeFileSync(join(corrupt, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 9]));
    writeFileSync(join(corrupt, 'train-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 1, 0, 0, 0, 9]));
    expectUserError(runCli(['train', '--out', out, '--dataset', 'fashion-mnist', '--data-dir', corrupt]), /train-images-idx3-ubyte/);
    const cfg = join(tmp(), 'c.yaml');
    writeFileSync(cfg, 'epochz: 3\n');
    expectUserError(runCli(['train', '--out', out, '--config', cfg]), /unknown key "epochz" \(did you mean "epochs"\?\)/);
    expect(existsSync(out)).toBe(false);
    expectUserError(runCli(['eval', '--model', 'm.safetensors', '--limit', '0']), /--limit must be a whole number >= 1, got 0 \(see `advrun eval --help`\)/);
    expectUserError(runCli(['eval', '--model', 'm.safetensors', '--batch-size', 'abc']), /--batch-size must be a whole number >= 1, got NaN/);
    expectUserError(runCli(['eval', '--model', 'm.safetensors', '--threads', '-3']), /--threads must be a whole number >= 0, got -3/);
    expectUserError(runCli(['frobnicate']), /Unknown argument: frobnicate \(see `advrun --help`\)/);
    writeFileSync(cfg, 'out: somewhere\n');
    expectUserError(runCli(['train', '--out', out, '--config', cfg]), /"out" is given on the command line \(--out\), not in a config file/);
    // An --out under a file: one line naming the path, for every command that writes.
    expectUserError(runCli(['train', '--out', join(cfg, 'run'), '--epochs', '1', '--limit', '64', '--width', '4']), /cannot write .*c\.yaml\/run: a part of the path is a file/);
  });

  test('export and graphs grad never overwrite their input, and an existing file only with --force', () => {
    const dir = tmp();
    const ck = join(dir, 'm.safetensors');
    const exported = join(dir, 'm.onnx');
    expect(runCli(['train', '--out', join(dir, 'run'), '--epochs', '1', '--limit', '64', '--width', '4', '--val-limit', '20']).code).toBe(0);
    writeFileSync(ck, readFileSync(join(dir, 'run', 'checkpoint.safetensors')));
    const before = readFileSync(ck);
    expectUserError(runCli(['export', '--model', ck, '--format', 'safetensors', '--out', ck, '--force']), /--out .*m\.safetensors is the input/);
    expect(readFileSync(ck).equals(before)).toBe(true);
    expect(runCli(['export', '--model', ck, '--format', 'onnx', '--out', exported]).code).toBe(0);
    expectUserError(runCli(['export', '--model', ck, '--format', 'onnx', '--out', exported]), /m\.onnx already exists; pass --force/);
    expect(runCli(['export', '--model', ck, '--format', 'onnx', '--out', exported, '--force']).code).toBe(0);
    expectUserError(runCli(['graphs', 'grad', '--model', exported, '--out', exported]), /is the input/);
    // A directory (existing, or named with a trailing slash) is no output file; nothing is left behind.
    expectUserError(runCli(['export', '--model', ck, '--format', 'onnx', '--out', dir, '--force']), /--out .* is a directory; name the file to write/);
    expectUserError(runCli(['export', '--model', ck, '--format', 'onnx', '--out', join(dir, 'sub') + '/']), /is a directory/);
    expect(readdirSync(dirname(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // A float16 classifier: graphs grad builds a float32 loss, so it says so instead of writing an invalid graph.
    const { graph: g16, b: b16 } = newGraph('f16', 17);
    const x16 = g16.addInput('x', 'float16', ['N', 4]);
    g16.addInitializer('W', makeTensor('float16', [4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]));
    g16.markOutput(b16.matmul(x16, 'W'));
    writeFileSync(join(dir, 'f16.onnx'), graphToModelProto(g16));
    expectUserError(runCli(['graphs', 'grad', '--model', join(dir, 'f16.onnx'), '--out', join(dir, 'g16.onnx')]), /its logits are float16; graphs grad needs a float32 classifier/);
    // A checkpoint cut short inside its header is named as such (not "does not record its dataset").
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, before.subarray(0, 100));
    expectUserError(runCli(['eval', '--model', cut]), /cut\.safetensors is a truncated safetensors file/);
  });

  test('an unavailable execution provider is an error naming the fix, never a silent CPU run', () => {
    const r = runCli(['train', '--out', join(tmp(), 'r'), '--ep', 'cuda', '--epochs', '1', '--limit', '64', '--width', '4']);
    if (r.code === 0) return; // a machine with CUDA: it ran on CUDA
    expectUserError(r, /--ep cuda is not available .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    // WebGPU without an adapter: still one line (the native adapter search prints nothing of advrun's stderr).
    const w = runCli(['train', '--out', join(tmp(), 'w'), '--ep', 'webgpu', '--epochs', '1', '--limit', '64', '--width', '4']);
    if (w.code !== 0) expectUserError(w, /--ep webgpu is not available/);
  });

  test('graphs grad writes a standalone model whose input gradient matches PyTorch', async () => {
    const out = join(tmp(), 'g.onnx');
    const r = runCli(['graphs', 'grad', '--model', join(FIX, 'small_cnn.onnx'), '--wrt', 'input', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const g = loadOnnxFile(out);
    expect(g.inputs).toEqual(['input', 'labels']);
    expect(g.outputs).toEqual(['logits', 'loss', 'grad_input']);
    const fx = readSafetensors(join(FIX, 'small_cnn_grads.safetensors')).tensors;
    const s = await CompiledGraph.create(readFileSync(out));
    const res = await s.runTensors({ input: fx.get('x')!, labels: fx.get('labels')! });
    expect(Math.abs(Number(res.loss!.data[0]) - Number(fx.get('loss_eval')!.data[0]))).toBeLessThan(1e-5);
    const want = toNumbers(fx.get('grad_input_eval')!), got = toNumbers(res.grad_input!);
    const scale = Math.max(...want.map(Math.abs));
    expect(Math.max(...want.map((w, i) => Math.abs(w - got[i]!))) / scale).toBeLessThan(1e-4);
    await s.release();

    const outP = join(tmp(), 'gp.onnx');
    expect(runCli(['graphs', 'grad', '--model', join(FIX, 'small_cnn.onnx'), '--wrt', 'params', '--out', outP]).code).toBe(0);
    expect(loadOnnxFile(outP).outputs).toContain('grad_conv1.weight');
    expectUserError(runCli(['graphs', 'grad', '--model', join(FIX, 'README.md'), '--out', join(tmp(), 'fresh.onnx')]), /README\.md is not a valid ONNX model/);
  });

  test('graphs build writes the artifacts once and reuses them while nothing changes', () => {
    const dir = tmp();
    const args = ['graphs', 'build', '--arch', 'small-cnn', '--width', '4', '--image-size', '12', '--out', dir];
    const first = runCli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^built /);
    expect(runCli(args).stdout).toMatch(/^cached /);
    const changed = runCli([...args, '--nesterov']);
    expect(changed.stdout).toMatch(/^built /);
    const key = first.stdout.split(/\s+/)[1]!.replace(/:$/, '');
    const manifest = JSON.parse(readFileSync(join(key, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.graphs).sort()).toEqual(['attack_ce', 'attack_dlr', 'attack_dlr_targeted', 'attack_kl', 'eval', 'train_step']);
    expect(manifest.graphs.attack_ce.outputs.map((o: { name: string }) => o.name)).toEqual(['logits', 'loss', 'grad_input']);
  });

  test('eval names the first mismatching tensor of a checkpoint made for another architecture', () => {
    const dir = tmp();
    const ck = join(dir, 'ck.safetensors');
    // A small-cnn width-4 state whose metadata claims width 8.
    const t = makeTensor('float32', [4, 1, 3, 3]);
    writeSafetensors(ck, { 'conv1.weight': t }, {
      format: 'advrun-checkpoint/1', epoch: '1', step: '1', extra: JSON.stringify({ dataset: 'fashion-mnist-mini' }),
      model: JSON.stringify({ arch: 'small-cnn', width: 8, numClasses: 10, inChannels: 1, imageSize: 28, activation: { kind: 'relu' }, mean: [0.286], std: [0.353] }),
    });
    expectUserError(runCli(['eval', '--model', ck, '--limit', '10']), /does not fit small-cnn: tensor "conv1.weight" has shape \[4,1,3,3\] but the model needs \[8,1,3,3\]/);
    expectUserError(runCli(['eval', '--model', join(dir, 'missing.safetensors')]), /no such file/);
  });
});
