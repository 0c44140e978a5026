import { describe, expect, test } from 'vitest';
import { addGradients } from '../../src/autodiff/grad.js';
import { COLUMN_CHUNK_BYTES, columnsOverBatch, columnsPerImage, columnsPerImageInChunks, columnsPerOffset, PER_IMAGE_MAX_COLUMNS } from '../../src/autodiff/rules/conv.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph, type AttrInput } from '../../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';
import { gradcheck } from '../helpers/gradcheck.js';

type Attrs = Record<string, AttrInput | undefined>;

interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  attrs?: Attrs;
  bias?: boolean;
  /** Differentiate w.r.t. x (default true). */
  wrtX?: boolean;
  /** Declare the batch dim of x as symbolic ('N') in the graph. */
  symbolicBatch?: boolean;
}

function convCheck(op: 'Conv' | 'ConvTranspose', c: ConvCase) {
  return gradcheck({
    inputs: [
      { name: 'x', shape: c.x, wrt: c.wrtX ?? true, graphShape: c.symbolicBatch ? ['N', ...c.x.slice(1)] : undefined },
      { name: 'w', shape: c.w },
      ...(c.bias ? [{ name: 'bias', shape: [op === 'Conv' ? c.w[0]! : c.w[1]! * Number(c.attrs?.group ?? 1)] }] : []),
    ],
    build: (b, [x, w, bias]) => b.op(op, bias ? [x!, w!, bias] : [x!, w!], c.attrs ?? {}),
  });
}

