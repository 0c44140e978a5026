import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { newGraph } from '../../src/ir/builder.js';
import { GraphError } from '../../src/ir/graph.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { graphToModelProto, loadOnnxFile, modelProtoToGraph } from '../../src/onnx/io.js';
import { ModelProto } from '../../src/onnx/schema.js';
import { CompiledGraph } from '../../src/runtime/session.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'torch');

describe('graph IR and ONNX I/O', () => {
  test('shapes are inferred as nodes are added, with a symbolic batch dimension', () => {
    const { graph, b } = newGraph();
    const x = graph.addInput('x', 'float32', ['N', 3, 32, 32]);
    graph.addInitializer('w', makeTensor('float32', [8, 3, 3, 3]));
    const y = b.op('Conv', [x, 'w'], { strides: [2, 2], pads: [1, 0, 1, 0] });
    expect(graph.shape(y)).toEqual(['N', 8, 16, 15]);
    const f = b.flatten(b.op('MaxPool', [y], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }));
    expect(graph.shape(f)).toEqual(['N', 8 * 8 * 8]);
    const r = b.reshape(f, [-1, 16, 32]);
    expect(graph.shape(r)).toEqual(['N', 16, 32]);
    expect(graph.shape(b.reduceMean(r, [1], false))).toEqual(['N', 32]);
    expect(graph.shape(b.transpose(r, [2, 0, 1]))).toEqual([32, 'N', 16]);
  });

  test('a shape mismatch is reported at build time, naming the op and node', () => {
    const { graph, b } = newGraph();
    const x = graph.addInput('x', 'float32', ['N', 3, 8, 8]);
    graph.addInitializer('w', makeTensor('float32', [8, 4, 3, 3]));
    expect(() => b.op('Conv', [x, 'w'])).toThrow(/Conv node "Conv_0": input has 3 channels but weight \[8,4,3,3\]/);
    const a = graph.addInput('a', 'float32', [2, 3]);
    const c = graph.addInput('c', 'float32', [4, 3]);
    expect(() => b.add(a, c)).toThrow(/do not broadcast/);
    expect(() => b.matmul(a, a)).toThrow(/MatMul inner dimensions differ/);
  });

  test('serialise, read back and run: same structure, same numbers', async () => {
    const { graph, b } = newGraph('roundtrip');
    const x = graph.addInput('x', 'float32', ['N', 4]);
    graph.addInitializer('w', makeTensor('float32', [3, 4], Array.from({ length: 12 }, (_, i) => i / 10)));
    graph.addInitializer('bias', makeTensor('float32', [3], [1, 2, 3]));
    const y = b.op('Gemm', [x, 'w', 'bias'], { transB: 1, alpha: 0.5 });
    graph.markOutput(b.op('LeakyRelu', [y], { alpha: 0.1 }));
    const bytes = graphToModelProto(graph);
    const back = modelProtoToGraph(bytes);
    expect(back.inputs).toEqual(['x']);
    expect(back.shape(back.outputs[0]!)).toEqual(['N', 3]);
    expect(back.nodes.map((n) => n.op)).toEqual(['Gemm', 'LeakyRelu']);
    expect(back.nodes[0]!.attrs.alpha).toEqual({ type: 'float', value: 0.5 });
    expect(back.nodes[0]!.attrs.transB).toEqual({ type: 'int', value: 1 });
    expect(toNumbers(back.initializers.get('bias')!)).toEqual([1, 2, 3]);
    const run = await CompiledGraph.create(back);
    const out = await run.runTensors({ x: makeTensor('float32', [1, 4], [1, 0, 0, -1]) });
    // 0.5 * (x . w_row) + bias: rows (0,.1,.2,.3),(.4,...,.7),(.8,...,1.1)
    expect(Array.from(out[back.outputs[0]!]!.data as Float32Array).map((v) => +v.toFixed(5))).toEqual([0.85, 1.85, 2.85]);
    await run.release();
  });

  test('reads a torch.onnx.export model (Constant nodes, initializers, symbolic batch) and runs it like PyTorch', async () => {
    const g = loadOnnxFile(join(FIX, 'small_cnn.onnx'));
    expect(g.inputs).toEqual(['input']);
    expect(g.shape('input')[0]).toBeTypeOf('string');
    expect(g.shape(g.outputs[0]!)).toEqual([g.shape('input')[0], 10]);
    expect(g.initializers.has('conv1.weight')).toBe(true);
    const { readSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const exp = readSafetensors(join(FIX, 'small_cnn_onnx_expected.safetensors')).tensors;
    const run = await CompiledGraph.create(graphToModelProto(g));
    const out = await run.runTensors({ input: exp.get('input')! });
    const got = out[g.outputs[0]!]!.data as Float32Array;
    const want = exp.get('logits')!.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    expect(maxDiff).toBeLessThan(1e-5);
    await run.release();
  });

  test('malformed files give one clear error naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'advrun-io-'));
    const bad = join(dir, 'bad.onnx');
    writeFileSync(bad, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]));
    expect(() => loadOnnxFile(bad)).toThrow(GraphError);
    expect(() => loadOnnxFile(bad)).toThrow(/bad\.onnx is not a valid ONNX model/);
    expect(() => loadOnnxFile(join(dir, 'missing.onnx'))).toThrow(/no such file/);
  });
});

