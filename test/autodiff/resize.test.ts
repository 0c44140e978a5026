// Resize's VJP (A_hᵀ · dY · A_w with fixed interpolation matrices) against finite differences of ONNX
// Runtime's own Resize, for the coordinate modes exporters write; and bilinear half_pixel Resize (the
// model's --input-resize) against PyTorch's F.interpolate(mode='bilinear', align_corners=False), forward
// and input gradient (test/fixtures/torch/resize_bilinear.safetensors, from make_fixtures.py).

import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { addGradients } from '../../src/autodiff/grad.js';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { Builder } from '../../src/ir/builder.js';
import { Graph, type AttrInput } from '../../src/ir/graph.js';
import { makeTensor, toNumbers } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { gradcheck } from '../helpers/gradcheck.js';

type Attrs = Record<string, AttrInput | undefined>;

/** Resize to `sizes` (or by `scales`), with the given attributes. */
function resize(b: Builder, x: string, attrs: Attrs, target: { sizes?: number[]; scales?: number[] }): string {
  const scales = target.scales ? b.constant(makeTensor('float32', [target.scales.length], target.scales)) : '';
  const sizes = target.sizes ? b.ints(target.sizes) : '';
  return b.op('Resize', sizes ? [x, '', '', sizes] : [x, '', scales], attrs);
}

function check(shape: number[], attrs: Attrs, target: { sizes?: number[]; scales?: number[] }, graphShape?: (number | string)[]) {
  return gradcheck({ inputs: [{ name: 'x', shape, graphShape }], build: (b, [x]) => resize(b, x!, attrs, target) });
}

const BILINEAR = { mode: 'linear', coordinate_transformation_mode: 'half_pixel' };

describe('Resize VJP', () => {
  test('bilinear half_pixel upsampling by a non-integer factor (torch align_corners=False)', async () => {
    await check([2, 3, 4, 5], BILINEAR, { sizes: [2, 3, 7, 9] });
  });

  test('bilinear downsampling, and H and W changed independently', async () => {
    await check([1, 2, 6, 6], BILINEAR, { sizes: [1, 2, 4, 3] });
    await check([1, 2, 3, 4], BILINEAR, { sizes: [1, 2, 3, 7] });
    await check([1, 2, 3, 4], BILINEAR, { sizes: [1, 2, 5, 4] });
  });

  test('pytorch_half_pixel, align_corners and asymmetric coordinates', async () => {
    for (const c of ['pytorch_half_pixel', 'align_corners', 'asymmetric']) {
      await check([1, 2, 3, 4], { mode: 'linear', coordinate_transformation_mode: c }, { sizes: [1, 2, 5, 6] });
    }
  });

  test('nearest (floor/asymmetric as torch exports it, and the ONNX default round_prefer_floor)', async () => {
    await check([1, 2, 3, 4], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, { sizes: [1, 2, 6, 8] });
    await check([1, 2, 4, 4], { mode: 'nearest' }, { sizes: [1, 2, 7, 3] });
  });

  test('scales instead of sizes, and a symbolic batch dimension', async () => {
    await check([2, 2, 3, 3], BILINEAR, { scales: [1, 1, 2, 2.5] });
    await check([3, 2, 4, 4], BILINEAR, { scales: [1, 1, 2, 2] }, ['N', 2, 4, 4]);
  });

  test('rank 3: only the last axis is resized', async () => {
    await check([2, 3, 5], BILINEAR, { sizes: [2, 3, 8] });
  });

  test('second order: the gradient is differentiable (its MatMuls have rules)', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [1, 1, 3, 3] }],
      build: (b, [x]) => {
        const y = resize(b, x!, BILINEAR, { sizes: [1, 1, 5, 5] });
        const loss = b.sumAll(b.mul(y, y));
        return addGradients(b.graph, loss, [x!])[x!]!;
      },
    });
  });

  test('unsupported modes are named when differentiating', () => {
    const g = new Graph('cubic', 17);
    const b = new Builder(g);
    const x = g.addInput('x', 'float32', [1, 1, 3, 3]);
    const y = resize(b, x, { mode: 'cubic' }, { sizes: [1, 1, 6, 6] });
    expect(g.shape(y)).toEqual([1, 1, 6, 6]); // the shape is known whatever the mode
    expect(() => addGradients(g, b.sumAll(y), [x])).toThrow(/Resize mode "cubic" is not supported/);
  });
});

describe('bilinear Resize matches PyTorch F.interpolate(align_corners=False)', () => {
  const fix = readSafetensors(join(import.meta.dirname, '..', 'fixtures', 'torch', 'resize_bilinear.safetensors')).tensors;
  const maxDiff = (a: ArrayLike<number>, b: number[]) => b.reduce((m, v, i) => Math.max(m, Math.abs(Number(a[i]) - v)), 0);

  test.each(['up7', 'odd', 'down'])('%s: output and d sum(y*r)/dx', async (name) => {
    const x = fix.get(`${name}.x`)!, r = fix.get(`${name}.r`)!;
    const g = new Graph('resize', 17);
    const b = new Builder(g);
    const xi = g.addInput('x', 'float32', x.dims);
    const y = resize(b, xi, BILINEAR, { sizes: r.dims });
    const loss = b.sumAll(b.mul(y, b.constant(r)));
    const grad = addGradients(g, loss, [xi])[xi]!;
    g.outputs = [y, grad];
    const run = await CompiledGraph.create(g);
    const out = await run.runTensors({ x });
    await run.release();
    expect(out[y]!.dims).toEqual(r.dims);
    expect(maxDiff(out[y]!.data as Float32Array, toNumbers(fix.get(`${name}.y`)!))).toBeLessThan(1e-6);
    expect(maxDiff(out[grad]!.data as Float32Array, toNumbers(fix.get(`${name}.grad_x`)!))).toBeLessThan(1e-5);
  });
});
