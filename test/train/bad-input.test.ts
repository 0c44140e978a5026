// Core bad-input errors name what and where: an op without a VJP rule, a NaN/Inf during a step.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { grad } from '../../src/autodiff/grad.js';
import { newGraph } from '../../src/ir/builder.js';
import { GraphError } from '../../src/ir/graph.js';
import { parseActivation } from '../../src/models/index.js';
import { ensureArtifacts } from '../../src/train/artifacts.js';
import { initialState, ModelRuntime } from '../../src/train/runtime.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';

describe('core errors name the problem and where it is', () => {
  test('differentiating through an op without a VJP rule names the op and the node', () => {
    const { graph, b } = newGraph();
    const x = graph.addInput('x', 'float32', [4]);
    const y = graph.addNode('Sin', [x], {}, { name: 'my_sine' })[0]!;
    const loss = b.sumAll(y);
    expect(() => grad(graph, loss, [x])).toThrow(GraphError);
    expect(() => grad(graph, loss, [x])).toThrow(/no VJP rule for op Sin \(node "my_sine"\)/);
  });

  test('a NaN or Inf loss during a train step stops with a one-line error naming the step', async () => {
    const spec = { arch: 'small-cnn', numClasses: 10, inChannels: 1, imageSize: 12, width: 4, activation: parseActivation('relu'), mean: [0.3], std: [0.3] };
    const art = ensureArtifacts({ model: spec, loss: { kind: 'ce', labelSmoothing: 0 }, optimizer: { kind: 'sgd', momentum: 0.9, nesterov: false, weightDecay: 0 } }, mkdtempSync(join(tmpdir(), 'advrun-nan-')));
    const rt = new ModelRuntime(art, initialState(art.manifest, 0));
    const rng = new Rng(1);
    const x = rng.fillUniform(new Float32Array(8 * 144), 0, 1);
    x[5] = NaN; // one corrupt pixel
    const y = Int32Array.from({ length: 8 }, () => rng.int(10));
    const err = await rt.trainStep(x, y, 8, 0.1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/^loss became NaN at train step 1; lower the learning rate \(--lr\) or check the data for NaN\/Inf$/);
    await rt.release();
  });
});