describe('Conv VJP', () => {
  const cases: ConvCase[] = [
    { name: '3x3 stride 1, symmetric pads, bias', x: [2, 3, 6, 6], w: [4, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    { name: '3x3 stride 2, no pads, no bias (odd size: trailing row skipped)', x: [2, 3, 8, 7], w: [4, 3, 3, 3], attrs: { strides: [2, 2] } },
    { name: 'asymmetric pads with stride 2, non-square kernel', x: [2, 2, 6, 5], w: [3, 2, 3, 2], attrs: { strides: [2, 2], pads: [0, 1, 2, 1] }, bias: true },
    { name: 'dilation 2', x: [1, 2, 8, 8], w: [3, 2, 3, 3], attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] } },
    { name: 'dilation 2 with stride 2 and asymmetric pads', x: [2, 2, 9, 8], w: [2, 2, 3, 2], attrs: { dilations: [2, 2], strides: [2, 2], pads: [1, 0, 0, 2] }, bias: true },
    { name: 'groups 2, stride (2,1)', x: [2, 4, 6, 6], w: [6, 2, 3, 3], attrs: { group: 2, strides: [2, 1], pads: [1, 1, 1, 1] }, bias: true },
    { name: 'groups 2, stride 2, dilation 2', x: [2, 4, 9, 9], w: [4, 2, 3, 3], attrs: { group: 2, strides: [2, 2], dilations: [2, 2], pads: [2, 1, 2, 1] } },
    { name: 'depthwise 3x3', x: [2, 4, 5, 5], w: [4, 1, 3, 3], attrs: { group: 4, pads: [1, 1, 1, 1] }, bias: true },
    { name: 'depthwise with channel multiplier 2, stride 2', x: [2, 3, 7, 7], w: [6, 1, 3, 3], attrs: { group: 3, strides: [2, 2], pads: [1, 1, 1, 1] } },
    { name: '1x1', x: [2, 5, 4, 4], w: [3, 5, 1, 1], bias: true },
    { name: '1x1 stride 2 (ResNet downsample shortcut)', x: [2, 4, 5, 5], w: [6, 4, 1, 1], attrs: { strides: [2, 2] } },
    { name: '7x7 stride 2 pad 3 (ResNet stem)', x: [2, 3, 16, 16], w: [4, 3, 7, 7], attrs: { strides: [2, 2], pads: [3, 3, 3, 3] } },
    { name: 'auto_pad SAME_UPPER stride 2', x: [1, 2, 7, 6], w: [3, 2, 3, 3], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] }, bias: true },
    { name: 'auto_pad SAME_LOWER stride 2', x: [1, 2, 6, 7], w: [3, 2, 4, 3], attrs: { auto_pad: 'SAME_LOWER', strides: [2, 2] } },
    { name: 'auto_pad VALID stride 3', x: [2, 2, 8, 8], w: [2, 2, 3, 3], attrs: { auto_pad: 'VALID', strides: [3, 3] } },
    { name: 'weight and bias only (input needs no gradient)', x: [2, 3, 6, 6], w: [4, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1] }, bias: true, wrtX: false },
    { name: '1-D: stride 2, asymmetric pads, dilation 2, bias', x: [2, 3, 11], w: [4, 3, 3], attrs: { strides: [2], pads: [1, 2], dilations: [2] }, bias: true },
    { name: '1-D groups 3 depthwise', x: [2, 3, 9], w: [3, 1, 4], attrs: { group: 3, pads: [2, 1] } },
    { name: 'symbolic batch dim, groups 2, stride 2, bias', x: [3, 4, 7, 6], w: [4, 2, 3, 3], attrs: { group: 2, strides: [2, 2], pads: [1, 0, 1, 1] }, bias: true, symbolicBatch: true },
    { name: '3-D 2x2x2 stride 2 with pads', x: [1, 2, 4, 5, 4], w: [3, 2, 2, 3, 2], attrs: { strides: [2, 2, 1], pads: [0, 1, 1, 1, 1, 0] }, bias: true },
    // Most cases above have P >= M/2 output positions per output channel: per-image (one-hot) columns. These
    // have few positions and many output channels: im2col over the batch.
    { name: 'few positions, many channels: 3x3 stride 1 pads 1, bias (im2col over the batch)', x: [2, 3, 4, 4], w: [40, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    { name: 'few positions, many channels: stride 2, odd size, asymmetric pads', x: [2, 2, 7, 6], w: [24, 2, 3, 2], attrs: { strides: [2, 2], pads: [1, 0, 0, 1] } },
    { name: 'few positions, many channels: dilation 2, symbolic batch', x: [3, 2, 6, 6], w: [40, 2, 3, 3], attrs: { dilations: [2, 2], pads: [1, 1, 1, 1] }, symbolicBatch: true },
    { name: 'many positions: 3x3 stride 1 pads 1 (per-image weight gradient, flipped-Conv input gradient)', x: [2, 2, 18, 18], w: [3, 2, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    { name: 'many positions: stride 2, odd size, asymmetric pads', x: [2, 2, 35, 34], w: [3, 2, 3, 2], attrs: { strides: [2, 2], pads: [1, 0, 0, 1] } },
    { name: 'many positions: dilation 2, asymmetric pads', x: [1, 2, 20, 19], w: [2, 2, 3, 3], attrs: { dilations: [2, 2], pads: [2, 1, 1, 2] }, bias: true },
    { name: 'many positions: 1-D kernel 5', x: [2, 3, 300], w: [4, 3, 5], attrs: { pads: [2, 1] } },
    { name: 'many positions, symbolic batch, 1x1 stride 2', x: [3, 3, 34, 34], w: [4, 3, 1, 1], attrs: { strides: [2, 2] }, symbolicBatch: true },
  ];
  for (const c of cases) test(c.name, async () => { await convCheck('Conv', c); });
});

describe('ConvTranspose VJP (for double backward through Conv)', () => {
  const cases: ConvCase[] = [
    { name: 'stride 1, pads 1, bias', x: [2, 3, 5, 5], w: [3, 4, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
    { name: 'stride 2, output_padding 1, asymmetric pads', x: [2, 3, 4, 5], w: [3, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 0, 0, 1], output_padding: [1, 1] } },
    { name: 'groups 2, stride 2, dilation 2', x: [2, 4, 4, 4], w: [4, 3, 3, 3], attrs: { group: 2, strides: [2, 2], dilations: [2, 2], pads: [1, 1, 2, 2] }, bias: true },
    { name: 'symbolic batch dim, stride 2, output_padding 1', x: [3, 2, 3, 4], w: [2, 3, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, bias: true, symbolicBatch: true },
    { name: '1-D stride 3 with output_padding', x: [2, 2, 5], w: [2, 3, 4], attrs: { strides: [3], pads: [2, 1], output_padding: [2] }, bias: true },
    { name: 'many positions (per-image weight gradient), stride 1', x: [1, 2, 17, 17], w: [2, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
    { name: 'few positions, many channels (weight gradient over the batch), stride 2', x: [2, 12, 2, 2], w: [12, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] } },
  ];
  for (const c of cases) test(c.name, async () => { await convCheck('ConvTranspose', c); });
});

describe('second order through Conv (Hessian-vector products, gradient penalties)', () => {
  // The checked function is the first-order gradient itself: (dL/dx, dL/dw) of L = sum(r * conv(x, w)^2).
  // Differentiating it again goes back through ConvTranspose's VJP and the im2col weight-gradient graph.
  const cases: ConvCase[] = [
    { name: 'stride 2, asymmetric pads, bias', x: [2, 2, 6, 5], w: [3, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 0, 0, 1] }, bias: true },
    { name: 'groups 2, dilation 2', x: [1, 4, 6, 6], w: [4, 2, 2, 2], attrs: { group: 2, dilations: [2, 2], pads: [1, 1, 1, 1] } },
    { name: 'stride 1, many positions (flipped-Conv input gradient, one-hot columns)', x: [1, 2, 17, 17], w: [2, 2, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
    { name: 'stride 1, few positions, many channels (im2col over the batch)', x: [1, 2, 3, 3], w: [12, 2, 3, 3], attrs: { pads: [1, 1, 1, 1] } },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const rng = new Rng(5);
      await gradcheck({
        inputs: [{ name: 'x', shape: c.x }, { name: 'w', shape: c.w }, ...(c.bias ? [{ name: 'bias', shape: [c.w[0]!] }] : [])],
        build: (b, ins) => {
          const y = b.op('Conv', ins, c.attrs ?? {});
          const shape = b.shape(y) as number[];
          const r = b.constant(makeTensor(b.dtype(y), shape, Array.from({ length: numel(shape) }, () => rng.uniform(-1, 1))));
          const grads = addGradients(b.graph, b.sumAll(b.mul(r, b.mul(y, y))), ins);
          return ins.map((v) => grads[v]!);
        },
      });
    });
  }
});

describe('the weight-gradient formulations agree to float32 rounding (finite differences only resolve ~1e-2)', () => {
  const layers: { x: number[]; m: number; kernel: number[]; strides: number[]; dilations: number[]; pads: number[] }[] = [
    { x: [3, 4, 9, 9], m: 5, kernel: [3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1] },
    { x: [2, 3, 11, 10], m: 6, kernel: [3, 2], strides: [2, 2], dilations: [1, 1], pads: [1, 0] },
    { x: [2, 3, 10, 10], m: 4, kernel: [3, 3], strides: [1, 2], dilations: [2, 1], pads: [2, 1] },
    { x: [2, 5, 8], m: 3, kernel: [4], strides: [3], dilations: [1], pads: [2] },
    { x: [2, 3, 5, 5], m: 4, kernel: [1, 1], strides: [1, 1], dilations: [1, 1], pads: [0, 0] },
    { x: [2, 3, 6, 6], m: 4, kernel: [1, 1], strides: [2, 2], dilations: [1, 1], pads: [0, 0] },
  ];
  for (const l of layers) {
    test(`x [${l.x}], ${l.m} output channels, kernel [${l.kernel}], strides [${l.strides}], dilations [${l.dilations}]`, async () => {
      const rng = new Rng(3);
      const g = new Graph('wgrad');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', l.x);
      const w = g.addInput('w', 'float32', [l.m, l.x[1]!, ...l.kernel]);
      const y = b.op('Conv', [x, w], { strides: l.strides, dilations: l.dilations, pads: [...l.pads, ...l.pads] });
      const gy = g.addInput('gy', 'float32', g.shape(y));
      const win = { kernel: l.kernel, strides: l.strides, dilations: l.dilations, padsBegin: l.pads };
      g.outputs = [columnsOverBatch(b, x, gy, win, 1), columnsPerImage(b, x, gy, win), columnsPerOffset(b, x, gy, win, 'slices'), columnsPerOffset(b, x, gy, win, 'selection')];
      const rand = (dims: number[]): Tensor => makeTensor('float32', dims, Array.from({ length: numel(dims) }, () => rng.normal()));
      const out = Object.values(await (await CompiledGraph.create(g)).runTensors({ x: rand(l.x), w: rand([l.m, l.x[1]!, ...l.kernel]), gy: rand(g.shape(y) as number[]) }));
      const [c, ...others] = out.map((t) => Array.from(t.data as Float32Array));
      const scale = Math.max(...c!.map(Math.abs));
      for (const a of others) expect(Math.max(...a.map((v, i) => Math.abs(v - c![i]!))) / scale).toBeLessThan(1e-5);
    });
  }
});

describe('Conv VJP graph structure', () => {
  function convGradGraph(xShape: (number | string)[], wrt: string[], outChannels = 8) {
    const g = new Graph('conv');
    const b = new Builder(g);
    const x = g.addInput('x', 'float32', xShape);
    const w = g.addInput('w', 'float32', [outChannels, 3, 3, 3]);
    const bias = g.addInput('bias', 'float32', [outChannels]);
    const y = b.op('Conv', [x, w, bias], { strides: [2, 2], pads: [1, 1, 1, 1] });
    const forwardNodes = g.nodes.length;
    const r = g.addInput('r', 'float32', g.shape(y));
    const loss = b.sumAll(b.mul(y, r));
    const grads = addGradients(g, loss, wrt);
    g.outputs = [loss, ...wrt.map((v) => grads[v]!)];
    return { g, grads, forwardNodes };
  }

  test('few positions per output channel: the weight gradient is im2col over the batch + one MatMul, no Conv', () => {
    const { g, forwardNodes } = convGradGraph(['N', 3, 10, 10], ['w'], 64);
    const backward = g.nodes.slice(forwardNodes);
    expect(backward.filter((n) => n.op === 'Conv' || n.op === 'ConvTranspose')).toEqual([]);
    const mm = backward.filter((n) => n.op === 'MatMul');
    expect(mm).toHaveLength(1);
    // One batched MatMul contracts over N*Ho*Wo: [G, Cin/G*kh*kw, N*P] x [G, N*P, Cout/G].
    expect(g.shape(mm[0]!.inputs[0]!)).toEqual([1, 27, expect.anything()]);
    expect(g.shape(mm[0]!.inputs[1]!)).toEqual([1, expect.anything(), 64]);
  });

  test('with many output positions the weight gradient is per image: one-hot depthwise columns, a batched MatMul, a sum over N', () => {
    const { g, forwardNodes } = convGradGraph(['N', 3, 40, 40], ['w']);
    const backward = g.nodes.slice(forwardNodes);
    const convs = backward.filter((n) => n.op === 'Conv');
    expect(convs).toHaveLength(1);
    expect(convs[0]!.attrs.group).toEqual({ type: 'int', value: 3 });
    const mm = backward.filter((n) => n.op === 'MatMul');
    expect(mm).toHaveLength(1);
    expect(g.shape(mm[0]!.inputs[0]!)).toEqual([expect.anything(), 27, 400]); // the columns [N, C*K, P] on the left, gy^T on the right
    expect(backward.some((n) => n.op === 'ReduceSum')).toBe(true);
  });

  test('a stride-1 convolution gets its input gradient from a Conv, a strided one from ConvTranspose', () => {
    const { g, forwardNodes } = convGradGraph(['N', 3, 10, 10], ['x']);
    expect(g.nodes.slice(forwardNodes).map((n) => n.op)).toContain('ConvTranspose');
    const g1 = new Graph('conv1');
    const b = new Builder(g1);
    const x = g1.addInput('x', 'float32', [2, 3, 6, 6]);
    const w = g1.addInput('w', 'float32', [4, 3, 3, 3]);
    const y = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] });
    const before = g1.nodes.length;
    addGradients(g1, b.sumAll(y), [x]);
    const ops = g1.nodes.slice(before).map((n) => n.op);
    expect(ops).toContain('Conv');
    expect(ops).not.toContain('ConvTranspose');
  });

  test('symbolic batch dim: gradients match the static-batch graph for two batch sizes', async () => {
    const rng = new Rng(7);
    const rand = (dims: number[]): Tensor => makeTensor('float32', dims, Array.from({ length: numel(dims) }, () => rng.normal()));
    const sym = convGradGraph(['N', 3, 10, 10], ['x', 'w', 'bias']);
    expect(sym.g.shape(sym.grads.x!)).toEqual(['N', 3, 10, 10]);
    expect(sym.g.shape(sym.grads.w!)).toEqual([8, 3, 3, 3]);
    const symRun = await CompiledGraph.create(sym.g);
    const w = rand([8, 3, 3, 3]), bias = rand([8]);
    for (const n of [1, 3]) {
      const st = convGradGraph([n, 3, 10, 10], ['x', 'w', 'bias']);
      const stRun = await CompiledGraph.create(st.g);
      const feeds = { x: rand([n, 3, 10, 10]), w, bias, r: rand([n, 8, 5, 5]) };
      const a = await symRun.runTensors(feeds), e = await stRun.runTensors(feeds);
      for (const v of ['x', 'w', 'bias']) {
        const ga = a[sym.grads[v]!]!, ge = e[st.grads[v]!]!;
        expect(ga.dims).toEqual(ge.dims);
        Array.from(ga.data as Float32Array).forEach((val, i) => expect(val).toBeCloseTo(Number(ge.data[i]), 4));
      }
      await stRun.release();
    }
    await symRun.release();
  });

  test('the weight-gradient formulation follows the layer: per offset for huge per-image columns and deep stride-1 layers, per image, over the batch', () => {
    const formulation = (c: number, m: number, size: number, stride = 1) => {
      const g = new Graph('wgrad-choice');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', ['N', c, size, size]);
      const w = g.addInput('w', 'float32', [m, c, 3, 3]);
      const before = g.nodes.length;
      addGradients(g, b.sumAll(b.op('Conv', [x, w], { pads: [1, 1, 1, 1], strides: [stride, stride] })), [w]);
      const ops = g.nodes.slice(before).map((n) => n.op);
      const matmuls = ops.filter((o) => o === 'MatMul').length;
      return matmuls >= 9 ? 'per offset' : ops.includes('Concat') ? 'over batch' : 'per image';
    };
    expect(PER_IMAGE_MAX_COLUMNS).toBeLessThan(64 * 9 * 32 * 32);
    expect(formulation(64, 64, 32)).toBe('per offset'); // PreActResNet-18 w64 stage 1: 2.4 MB of columns an image
    expect(formulation(128, 128, 16)).toBe('per image');
    expect(formulation(16, 16, 28)).toBe('per image');
    expect(formulation(512, 512, 4)).toBe('per offset');
    expect(formulation(256, 512, 8, 2)).toBe('per offset'); // strided, but 64 input positions for 512 output channels: selection MatMuls
    expect(formulation(128, 256, 16, 2)).toBe('per offset'); // strided, 256 input positions: selections cost at most the GEMM again
    expect(formulation(32, 128, 14, 2)).toBe('over batch'); // strided, 196 input positions for 128 output channels, 49 output positions
  });

  test('deep layers gather each offset by a MatMul with a 0/1 selection matrix (no Pad, no Slice) when it is cheap', () => {
    const gathers = (c: number, m: number, size: number) => {
      const g = new Graph('wgrad-gather');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', ['N', c, size, size]);
      const w = g.addInput('w', 'float32', [m, c, 3, 3]);
      const before = g.nodes.length;
      addGradients(g, b.sumAll(b.op('Conv', [x, w], { pads: [1, 1, 1, 1] })), [w]);
      const ops = g.nodes.slice(before).map((n) => n.op);
      return { slices: ops.filter((o) => o === 'Slice').length, pads: ops.filter((o) => o === 'Pad').length, matmuls: ops.filter((o) => o === 'MatMul').length };
    };
    // 8 selections (the centre offset meets every position in place) + 9 weight-gradient GEMMs.
    expect(gathers(512, 512, 4)).toEqual({ slices: 0, pads: 0, matmuls: 17 });
    expect(gathers(256, 256, 8)).toEqual({ slices: 0, pads: 0, matmuls: 17 });
    expect(gathers(64, 64, 32)).toEqual({ slices: 9, pads: 1, matmuls: 9 }); // 1024 input positions: Pad + Slices
    // A 1x1 stride-1 layer's only offset meets every position in place: no selection MatMul, no copy.
    const g = new Graph('wgrad-1x1');
    const b = new Builder(g);
    const x = g.addInput('x', 'float32', ['N', 256, 7, 7]);
    const w = g.addInput('w', 'float32', [1024, 256, 1, 1]);
    const before = g.nodes.length;
    addGradients(g, b.sumAll(b.op('Conv', [x, w], {})), [w]);
    expect(g.nodes.slice(before).filter((n) => n.op === 'MatMul')).toHaveLength(1);
  });

  test('with a planned batch, per-image columns are built a few images at a time (cache-sized pieces)', () => {
    const pieces = (c: number, m: number, size: number, plannedBatch?: number, stride = 1, k = 3) => {
      const g = new Graph('wgrad-chunks');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', ['N', c, size, size]);
      const w = g.addInput('w', 'float32', [m, c, k, k]);
      const p = (k - 1) / 2;
      const loss = b.sumAll(b.op('Conv', [x, w], { pads: [p, p, p, p], strides: [stride, stride] }));
      const before = g.nodes.length;
      addGradients(g, loss, [w], { plannedBatch });
      const backward = g.nodes.slice(before);
      return { columnConvs: backward.filter((n) => n.op === 'Conv').length, matmuls: backward.filter((n) => n.op === 'MatMul').length };
    };
    const imagesPerPiece = Math.floor(COLUMN_CHUNK_BYTES / (64 * 9 * 32 * 32 * 4));
    expect(pieces(64, 64, 32, 128)).toEqual({ columnConvs: Math.ceil(128 / imagesPerPiece), matmuls: Math.ceil(128 / imagesPerPiece) });
    expect(pieces(64, 64, 32)).toEqual({ columnConvs: 0, matmuls: 9 }); // no plan: per offset, as above
    expect(pieces(16, 16, 8, 4)).toEqual({ columnConvs: 1, matmuls: 1 }); // the whole planned batch fits one piece
    expect(pieces(64, 128, 32, 128, 2, 1)).toEqual({ columnConvs: 1, matmuls: 1 }); // strided 1x1: columns smaller than the input, no pieces
    expect(pieces(512, 512, 4, 128)).toEqual({ columnConvs: 0, matmuls: 17 }); // deep layer: per offset (selection + GEMM), no per-image columns
  });
});

