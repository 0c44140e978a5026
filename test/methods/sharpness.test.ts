// Sharpness (RFN): exact Hessian-vector products (double backward) against finite differences and
// against the analytic Hessian of softmax regression; power iteration against the top eigenvalue of
// the explicit Hessian (Jacobi eigenvalues); Hutchinson's trace against the exact trace within the
// estimator's own standard deviation; the missing-VJP error; the CLI once.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { loadDataset } from '../../src/data/index.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import {
  dot, generateSharpnessHvp, HessianOracle, hutchinsonTrace, measureSharpness, norm2, powerIteration, type FixedSubset, type HvpMode,
} from '../../src/methods/sharpness.js';
import { buildModel, parseActivation, type BuiltModel, type ModelSpec } from '../../src/models/index.js';
import { ModelBuilder } from '../../src/models/layers.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState } from '../../src/train/runtime.js';
import { Rng } from '../../src/util/random.js';
import { runCli } from '../helpers/cli.js';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

function finish(m: ModelBuilder, input: string, logits: string): BuiltModel {
  const g = m.graph;
  g.addNode('Identity', [logits], {}, { outputs: ['logits'] });
  g.outputs = ['logits'];
  return { graph: g, input, logits: 'logits', params: m.params, buffers: m.buffers, bufferUpdates: {} };
}

/** Softmax regression z = W x + b on [1, 2, 2] images, K = 3: 15 parameters, Hessian computable by hand. */
const D = 4, K = 3;
function linearModel(): BuiltModel {
  const m = new ModelBuilder('linear', 'eval', 7, parseActivation('relu'));
  const input = m.graph.addInput('input', 'float32', ['N', 1, 2, 2]);
  return finish(m, input, m.linear(m.b.flatten(input), 'fc', D, K));
}

/** A tiny smooth CNN: conv - BN (eval, non-trivial running statistics) - softplus - GAP - linear. */
function smoothCnn(): BuiltModel {
  const m = new ModelBuilder('smooth-cnn', 'eval', 11, parseActivation('softplus'));
  const input = m.graph.addInput('input', 'float32', ['N', 1, 6, 6]);
  let h = m.act(m.batchNorm(m.conv(input, 'conv1', 1, 3, 3, { pad: 1 }), 'bn1', 3), 'act1');
  h = m.b.flatten(m.b.op('GlobalAveragePool', [h]));
  return finish(m, input, m.linear(h, 'fc', 3, 4));
}

function stateOf(model: BuiltModel): Map<string, Tensor> {
  return new Map([...model.params.map((p) => p.name), ...model.buffers].map((k) => [k, model.graph.initializers.get(k)!]));
}

function randomData(n: number, shape: number[], k: number, seed: number): FixedSubset {
  const rng = new Rng(seed);
  const per = shape.reduce((a, c) => a * c, 1);
  return { images: Float32Array.from({ length: n * per }, () => rng.next()), labels: Int32Array.from({ length: n }, () => rng.int(k)), n, shape };
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>) => norm2(Array.from(a, (x, i) => x - b[i]!)) / norm2(b);

async function oracle(make: () => BuiltModel, state: Map<string, Tensor>, data: FixedSubset, hvp: HvpMode, batchSize = 4) {
  return HessianOracle.create(make, state, data, { hvp, batchSize });
}

/** The full Hessian from HVPs with unit vectors (symmetrised). */
async function fullHessian(o: HessianOracle): Promise<number[][]> {
  const p = o.layout.size;
  const cols: Float64Array[] = [];
  for (let j = 0; j < p; j++) {
    const e = new Float64Array(p);
    e[j] = 1;
    cols.push(await o.hvp(e));
  }
  return Array.from({ length: p }, (_, i) => Array.from({ length: p }, (_, j) => (cols[j]![i]! + cols[i]![j]!) / 2));
}

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations. */
function jacobiEigenvalues(m: number[][]): number[] {
  const n = m.length;
  const a = m.map((r) => [...r]);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i]![j]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p]![q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q]![q]! - a[p]![p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k]![p]!, akq = a[k]![q]!;
          a[k]![p] = c * akp - s * akq;
          a[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p]![k]!, aqk = a[q]![k]!;
          a[p]![k] = c * apk - s * aqk;
          a[q]![k] = s * apk + c * aqk;
        }
      }
    }
  }
  return a.map((r, i) => r[i]!).sort((x, y) => y - x);
}