describe('values at the edges of their types', () => {
  /** A Slice(x, starts, ends) model written the way onnx.helper writes it: typed int64_data, not raw bytes. */
  function sliceModel(ends: string): Uint8Array {
    const int64 = (name: string, v: string) => ({ name, dims: [1], dataType: 7, int64Data: [v] });
    const vi = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
    return ModelProto.encode(ModelProto.fromObject({
      irVersion: 8, opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 's', input: [vi('x', [2, 4])], output: [vi('y', [2, 3])],
        initializer: [int64('starts', '1'), int64('ends', ends), int64('axes', '1')],
        node: [{ opType: 'Slice', input: ['x', 'starts', 'ends', 'axes'], output: ['y'] }],
      },
    })).finish();
  }

  test("int64 INT64_MAX (Slice's 'to the end') survives reading and writing", async () => {
    const g = modelProtoToGraph(sliceModel('9223372036854775807'), 'slice.onnx');
    expect(g.initializers.get('ends')!.data[0]).toBe(2n ** 63n - 1n);
    expect(g.shape('y')).toEqual([2, 3]);
    const s = await CompiledGraph.create(modelProtoToGraph(graphToModelProto(g), 'again'));
    const y = (await s.runTensors({ x: makeTensor('float32', [2, 4], [0, 1, 2, 3, 4, 5, 6, 7]) })).y!;
    expect(y.dims).toEqual([2, 3]);
    expect(toNumbers(y)).toEqual([1, 2, 3, 5, 6, 7]);
    // A JS number at or past 2^63 (an attribute's INT64_MAX read as a double) clamps instead of wrapping.
    expect(makeTensor('int64', [2], [2 ** 63, -(2 ** 64)]).data).toEqual(BigInt64Array.from([2n ** 63n - 1n, -(2n ** 63n)]));
  });

  test('float16 tensors made from numbers hold those values (not bit patterns)', () => {
    expect(Array.from(makeTensor('float16', [4], [1, -2, 0.1, 65504]).data)).toEqual([0x3c00, 0xc000, 0x2e66, 0x7bff]);
    expect(Array.from(makeTensor('float16', [1], Uint16Array.from([0x3c00])).data)).toEqual([0x3c00]); // bits stay bits
  });
});

describe('shape inference edge cases', () => {
  test('products of symbolic dims get new names; Shape start/end; Expand broadcasts; ConvTranspose SAME', () => {
    const { graph: g, b } = newGraph('shapes', 17);
    const x = g.addInput('x', 'float32', ['N', 2, 3]);
    const f2 = b.flatten(x, 2), f0 = b.flatten(x, 0);
    expect(g.shape(f2)[0]).not.toBe('N'); // 2N rows
    expect(g.shape(f2)[1]).toBe(3);
    expect(g.shape(f0)).toEqual([1, expect.not.stringMatching(/^N$/)]);
    const m = g.addInput('m', 'float32', ['N', 'M', 6]);
    expect(g.shape(b.reshape(m, [-1, 6]))[0]).not.toBe('N'); // N*M rows
    expect(g.shape(b.reshape(x, [-1, 6]))).toEqual(['N', 6]); // one symbol, the rest static: it passes through
    const shapeFrom1 = g.addNode('Shape', [x], { start: 1 })[0]!;
    expect(g.shape(shapeFrom1)).toEqual([2]);
    // A shape-valued input taken from Shape(y): y's dims (symbolic ones too), sliced by start/end.
    const flat = g.addInput('flat', 'float32', ['N', 6]);
    expect(g.shape(b.op('Reshape', [flat, b.op('Shape', [x])]))).toEqual(['N', 2, 3]);
    expect(g.shape(b.op('Reshape', [g.addInput('six', 'float32', [6]), shapeFrom1]))).toEqual([2, 3]);
    expect(g.shape(b.op('ConstantOfShape', [b.op('Shape', [x])]))).toEqual(['N', 2, 3]);
    const col = g.addInput('col', 'float32', [3, 1]), row = g.addInput('row', 'float32', [1, 4]);
    expect(g.shape(b.op('Expand', [col, b.op('Shape', [row])]))).toEqual([3, 4]);
    const img = g.addInput('img', 'float32', ['N', 2, 5, 5]), w = g.addInput('w', 'float32', [2, 3, 3, 3]);
    expect(g.shape(b.op('ConvTranspose', [img, w], { strides: [2, 2], auto_pad: 'SAME_UPPER' }))).toEqual(['N', 3, 10, 10]);
  });

  test('an input without a declared shape is an error, not a scalar', () => {
    const bytes = ModelProto.encode(ModelProto.fromObject({
      irVersion: 8, opsetImport: [{ domain: '', version: 17 }],
      graph: { name: 'g', input: [{ name: 'x', type: { tensorType: { elemType: 1 } } }], output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }], node: [{ opType: 'Relu', input: ['x'], output: ['y'] }] },
    })).finish();
    expect(() => modelProtoToGraph(bytes, 'noshape.onnx')).toThrow(/noshape\.onnx: input "x" declares no shape/);
  });
});