describe('weight gradient in pieces of the batch', () => {
  const win = { kernel: [3, 3], strides: [1, 1], dilations: [1, 1], padsBegin: [1, 1] };
  // Planned for 8 images in pieces of 3: [0,3) [3,6) [6,end). Smaller batches leave pieces empty, a larger one lengthens the last.
  for (const n of [1, 4, 8, 13]) {
    test(`planned batch 8, pieces of 3, run with ${n} image(s): same as all images at once`, async () => {
      const rng = new Rng(11 + n);
      const g = new Graph('wgrad-pieces');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', ['N', 4, 6, 6]);
      const gy = g.addInput('gy', 'float32', ['N', 5, 6, 6]);
      g.outputs = [columnsPerImage(b, x, gy, win), columnsPerImageInChunks(b, x, gy, win, 8, 3)];
      const rand = (dims: number[]): Tensor => makeTensor('float32', dims, Array.from({ length: numel(dims) }, () => rng.normal()));
      const sess = await CompiledGraph.create(g);
      const [whole, pieces] = Object.values(await sess.runTensors({ x: rand([n, 4, 6, 6]), gy: rand([n, 5, 6, 6]) }));
      await sess.release();
      const a = Array.from(whole!.data as Float32Array), c = Array.from(pieces!.data as Float32Array);
      const scale = Math.max(...a.map(Math.abs));
      expect(Math.max(...c.map((v, i) => Math.abs(v - a[i]!))) / scale).toBeLessThan(1e-5);
    });
  }

  test('through addGradients: a Conv planned in pieces has the unplanned weight gradient for smaller and larger batches', async () => {
    // 16*9*24*24 floats of columns an image; plan for two pieces and a rest, run with 1.5 pieces and with more than planned.
    const perPiece = Math.floor(COLUMN_CHUNK_BYTES / (16 * 9 * 24 * 24 * 4));
    expect(perPiece).toBeGreaterThan(2);
    const weightGrad = (plannedBatch?: number) => {
      const g = new Graph('wgrad-planned');
      const b = new Builder(g);
      const x = g.addInput('x', 'float32', ['N', 16, 24, 24]), w = g.addInput('w', 'float32', [2, 16, 3, 3]);
      const y = b.op('Conv', [x, w], { pads: [1, 1, 1, 1] });
      const r = g.addInput('r', 'float32', g.shape(y));
      const loss = b.sumAll(b.mul(y, r));
      const before = g.nodes.length;
      g.outputs = [addGradients(g, loss, [w], { plannedBatch }).w!];
      return { pieces: g.nodes.slice(before).filter((n) => n.op === 'Conv').length, run: CompiledGraph.create(g) };
    };
    const p = weightGrad(2 * perPiece + 2), u = weightGrad();
    expect([p.pieces, u.pieces]).toEqual([3, 1]);
    const [planned, unplanned] = await Promise.all([p.run, u.run]);
    const rng = new Rng(5);
    const rand = (dims: number[]): Tensor => makeTensor('float32', dims, Array.from({ length: numel(dims) }, () => rng.normal()));
    for (const n of [Math.floor(1.5 * perPiece), 3 * perPiece + 1]) {
      const feeds = { x: rand([n, 16, 24, 24]), w: rand([2, 16, 3, 3]), r: rand([n, 2, 24, 24]) };
      const a = Array.from(Object.values(await unplanned.runTensors(feeds))[0]!.data as Float32Array);
      const c = Array.from(Object.values(await planned.runTensors(feeds))[0]!.data as Float32Array);
      const scale = Math.max(...a.map(Math.abs));
      expect(Math.max(...c.map((v, i) => Math.abs(v - a[i]!))) / scale).toBeLessThan(1e-5);
    }
    await planned.release();
    await unplanned.release();
  });
});