/** Analytic Hessian of the mean CE of softmax regression: mean over examples of Jᵀ (diag p − p pᵀ) J. */
function softmaxRegressionHessian(w: Float32Array, bias: Float32Array, data: FixedSubset): number[][] {
  const p = K * D + K;
  const h = Array.from({ length: p }, () => new Array<number>(p).fill(0));
  for (let e = 0; e < data.n; e++) {
    const x = data.images.subarray(e * D, (e + 1) * D);
    const z = Array.from({ length: K }, (_, k) => bias[k]! + Array.from(x).reduce((s, xd, d) => s + w[k * D + d]! * xd, 0));
    const mx = Math.max(...z);
    const ez = z.map((v) => Math.exp(v - mx));
    const sum = ez.reduce((s, v) => s + v, 0);
    const pr = ez.map((v) => v / sum);
    // dz_k/dθ: W[k][d] -> x_d (index k*D + d); b_k -> 1 (index K*D + k)
    const jac = (k: number) => { const r = new Array<number>(p).fill(0); for (let d = 0; d < D; d++) r[k * D + d] = x[d]!; r[K * D + k] = 1; return r; };
    for (let k = 0; k < K; k++) {
      for (let k2 = 0; k2 < K; k2++) {
        const a = (k === k2 ? pr[k]! : 0) - pr[k]! * pr[k2]!;
        const j1 = jac(k), j2 = jac(k2);
        for (let i = 0; i < p; i++) if (j1[i]) for (let j = 0; j < p; j++) if (j2[j]) h[i]![j]! += (a * j1[i]! * j2[j]!) / data.n;
      }
    }
  }
  return h;
}

describe('exact Hessian-vector products', () => {
  test('the double-backward graph equals finite differences of gradients on a smooth conv-BN-softplus model (rel err < 1e-2)', async () => {
    const base = smoothCnn();
    const state = stateOf(base);
    const rng = new Rng(5);
    state.set('bn1.running_mean', makeTensor('float32', [3], [0.1, -0.2, 0.05]));
    state.set('bn1.running_var', makeTensor('float32', [3], [0.5, 1.7, 0.9]));
    const data = randomData(10, [1, 6, 6], 4, 3);
    const ex = await oracle(smoothCnn, state, data, 'exact');
    const fd = await oracle(smoothCnn, state, data, 'fd');
    for (let trial = 0; trial < 2; trial++) {
      const v = Float64Array.from({ length: ex.layout.size }, () => rng.normal());
      const a = await ex.hvp(v), b = await fd.hvp(v);
      expect(norm2(a)).toBeGreaterThan(1e-3);
      expect(relErr(b, a)).toBeLessThan(1e-2);
      // teeth: H·v is not a multiple of v (the comparison would not catch a scaled identity)
      expect(Math.abs(dot(a, v)) / (norm2(a) * norm2(v))).toBeLessThan(0.99);
    }
    await ex.release(); await fd.release();
  });

  test('small-cnn (ReLU, max-pool: the default architecture) builds and runs the exact HVP; it is symmetric and matches fd along smooth directions', async () => {
    const spec: ModelSpec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };
    const make = () => buildModel(spec, { bnMode: 'eval', seed: 3 });
    const state = stateOf(make());
    const ds = await loadDataset('fashion-mnist-mini', 'train');
    const n = 24;
    const data: FixedSubset = { images: ds.images.subarray(0, n * 784), labels: ds.labels.subarray(0, n), n, shape: [1, 28, 28] };
    const ex = await oracle(make, state, data, 'exact', 16);
    const fd = await oracle(make, state, data, 'fd', 16);
    const rng = new Rng(9);
    const u = Float64Array.from({ length: ex.layout.size }, () => rng.normal());
    const v = Float64Array.from({ length: ex.layout.size }, () => rng.normal());
    const hu = await ex.hvp(u), hv = await ex.hvp(v);
    expect(Math.abs(dot(u, hv) - dot(v, hu))).toBeLessThan(1e-4 * Math.abs(dot(u, hv)) + 1e-6);
    // A direction in the classifier head only: the loss is smooth along it (no ReLU or max-pool switches),
    // while H·v has components in every layer (the cross terms run through conv, BN, ReLU and max-pool).
    const w = new Float64Array(ex.layout.size);
    ex.layout.names.forEach((p, i) => {
      if (!p.startsWith('fc.')) return;
      const o = ex.layout.offsets[i]!, e = o + ex.layout.dims[i]!.reduce((a, c) => a * c, 1);
      for (let j = o; j < e; j++) w[j] = rng.normal();
    });
    const a = await ex.hvp(w), b = await fd.hvp(w);
    const conv1 = ex.layout.offsets[ex.layout.names.indexOf('conv1.weight')]!;
    expect(norm2(a.subarray(conv1, conv1 + 36))).toBeGreaterThan(1e-4);
    expect(relErr(b, a)).toBeLessThan(1e-2);
    await ex.release(); await fd.release();
  });

  test('unit-vector HVPs give the analytic Hessian of softmax regression', async () => {
    const model = linearModel();
    const state = stateOf(model);
    const data = randomData(6, [1, 2, 2], K, 1);
    const o = await oracle(linearModel, state, data, 'exact', 4);
    const h = await fullHessian(o);
    const want = softmaxRegressionHessian(state.get('fc.weight')!.data as Float32Array, state.get('fc.bias')!.data as Float32Array, data);
    let err = 0, scale = 0;
    for (let i = 0; i < h.length; i++) for (let j = 0; j < h.length; j++) { err = Math.max(err, Math.abs(h[i]![j]! - want[i]![j]!)); scale = Math.max(scale, Math.abs(want[i]![j]!)); }
    expect(scale).toBeGreaterThan(0.01);
    expect(err).toBeLessThan(1e-5 * Math.max(1, scale) + 1e-6);
    await o.release();
  });

  test('a missing second-order VJP rule is a clear error naming the op and suggesting --hvp fd', () => {
    const make = (): BuiltModel => {
      const m = new ModelBuilder('gathering', 'eval', 1, parseActivation('relu'));
      const input = m.graph.addInput('input', 'float32', ['N', 1, 2, 2]);
      const z = m.linear(m.b.flatten(input), 'fc', D, K);
      // A class permutation through Gather: its VJP scatters (ScatterElements), which has no VJP rule.
      return finish(m, input, m.b.op('Gather', [z, m.b.ints([2, 0, 1])], { axis: 1 }));
    };
    expect(() => generateSharpnessHvp(make())).toThrow(/--hvp exact: .*op ScatterElements.*use --hvp fd/);
  });
});

