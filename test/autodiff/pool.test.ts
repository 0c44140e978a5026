import { describe, expect, test } from 'vitest';
import { addGradients } from '../../src/autodiff/grad.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph, type AttrInput } from '../../src/ir/graph.js';
import { makeTensor, numel } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';
import { gradcheck } from '../helpers/gradcheck.js';

type Attrs = Record<string, AttrInput | undefined>;

/**
 * Distinct values spaced 0.05 apart in random order: finite differences (step 1e-2, and 1e-2 times a
 * direction in [-1, 1]) can never reorder two elements, so every window keeps its argmax.
 */
function tieFree(shape: number[], seed = 3): number[] {
  const n = numel(shape);
  const perm = new Rng(seed).permutation(n);
  return Array.from(perm, (p) => (p - n / 2) * 0.05);
}

function poolCheck(op: string, shape: number[], attrs: Attrs, opts: { opset?: number; outputs?: number; symbolicBatch?: boolean } = {}) {
  return gradcheck({
    inputs: [{ name: 'x', shape, init: op.includes('Max') ? tieFree(shape) : 'normal', graphShape: opts.symbolicBatch ? ['N', ...shape.slice(1)] : undefined }],
    build: (b, [x]) => (opts.outputs ? b.opN(op, [x!], opts.outputs, attrs)[0]! : b.op(op, [x!], attrs)),
    opset: opts.opset,
  });
}

/** d(sum(y * r))/dx for explicit x and r, run once. */
async function gradOf(op: string, x: number[], shape: number[], attrs: Attrs, r: number[]): Promise<number[]> {
  const g = new Graph('tie');
  const b = new Builder(g);
  const xi = g.addInput('x', 'float32', shape);
  const y = b.op(op, [xi], attrs);
  const loss = b.sumAll(b.mul(y, b.constant(makeTensor('float32', g.shape(y) as number[], r))));
  const grads = addGradients(g, loss, ['x']);
  g.outputs = [grads.x!];
  const run = await CompiledGraph.create(g);
  const out = await run.runTensors({ x: makeTensor('float32', shape, x) });
  await run.release();
  return Array.from(out[grads.x!]!.data as Float32Array);
}

