// small-cnn: three conv-BN-activation stages and a linear head, for quick CPU work and tests.
// Mirrors test/fixtures/torch/make_fixtures.py's SmallCNN parameter for parameter.

import type { ModelBuilder } from './layers.js';
import type { ModelSpec } from './spec.js';

export function buildSmallCnn(m: ModelBuilder, x: string, spec: ModelSpec): string {
  const b = m.b;
  const w = spec.width ?? 16;
  const maxpool = (v: string) => b.op('MaxPool', [v], { kernel_shape: [2, 2], strides: [2, 2] });
  let h = m.normalize(x, spec.mean, spec.std);
  h = maxpool(m.act(m.batchNorm(m.conv(h, 'conv1', spec.inChannels, w, 3, { pad: 1 }), 'bn1', w), 'act1'));
  h = maxpool(m.act(m.batchNorm(m.conv(h, 'conv2', w, 2 * w, 3, { pad: 1 }), 'bn2', 2 * w), 'act2'));
  h = m.act(m.batchNorm(m.conv(h, 'conv3', 2 * w, 4 * w, 3, { pad: 1 }), 'bn3', 4 * w), 'act3');
  h = b.flatten(b.op('GlobalAveragePool', [h]));
  return m.linear(h, 'fc', 4 * w, spec.numClasses);
}