describe('estimators against the explicit Hessian', () => {
  test('power iteration recovers the top eigenvalue; Hutchinson matches the exact trace within 4 standard deviations', async () => {
    const model = linearModel();
    const state = stateOf(model);
    const data = randomData(8, [1, 2, 2], K, 2);
    const o = await oracle(linearModel, state, data, 'exact', 3);
    const h = await fullHessian(o);
    const eig = jacobiEigenvalues(h);
    const lambda1 = eig[0]!, lambda2 = eig[1]!;
    expect(lambda1).toBeGreaterThan(0);
    expect(lambda2 / lambda1).toBeLessThan(0.9); // a gap, so 200 iterations converge to ~1e-9
    const hvp = (v: Float64Array) => o.hvp(v);
    const pi = await powerIteration(hvp, o.layout.size, { iters: 200, seed: 0 });
    expect(Math.abs(pi.lambda_max - lambda1) / lambda1).toBeLessThan(1e-4);
    // teeth: a few iterations are not yet there (so the comparison above is not vacuous) ...
    expect(Math.abs(pi.lambda_history[0]! - lambda1) / lambda1).toBeGreaterThan(1e-3);
    // ... and λ1 is not the trace or the second eigenvalue
    const trace = h.reduce((s, r, i) => s + r[i]!, 0);
    expect(trace).toBeGreaterThan(1.2 * lambda1);

    // Var(zᵀHz) for Rademacher z is 2 Σ_{i≠j} H_ij²; the mean of S samples has std sqrt(that / S).
    let off = 0;
    for (let i = 0; i < h.length; i++) for (let j = 0; j < h.length; j++) if (i !== j) off += h[i]![j]! ** 2;
    const sigmaOf = (samples: number) => Math.sqrt((2 * off) / samples);
    // Through ONNX Runtime HVPs:
    const hu = await hutchinsonTrace(hvp, o.layout.size, { samples: 400, seed: 3 });
    expect(Math.abs(hu.trace - trace)).toBeLessThan(4 * sigmaOf(400));
    expect(hu.trace_stderr!).toBeGreaterThan(0.5 * sigmaOf(400));
    expect(hu.trace_stderr!).toBeLessThan(2 * sigmaOf(400));
    // Many samples against the explicit matrix (pure JS products), where 4σ is tight enough to catch a 5 % bias:
    const samples = 20000;
    expect(4 * sigmaOf(samples)).toBeLessThan(0.05 * trace);
    const explicit = async (v: Float64Array) => Float64Array.from(h, (row) => dot(row, v));
    const many = await hutchinsonTrace(explicit, h.length, { samples, seed: 4 });
    expect(Math.abs(many.trace - trace)).toBeLessThan(4 * sigmaOf(samples));
    await o.release();
  });

  test('measureSharpness sums batches into the mean over the subset (batch size does not matter)', async () => {
    const state = stateOf(linearModel());
    const data = randomData(7, [1, 2, 2], K, 4);
    const opts = { hvp: 'exact' as const, iters: 10, samples: 5, seed: 1 };
    const a = await measureSharpness(linearModel, state, data, { ...opts, batchSize: 7 });
    const b = await measureSharpness(linearModel, state, data, { ...opts, batchSize: 2 });
    expect(a.n).toBe(7);
    expect(b.lambda_max).toBeCloseTo(a.lambda_max, 5);
    expect(b.trace).toBeCloseTo(a.trace, 5);
    expect(b.loss).toBeCloseTo(a.loss, 5);
    expect(a.hvp_calls).toBe(15);
    const c = await measureSharpness(linearModel, state, data, { ...opts, batchSize: 3, hvp: 'fd' });
    expect(Math.abs(c.lambda_max - a.lambda_max) / a.lambda_max).toBeLessThan(1e-2);
  });
});

