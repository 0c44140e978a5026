import { describe, expect, test } from 'vitest';
import { makeTensor } from '../../src/ir/tensor.js';
import { gradcheck, gradientAt } from '../helpers/gradcheck.js';

const BIG = 2 ** 62; // "to the end", as exporters write INT64_MAX

describe('shape VJP rules', () => {
  test('Reshape, Flatten, Transpose (explicit and default perm)', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3, 4] }],
      build: (b, [x]) => [b.reshape(x!, [6, -1]), b.flatten(x!, 2), b.transpose(x!, [2, 0, 1]), b.op('Transpose', [x!])],
    });
  });

  test('Squeeze and Unsqueeze with axes as inputs, and Squeeze without axes', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 1, 3, 1] }],
      build: (b, [x]) => [b.squeeze(x!, [1]), b.op('Squeeze', [x!]), b.unsqueeze(x!, [0, -1])],
    });
  });

  test('Squeeze and Unsqueeze with axes as attributes (opset 11)', async () => {
    await gradcheck({
      opset: 11,
      inputs: [{ name: 'x', shape: [2, 1, 3] }],
      build: (b, [x]) => [b.op('Squeeze', [x!], { axes: [1] }), b.op('Unsqueeze', [x!], { axes: [0, 3] })],
    });
  });

  test('Reshape and Flatten with a symbolic batch dimension', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 2, 4], graphShape: ['N', 2, 4] }],
      // Squared outputs make the cotangent depend on the data, so misrouted rows would show along N too.
      build: (b, [x]) => [b.reshape(x!, [0, -1]), b.flatten(x!, 1), b.unsqueeze(x!, [1])].map((y) => b.mul(y, y)),
    });
  });

  test('Concat of three inputs, one constant, along axis 1 and -1', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [2, 3, 2] }, { name: 'b', shape: [2, 1, 2] }, { name: 'c', shape: [2, 2, 2], wrt: false }],
      build: (b, xs) => [b.concat(xs, 1), b.op('Concat', [xs[0]!, xs[0]!, xs[1]!], { axis: 1 }), b.op('Concat', [xs[2]!, xs[0]!], { axis: -2 })],
    });
  });

  test('Concat along a symbolic axis (clean + adversarial batches)', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [2, 3], graphShape: ['N', 3] }, { name: 'b', shape: [3, 3], graphShape: ['M', 3] }],
      build: (b, [x, y]) => { const c = b.concat([x!, y!], 0); return b.mul(c, c); },
    });
  });

  const sliceCases: [string, number[], number[], number[], number[] | undefined][] = [
    ['unit steps, negative starts/ends', [1, -4], [4, -1], [0, 1], undefined],
    ['clamped ends, axis omitted', [0, 2], [BIG, BIG], [0, 1], [1, 1]],
    ['step 2', [0], [BIG], [1], [2]],
    ['step 3 from an offset, with a unit-step axis', [1, 1], [5, 6], [1, 0], [3, 1]],
    ['step -1 (reverse)', [-1], [-BIG], [1], [-1]],
    ['step -2 on two axes', [4, 5], [-BIG, 0], [0, 1], [-2, -2]],
    ['negative axis', [1], [3], [-1], [1]],
  ];
  for (const [label, starts, ends, axes, steps] of sliceCases) {
    test(`Slice: ${label}`, async () => {
      await gradcheck({ inputs: [{ name: 'x', shape: [5, 6] }], build: (b, [x]) => b.slice(x!, starts, ends, axes, steps) });
    });
  }

  test('Slice with starts/ends inputs only, and an empty slice', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [4, 5] }],
      build: (b, [x]) => [b.op('Slice', [x!, b.ints([1, 1]), b.ints([3, 4])]), b.add(b.sumAll(b.slice(x!, [3], [1], [0])), b.sumAll(x!))],
    });
  });

  test('Slice with attributes (opset 9)', async () => {
    await gradcheck({ opset: 9, inputs: [{ name: 'x', shape: [4, 5] }], build: (b, [x]) => b.op('Slice', [x!], { starts: [1, -3], ends: [3, BIG], axes: [0, 1] }) });
  });

  test('stepped Slice with a symbolic batch dimension', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 6], graphShape: ['N', 6] }],
      build: (b, [x]) => b.mul(b.slice(x!, [5, 0], [0, BIG], [1, 0], [-2, 1]), b.constant(makeTensor('float64', [3], [1, -2, 0.5]))),
    });
  });

  for (const opset of [17, 13]) {
    test(`Gather with repeated and negative indices accumulates (opset ${opset})`, async () => {
      await gradcheck({
        opset,
        inputs: [{ name: 'x', shape: [4, 3] }, { name: 'i', shape: [5], init: [2, 0, 2, -1, 2], int64: true }],
        build: (b, [x, i]) => b.op('Gather', [x!, i!], { axis: 0 }),
      });
    });
    test(`Gather along axis 1 with 2-D and scalar indices (opset ${opset})`, async () => {
      await gradcheck({
        opset,
        inputs: [{ name: 'x', shape: [2, 4, 3] }, { name: 'i', shape: [2, 2], init: [3, 1, 1, 0], int64: true }, { name: 'j', shape: [], init: [-2], int64: true }],
        build: (b, [x, i, j]) => [b.op('Gather', [x!, i!], { axis: 1 }), b.op('Gather', [x!, j!], { axis: 1 })],
      });
    });
  }

  test('Gather gradient values: repeated indices add up', async () => {
    const { grads } = await gradientAt({
      inputs: [{ name: 'x', shape: [3], init: [1, 2, 3] }, { name: 'i', shape: [4], init: [2, 2, 0, 2], int64: true }],
      build: (b, [x, i]) => b.op('Gather', [x!, i!]),
      cotangent: [1, 10, 100, 1000],
    });
    expect(grads.x).toEqual([100, 0, 1011]);
  });

  test('Gather of embedding rows for a symbolic batch of indices', async () => {
    await gradcheck({
      inputs: [{ name: 'w', shape: [5, 2] }, { name: 'i', shape: [3, 2], graphShape: ['N', 2], init: [4, 0, 4, 1, 0, 0], int64: true }],
      build: (b, [w, i]) => { const e = b.op('Gather', [w!, i!]); return b.mul(e, e); },
    });
  });

  test('Pad (constant) with positive, negative and axes-restricted pads', async () => {
    await gradcheck({
      opset: 18,
      inputs: [{ name: 'x', shape: [2, 3, 4] }],
      build: (b, [x]) => [
        b.op('Pad', [x!, b.ints([0, 1, 2, 1, 0, 3])]),
        b.op('Pad', [x!, b.ints([1, -1, 0, -1, 2, 1])], { mode: 'constant' }),
        b.op('Pad', [x!, b.ints([2, 1]), '', b.ints([-1])]),
      ],
    });
  });

  test('Pad constant_value as a graph value gets the sum over the border', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3] }, { name: 'v', shape: [], init: [0.5] }],
      build: (b, [x, v]) => b.op('Pad', [x!, b.ints([1, 0, 0, 2]), v!]),
    });
  });

  test('Pad with attributes (opset 10)', async () => {
    await gradcheck({ opset: 10, inputs: [{ name: 'x', shape: [2, 3] }], build: (b, [x]) => b.op('Pad', [x!], { pads: [1, 0, 0, 2] }) });
  });

  test('Pad in edge or reflect mode is refused with a clear error', async () => {
    for (const mode of ['edge', 'reflect']) {
      await expect(gradcheck({ inputs: [{ name: 'x', shape: [2, 3] }], build: (b, [x]) => b.op('Pad', [x!, b.ints([0, 1, 0, 1])], { mode }) }))
        .rejects.toThrow(new RegExp(`Pad mode "${mode}" is not differentiable in advrun`));
    }
  });

  test('Expand with new leading axes and size-1 axes', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [3, 1] }, { name: 'y', shape: [4] }],
      build: (b, [x, y]) => [b.op('Expand', [x!, b.ints([2, 3, 4])]), b.op('Expand', [y!, b.ints([2, 1])])],
    });
  });

  test('Tile along one, the other and both axes', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3] }],
      build: (b, [x]) => [b.op('Tile', [x!, b.ints([2, 1])]), b.op('Tile', [x!, b.ints([1, 3])]), b.op('Tile', [x!, b.ints([3, 2])]), b.op('Tile', [x!, b.ints([1, 1])])],
    });
  });

  test('Tile with a symbolic batch dimension', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3], graphShape: ['N', 3] }],
      build: (b, [x]) => b.mul(b.op('Tile', [x!, b.ints([1, 2])]), b.constant(makeTensor('float64', [6], [1, -1, 2, 0.5, 3, -2]))),
    });
  });

  test('Split with sizes, some outputs unused (opset 13)', async () => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 6] }],
      build: (b, [x]) => {
        const [p, , r] = b.graph.addNode('Split', [x!, b.ints([1, 2, 3])], { axis: 1 }, { outputs: 3 });
        return [p!, b.mul(r!, r!)];
      },
    });
  });

  test('Split with num_outputs into uneven parts (opset 18)', async () => {
    await gradcheck({
      opset: 18,
      inputs: [{ name: 'x', shape: [5, 2] }],
      build: (b, [x]) => {
        const parts = b.graph.addNode('Split', [x!], { axis: 0, num_outputs: 2 }, { outputs: 2 });
        expect(parts.map((p) => b.shape(p))).toEqual([[3, 2], [2, 2]]);
        return parts;
      },
    });
  });
});
