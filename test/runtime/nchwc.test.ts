// The CPU lowering of run-time-weight convolutions to ONNX Runtime's NCHWc kernels (src/runtime/nchwc.ts):
// which convolutions it takes, that each lowered one computes what the standard Conv computes (forward,
// strided, 1x1, first-layer NCHW input, bias), and that a whole train step and attack gradient agree with
// the unlowered graphs to float32 rounding.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import { newGraph } from '../../src/ir/builder.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { graphToModelProto, modelProtoToGraph } from '../../src/onnx/io.js';
import { lowerConvsToNchwc, NCHWC_DOMAIN, nchwcBlockSize } from '../../src/runtime/nchwc.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 1e-6, diff = 0;
  for (let i = 0; i < b.length; i++) { scale = Math.max(scale, Math.abs(b[i]!)); diff = Math.max(diff, Math.abs(a[i]! - b[i]!)); }
  return diff / scale;
}

const lowered = (g: ReturnType<typeof newGraph>['graph']) => g.nodes.filter((n) => n.domain === NCHWC_DOMAIN && n.op === 'Conv').length;

describe('NCHWc lowering', () => {
  test('the probe finds the block size of the CPU provider on x86-64 (8 with AVX2, 16 with AVX-512)', async () => {
    const block = await nchwcBlockSize();
    if (process.arch === 'x64') expect([8, 16]).toContain(block);
    else expect(block).toBeGreaterThanOrEqual(1);
  });

  test('lowers run-time-weight 2-D convolutions the kernel takes, and each agrees with the standard Conv', async () => {
    const block = await nchwcBlockSize();
    if (block <= 1) return; // no NCHWc kernels on this CPU: nothing is lowered (see the first test)
    const C = 2 * block, M = 2 * block;
    // [input channels, output channels, size, kernel, stride, pad, bias]
    const cases: [number, number, number, number, number, number, boolean][] = [
      [C, M, 9, 3, 1, 1, true], [C, M, 9, 3, 2, 1, false], [C, 2 * M, 8, 1, 2, 0, false], [1, M, 7, 3, 1, 1, false], [3, M, 6, 3, 1, 0, true],
    ];
    const rng = new Rng(3);
    for (const [c, m, h, k, s, p, withBias] of cases) {
      const { graph, b } = newGraph('conv');
      const x = graph.addInput('x', 'float32', [4, c, h, h]);
      const w = graph.addInput('w', 'float32', [m, c, k, k]);
      const bias = withBias ? [graph.addInput('bias', 'float32', [m])] : [];
      // A second Conv on the same input with a constant weight: left to ONNX Runtime's own pre-packing.
      const wConst = b.constant(makeTensor('float32', [m, c, 1, 1], rng.fillUniform(new Float32Array(m * c), -1, 1)));
      const attrs = { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] };
      graph.markOutput(b.op('Conv', [x, w, ...bias], attrs), b.op('Conv', [x, wConst]));
      const low = lowerConvsToNchwc(graph, block);
      expect(lowered(low)).toBe(1);
      const feeds = {
        x: new ort.Tensor('float32', rng.fillUniform(new Float32Array(4 * c * h * h), -1, 1), [4, c, h, h]),
        w: new ort.Tensor('float32', rng.fillUniform(new Float32Array(m * c * k * k), -1, 1), [m, c, k, k]),
        ...(withBias ? { bias: new ort.Tensor('float32', rng.fillUniform(new Float32Array(m), -1, 1), [m]) } : {}),
      };
      const run = async (bytes: Uint8Array) => {
        const s = await ort.InferenceSession.create(bytes);
        const out = await s.run(feeds);
        await s.release();
        return graph.outputs.map((o) => out[o]!.data as Float32Array);
      };
      const [ref, viaNchwc] = [await run(graphToModelProto(graph)), await run(graphToModelProto(low))];
      ref.forEach((r, i) => expect(maxRelDiff(viaNchwc[i]!, r), `case ${[c, m, h, k, s, p]} output ${i}`).toBeLessThan(1e-5));
    }
  });

  test('leaves alone what the kernel cannot take: grouped, unblocked channels, constant weights, float64', async () => {
    const block = await nchwcBlockSize();
    const { graph, b } = newGraph('skip');
    const x = graph.addInput('x', 'float32', [2, 2 * block, 5, 5]);
    const grouped = graph.addInput('wg', 'float32', [2 * block, 1, 3, 3]);
    const odd = graph.addInput('wo', 'float32', [block + 4, 2 * block, 3, 3]);
    // Output channels blocked, input channels not: the input side's check alone must refuse it.
    const xOdd = graph.addInput('xo', 'float32', [2, block + 4, 5, 5]);
    const oddIn = graph.addInput('wi', 'float32', [block, block + 4, 3, 3]);
    graph.markOutput(b.op('Conv', [x, grouped], { group: 2 * block }), b.op('Conv', [x, odd]), b.op('Conv', [xOdd, oddIn]),
      b.op('Conv', [x, b.constant(makeTensor('float32', [block, 2 * block, 1, 1]))]));
    expect(lowerConvsToNchwc(graph, Math.max(block, 8))).toBe(graph);
    expect(lowerConvsToNchwc(graph, 1)).toBe(graph);
    const { graph: g64, b: b64 } = newGraph('f64');
    const x64 = g64.addInput('x', 'float64', [2, 16, 5, 5]);
    g64.markOutput(b64.op('Conv', [x64, g64.addInput('w', 'float64', [16, 16, 3, 3])]));
    expect(lowerConvsToNchwc(g64, 16)).toBe(g64);
  });

  test('a PreActResNet-18 train step and attack gradient agree with the unlowered graphs', async () => {
    const block = await nchwcBlockSize();
    const model = { arch: 'preact-resnet18', width: 16, inChannels: 1, imageSize: 8, numClasses: 10, activation: { kind: 'relu' as const }, mean: [0.5], std: [0.25] };
    const art = ensureArtifacts({ model, loss: { kind: 'ce' as const }, optimizer: { momentum: 0.9, weightDecay: 5e-4, nesterov: false } }, mkdtempSync(join(tmpdir(), 'advrun-nchwc-')));
    const trainGraph = modelProtoToGraph(art.bytes.train_step!, 'train_step');
    // Forward, input-gradient and weight-packing paths are all in there: most of the 3x3 convolutions.
    if (block > 1) expect(lowered(lowerConvsToNchwc(trainGraph, block))).toBeGreaterThan(20);
    const runtime = (nchwc: boolean) => new ModelRuntime(art, initialState(art.manifest, 0), { threads: 1, stateBinding: 'inputs', nchwc });
    const [fast, plain] = [runtime(true), runtime(false)];
    const rng = new Rng(2);
    const n = 8;
    const x = rng.fillUniform(new Float32Array(n * 64), 0, 1);
    const y = Int32Array.from({ length: n }, () => rng.int(10));
    for (let i = 0; i < 2; i++) {
      await fast.trainStep(x, y, n, 0.05);
      await plain.trainStep(x, y, n, 0.05);
    }
    const [a, b] = [fast.getState(), plain.getState()];
    for (const [name, t] of b) expect(maxRelDiff(a.get(name)!.data as Float32Array, t.data as Float32Array), name).toBeLessThan(1e-4);
    const loss = { kind: 'ce' as const, labels: y };
    expect(maxRelDiff((await fast.lossGrad(x, n, loss)).grad, (await plain.lossGrad(x, n, loss)).grad)).toBeLessThan(1e-4);
    await fast.release();
    await plain.release();
  }, 120_000);

  test('CompiledGraph lowers on the CPU unless told not to', async () => {
    const block = await nchwcBlockSize();
    if (block <= 1) return;
    const { graph, b } = newGraph('opt');
    const x = graph.addInput('x', 'float32', [1, block, 4, 4]);
    const w = graph.addInput('w', 'float32', [block, block, 3, 3]);
    graph.markOutput(b.op('Conv', [x, w], { pads: [1, 1, 1, 1] }));
    for (const nchwc of [true, false]) {
      const dir = mkdtempSync(join(tmpdir(), 'advrun-nchwc-prof-'));
      const s = await CompiledGraph.create(graph, { nchwc, profileDir: dir, threads: 1 });
      await s.runTensors({ x: makeTensor('float32', [1, block, 4, 4]), w: makeTensor('float32', [block, block, 3, 3]) });
      const trace = JSON.parse((await import('node:fs')).readFileSync(s.endProfiling(dir), 'utf8')) as { name: string }[];
      await s.release();
      expect(trace.some((e) => e.name.endsWith('/nchwc_kernel_time'))).toBe(nchwc);
    }
  });
});