describe('advrun sharpness', () => {
  test('prints one JSON object with the estimates and every setting', () => {
    const graphsDir = tmp('advrun-graphs-');
    const spec: ModelSpec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 } }, graphsDir);
    const ck = join(tmp('advrun-sharp-'), 'model.safetensors');
    saveCheckpoint(ck, initialState(art.manifest, 1), { model: spec, epoch: 0, step: 0, extra: { dataset: 'fashion-mnist-mini', classes: null } });
    const r = runCli(['sharpness', '--model', ck, '--n', '40', '--iters', '3', '--samples', '2', '--batch-size', '16', '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ kind: 'sharpness', n: 40, iters: 3, iters_run: 3, samples: 2, hvp: 'exact', seed: 0, bn_mode: 'eval', arch: 'small-cnn', dataset: 'fashion-mnist-mini' });
    expect(out.lambda_history).toHaveLength(3);
    expect(out.model_sha256).toBe(createHash('sha256').update(readFileSync(ck)).digest('hex'));
    expect(Number.isFinite(out.lambda_max) && Number.isFinite(out.trace)).toBe(true);
    expect(out.advrun_version).toBeTypeOf('string');
    // No --val: the checkpoint records no split, so the training default (0.1) is held out.
    expect(out.subset).toMatchObject({ split: 'train', val: 0.1, val_from: 'default' });
  });

  test("holds out the split the checkpoint's run held out unless --val says otherwise", () => {
    const graphsDir = tmp('advrun-graphs-');
    const spec: ModelSpec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 } }, graphsDir);
    const ck = join(tmp('advrun-sharp-'), 'model.safetensors');
    saveCheckpoint(ck, initialState(art.manifest, 1), { model: spec, epoch: 0, step: 0, extra: { dataset: 'fashion-mnist-mini', classes: null, valSplit: 0.25 } });
    const run = (...extra: string[]) => {
      const r = runCli(['sharpness', '--model', ck, '--n', '8', '--iters', '1', '--samples', '1', ...extra, '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const recorded = run(), explicit = run('--val', '0'), other = run('--val', '0.5');
    expect(recorded.subset).toMatchObject({ val: 0.25, val_from: 'checkpoint' });
    expect(explicit.subset).toMatchObject({ val: null, val_from: 'option' });
    expect(other.subset).toMatchObject({ val: 0.5, val_from: 'option' });
    // Different hold-outs leave different first-n training images, hence different losses.
    expect(new Set([recorded.loss, explicit.loss, other.loss]).size).toBe(3);
  });

  test("measures on the images the run trained on: its --limit subset too", async () => {
    const graphsDir = tmp('advrun-graphs-');
    const spec: ModelSpec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 28, width: 4, activation: parseActivation('relu'), mean: [0.286], std: [0.353] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 } }, graphsDir);
    const ck = join(tmp('advrun-sharp-'), 'model.safetensors');
    saveCheckpoint(ck, initialState(art.manifest, 1), { model: spec, epoch: 0, step: 0, extra: { dataset: 'fashion-mnist-mini', classes: null, valSplit: 0.1, limit: 30 } });
    const r = runCli(['sharpness', '--model', ck, '--n', '1000', '--iters', '1', '--samples', '1', '--json'], { ADVRUN_GRAPHS_DIR: graphsDir });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.subset).toMatchObject({ val: 0.1, limit: 30 });
    expect(out.n).toBe(30); // the run's 30 training images, not the first 1000 of the split
    // The same 30 images advrun train used (val held out first, then the seeded --limit subset).
    const { loadDataset } = await import('../../src/data/index.js');
    const seen = await loadDataset('fashion-mnist-mini', 'train', { val: 0.1, limit: 30, seed: 0 });
    expect(out.n).toBe(seen.n);
  });
});
