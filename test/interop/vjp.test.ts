// Differentiability of what torch.onnx.export emits for CNNs: every such op has a VJP rule (or is
// piecewise constant), the PRelu rule added for imports is checked numerically, and a PReLU slope
// that reaches PRelu through Unsqueeze (as torch exports it) is still a trainable parameter.

import { describe, expect, test } from 'vitest';
import { NON_DIFFERENTIABLE, vjpRuleFor } from '../../src/autodiff/registry.js';
import '../../src/autodiff/rules/index.js';
import { ensureImportedArtifacts } from '../../src/interop/imported-artifacts.js';
import { importOnnx } from '../../src/interop/onnx-import.js';
import { newGraph } from '../../src/ir/builder.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { graphToModelProto } from '../../src/onnx/io.js';
import { gradcheck } from '../helpers/gradcheck.js';

const TORCH_CNN_OPS = [
  'Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'BatchNormalization', 'Relu', 'LeakyRelu', 'PRelu', 'Sigmoid', 'Tanh', 'Softplus', 'Elu', 'Celu', 'Selu',
  'HardSigmoid', 'HardSwish', 'Gelu', 'Erf', 'Clip', 'Mul', 'Add', 'Sub', 'Div', 'Neg', 'Pow', 'Sqrt', 'Exp', 'Log', 'Reciprocal', 'Abs', 'Max', 'Min', 'Where',
  'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Pad', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Transpose', 'Concat', 'Split', 'Slice',
  'Gather', 'Expand', 'Tile', 'Identity', 'Cast', 'Dropout', 'ReduceMean', 'ReduceSum', 'ReduceMax', 'Softmax', 'LogSoftmax',
  'Constant', 'ConstantOfShape', 'Shape', 'Equal', 'Greater', 'Less', 'Sign', 'Floor',
];

describe('VJP coverage for imported CNNs', () => {
  test('every op torch commonly emits for CNNs is differentiable (or piecewise constant)', () => {
    const missing = TORCH_CNN_OPS.filter((op) => !vjpRuleFor(op) && !NON_DIFFERENTIABLE.has(op));
    expect(missing).toEqual([]);
  });

  test.each([[[3, 1, 1]], [[1]]])('PRelu gradient, slope %j', async (slopeShape) => {
    await gradcheck({
      inputs: [{ name: 'x', shape: [2, 3, 2, 2], init: 'awayFromZero' }, { name: 'slope', shape: slopeShape, init: 'unit' }],
      build: (b, [x, s]) => b.op('PRelu', [x!, s!]),
    });
  });

  test('a PReLU slope reaching PRelu through Unsqueeze is a trainable parameter', async () => {
    const { graph, b } = newGraph('prelu', 17);
    const x = graph.addInput('x', 'float32', ['batch', 2, 3, 3]);
    graph.addInitializer('act.weight', makeTensor('float32', [2], [0.25, 0.1]));
    graph.addInitializer('fc.weight', makeTensor('float32', [4, 18], Array.from({ length: 72 }, (_, i) => Math.cos(i))));
    const h = b.op('PRelu', [x, b.unsqueeze('act.weight', [1, 2])]);
    graph.markOutput(b.op('Gemm', [b.flatten(h), 'fc.weight'], { transB: 1 }));
    const im = await importOnnx(graphToModelProto(graph), 'prelu.onnx');
    expect(im.params.map((p) => p.name).sort()).toEqual(['act.weight', 'fc.weight']);
    const art = ensureImportedArtifacts(im, null, { train: { labelSmoothing: 0, optimizer: { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 } } });
    expect(art.manifest.feedback['act.weight']).toBe('next.act.weight');
  });
});
