// Export round trips: advrun -> .pt / .safetensors / .onnx -> advrun gives the same weights and
// logits; the ONNX model runs in onnxruntime-web; and, when Debian's python3-torch is installed,
// PyTorch loads the exported state_dicts with load_state_dict(strict=True) and gets the same logits
// (make_interop_fixtures.py --check-export).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { afterAll, describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { exportModel, torchStateDict } from '../../src/interop/export.js';
import { openModel, type OpenedModel } from '../../src/interop/load.js';
import { readForeignState } from '../../src/interop/state-dict.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { loadOnnxFile } from '../../src/onnx/io.js';
import { ModelRuntime } from '../../src/train/runtime.js';
import { debianTorch, fix, fmnistTest, maxAbsDiff, PREACT_ARCH, PREACT_SPEC, tempDir } from './helpers.js';

const graphsDir = tempDir('advrun-graphs-');
const out = tempDir('advrun-export-');
const runtimes: ModelRuntime[] = [];
afterAll(async () => { for (const r of runtimes) await r.release(); });

async function logitsOf(m: OpenedModel, x: Float32Array, n: number): Promise<Float32Array> {
  const rt = new ModelRuntime(m.artifacts, m.state);
  runtimes.push(rt);
  return rt.logits(x, n);
}

describe('export', () => {
  const N = 32;
  let source: OpenedModel;
  let want: Float32Array;
  let x: Float32Array;

  test('advrun checkpoint -> pt-state-dict / safetensors / onnx, re-imported: same weights, same logits', async () => {
    const ds = await fmnistTest(N);
    x = ds.images;
    // An advrun checkpoint holding the PyTorch fixture's weights.
    const fromTorch = await openModel(fix('preact18_w4.pt'), { arch: PREACT_ARCH, graphsDir });
    const weights = new Map([...fromTorch.state].filter(([k]) => !k.startsWith('momentum.')));
    saveCheckpoint(join(out, 'advrun.safetensors'), weights, { model: PREACT_SPEC, epoch: 8, step: 250, extra: { dataset: 'fashion-mnist-mini' } });
    source = await openModel(join(out, 'advrun.safetensors'), { graphsDir });
    expect(source.kind).toBe('advrun');
    want = await logitsOf(source, x, N);

    exportModel(source, 'pt-state-dict', join(out, 'model.pt'));
    exportModel(source, 'safetensors', join(out, 'model.safetensors'));
    exportModel(source, 'onnx', join(out, 'model.onnx'));

    // state_dict: PyTorch's names and order, num_batches_tracked = the checkpoint's step count.
    const sd = torchStateDict(source);
    expect(sd.slice(0, 6).map(([k]) => k)).toEqual(['conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.bn1.bias', 'layer1.0.bn1.running_mean', 'layer1.0.bn1.running_var', 'layer1.0.bn1.num_batches_tracked']);
    const pt = readForeignState(join(out, 'model.pt'));
    const st = readSafetensors(join(out, 'model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    for (const f of [pt.tensors, st.tensors]) {
      expect([...f.keys()]).toEqual(sd.map(([k]) => k));
      expect(f.get('bn.num_batches_tracked')).toMatchObject({ dtype: 'int64', dims: [] });
      expect(toNumbers(f.get('bn.num_batches_tracked')!)).toEqual([250]);
      for (const [k, t] of weights) expect(Buffer.compare(Buffer.from((f.get(k)!.data as Float32Array).buffer), Buffer.from((t.data as Float32Array).slice().buffer)), k).toBe(0);
    }
    for (const file of ['model.pt', 'model.safetensors']) {
      const back = await openModel(join(out, file), { arch: PREACT_ARCH, graphsDir });
      expect(maxAbsDiff(await logitsOf(back, x, N), want)).toBe(0);
    }
    const onnx = await openModel(join(out, 'model.onnx'), { graphsDir });
    expect(onnx.imported!.notes).toEqual([]);
    expect(maxAbsDiff(await logitsOf(onnx, x, N), want)).toBeLessThanOrEqual(1e-5);
  });

  test('the ONNX model is a plain inference model: dynamic batch, normalisation inside, eval-mode BN, runs in onnxruntime-web', async () => {
    const g = loadOnnxFile(join(out, 'model.onnx'));
    expect(g.opset).toBe(17);
    expect(g.inputs).toEqual(['input']);
    expect(g.shape('input')).toEqual(['N', 1, 28, 28]);
    expect(g.outputs).toEqual(['logits']);
    expect(g.shape('logits')).toEqual(['N', 10]);
    const ops = new Set(g.nodes.map((n) => n.op));
    expect([...ops].sort()).toEqual(['Add', 'BatchNormalization', 'Constant', 'Conv', 'Div', 'Flatten', 'Gemm', 'GlobalAveragePool', 'Identity', 'Relu', 'Sub']);
    expect(g.nodes.filter((n) => n.op === 'BatchNormalization')).toHaveLength(17); // one per BN layer
    expect(g.nodes.every((n) => !n.attrs.training_mode || n.attrs.training_mode.value === 0)).toBe(true);
    ortWeb.env.wasm.numThreads = 1;
    const s = await ortWeb.InferenceSession.create(readFileSync(join(out, 'model.onnx')), { executionProviders: ['wasm'] });
    const r = await s.run({ input: new ortWeb.Tensor('float32', x, [N, 1, 28, 28]) });
    expect(maxAbsDiff(r.logits!.data as Float32Array, want)).toBeLessThanOrEqual(1e-4);
    await s.release();
  });

  test('an imported ONNX model exports its (fine-tuned) weights under their ONNX names', async () => {
    const m = await openModel(fix('act_cnn.onnx'), { graphsDir });
    m.state.set('fc.bias', makeTensor('float32', [10], Array.from({ length: 10 }, (_, i) => i)));
    exportModel(m, 'safetensors', join(out, 'act.safetensors'));
    const st = readSafetensors(join(out, 'act.safetensors')).tensors;
    expect([...st.keys()]).toContain('bn2.num_batches_tracked');
    expect(toNumbers(st.get('fc.bias')!)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    exportModel(m, 'onnx', join(out, 'act.onnx'));
    const back = await openModel(join(out, 'act.onnx'), { graphsDir });
    const ds = await fmnistTest(8);
    expect(maxAbsDiff(await logitsOf(back, ds.images, 8), await logitsOf(m, ds.images, 8))).toBeLessThanOrEqual(1e-5);
  });

  const torch = debianTorch();
  test.skipIf(!torch.ok)(`PyTorch loads the exports (load_state_dict strict, torch.load weights_only) and gets the same logits${torch.ok ? '' : ` [skipped: ${torch.reason}]`}`, () => {
    writeSafetensors(join(out, 'expected.safetensors'), { images: makeTensor('float32', [N, 1, 28, 28], x), logits: makeTensor('float32', [N, 10], want) });
    const script = join(import.meta.dirname, '..', 'fixtures', 'interop', 'make_interop_fixtures.py');
    const stdout = execFileSync('/usr/bin/python3', [script, '--check-export', out], { encoding: 'utf8', timeout: 120_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(r).toMatchObject({ ok: true, pt_type: 'OrderedDict', num_batches_tracked: 250, onnx_input: ['input', 'N', 1, 28, 28], onnx_output: 'logits', onnx_opset: 17 });
    expect(r.pt_max_abs_diff).toBeLessThanOrEqual(1e-4);
    expect(r.safetensors_max_abs_diff).toBeLessThanOrEqual(1e-4);
  });
  if (!torch.ok) test.skip(`PyTorch check skipped: ${torch.reason}`, () => {});
});