describe('MaxPool VJP', () => {
  const cases: [string, number[], Attrs][] = [
    ['2x2 stride 2', [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    ['3x3 stride 2 pads 1 (ResNet stem pool)', [2, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['3x3 stride 1, overlapping windows share maxima', [1, 2, 5, 5], { kernel_shape: [3, 3] }],
    ['ceil_mode, last window partly outside', [1, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    // (A ceil_mode window that would start inside the end padding is dropped at run time, but ONNX's static
    // shape inference in ONNX Runtime still counts it, so sessions mixing such a pool with static shapes fail.)
    ['ceil_mode with asymmetric pads', [2, 2, 7, 6], { kernel_shape: [3, 2], strides: [2, 2], pads: [0, 1, 1, 0], ceil_mode: 1 }],
    ['dilation 2', [1, 2, 7, 7], { kernel_shape: [2, 2], dilations: [2, 2], strides: [1, 2] }],
    ['auto_pad SAME_UPPER', [1, 2, 5, 6], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' }],
    ['1-D stride 2 pads 1', [2, 3, 9], { kernel_shape: [3], strides: [2], pads: [1, 1] }],
  ];
  for (const [name, shape, attrs] of cases) test(name, async () => { await poolCheck('MaxPool', shape, attrs); });

  test('symbolic batch dim', async () => {
    await poolCheck('MaxPool', [3, 2, 5, 5], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { symbolicBatch: true });
  });

  test('second order: the gradient of the MaxPool gradient (w.r.t. the upstream cotangent)', async () => {
    // d/dx of sum(r * maxpool(x)^2) is a scatter of 2 r y; differentiating it again needs the scatter's adjoint.
    const shape = [1, 2, 5, 5];
    await gradcheck({
      inputs: [{ name: 'x', shape, init: tieFree(shape) }],
      build: (b, [x]) => {
        const y = b.op('MaxPool', [x!], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
        const r = b.constant(makeTensor(b.dtype(y), [1, 2, 3, 3], Array.from({ length: 18 }, (_, i) => Math.sin(i + 1))));
        return addGradients(b.graph, b.sumAll(b.mul(r, b.mul(y, y))), [x!])[x!]!;
      },
    });
  });

  test('forward node with its own Indices output (reused, no recomputation)', async () => {
    await poolCheck('MaxPool', [2, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { outputs: 2 });
    const g = new Graph('idx');
    const b = new Builder(g);
    const x = g.addInput('x', 'float32', [1, 1, 4, 4]);
    const [y] = b.opN('MaxPool', [x], 2, { kernel_shape: [2, 2] });
    addGradients(g, b.sumAll(y!), ['x']);
    expect(g.nodes.filter((n) => n.op === 'MaxPool')).toHaveLength(1);
  });

  test('ties: the whole cotangent goes to the first maximum in row-major window order (as PyTorch)', async () => {
    // One 2x2 window of equal values.
    expect(await gradOf('MaxPool', [1, 1, 1, 1], [1, 1, 2, 2], { kernel_shape: [2, 2] }, [1])).toEqual([1, 0, 0, 0]);
    // Overlapping 2x2 windows, stride 1, over a 2x3 plane of [5 5 5; 5 5 1]:
    // both windows' first max is their top-left element: positions 0 and 1.
    expect(await gradOf('MaxPool', [5, 5, 5, 5, 5, 1], [1, 1, 2, 3], { kernel_shape: [2, 2] }, [2, 3])).toEqual([2, 3, 0, 0, 0, 0]);
    // A tie only in the second row of the window: [1 2; 3 3] -> element 2.
    expect(await gradOf('MaxPool', [1, 2, 3, 3], [1, 1, 2, 2], { kernel_shape: [2, 2] }, [1])).toEqual([0, 0, 1, 0]);
  });
});

describe('AveragePool VJP', () => {
  const cases: [string, number[], Attrs, number?][] = [
    ['2x2 stride 2', [2, 3, 6, 6], { kernel_shape: [2, 2], strides: [2, 2] }],
    ['3x3 stride 1, overlapping', [1, 2, 5, 5], { kernel_shape: [3, 3] }],
    ['3x3 stride 2 pads 1, count_include_pad 0', [2, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }],
    ['3x3 stride 2 pads 1, count_include_pad 1', [2, 2, 7, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad: 1 }],
    ['asymmetric pads, count_include_pad 1', [1, 2, 6, 5], { kernel_shape: [3, 2], strides: [2, 1], pads: [2, 0, 1, 1], count_include_pad: 1 }],
    ['ceil_mode, count_include_pad 0', [1, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }],
    ['ceil_mode with pads, count_include_pad 1', [2, 2, 6, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 }],
    ['ceil_mode with pads, count_include_pad 0', [2, 2, 6, 7], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }],
    ['floor mode skipping trailing rows (stride 3)', [1, 2, 8, 7], { kernel_shape: [2, 2], strides: [3, 3] }],
    ['1-D stride 2 pads 1, count_include_pad 1', [2, 3, 9], { kernel_shape: [3], strides: [2], pads: [1, 1], count_include_pad: 1 }],
    ['dilation 2 (opset 19)', [1, 2, 7, 7], { kernel_shape: [2, 2], dilations: [2, 2], strides: [2, 1], pads: [1, 0, 1, 1] }, 19],
  ];
  for (const [name, shape, attrs, opset] of cases) test(name, async () => { await poolCheck('AveragePool', shape, attrs, { opset }); });
  test('symbolic batch dim', async () => {
    await poolCheck('AveragePool', [3, 2, 5, 5], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { symbolicBatch: true });
  });
});

describe('global pooling VJP', () => {
  test('GlobalAveragePool 2-D and 1-D', async () => {
    await poolCheck('GlobalAveragePool', [2, 3, 4, 5], {});
    await poolCheck('GlobalAveragePool', [2, 3, 7], {});
  });
  test('GlobalMaxPool 2-D and 1-D', async () => {
    await poolCheck('GlobalMaxPool', [2, 3, 4, 5], {});
    await poolCheck('GlobalMaxPool', [2, 3, 7], {});
  });
  test('symbolic batch dim', async () => {
    await poolCheck('GlobalAveragePool', [3, 2, 4, 3], {}, { symbolicBatch: true });
    await poolCheck('GlobalMaxPool', [3, 2, 4, 3], {}, { symbolicBatch: true });
  });
  test('GlobalMaxPool ties go to the first maximum', async () => {
    expect(await gradOf('GlobalMaxPool', [0, 4, 1, 4, 4, 4, 4, 4], [1, 2, 2, 2], {}, [2, 3])).toEqual([0, 2, 0, 0, 3, 0, 0, 0]);
  });
});
