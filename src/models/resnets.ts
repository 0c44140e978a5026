// The residual networks researchers' checkpoints use, with their PyTorch parameter names:
// - preact-resnet18: the "Bag of tricks" / Rice et al. / RobustBench PreActResNet-18
//   (conv1, layer1..4 of PreActBlocks with bn1/conv1/bn2/conv2/shortcut.0, bn, linear);
// - wrn: RobustBench's WideResNet (conv1, block1..3.layer.<i> with bn1/conv1/bn2/conv2/convShortcut, bn1, fc);
// - resnet50: torchvision's ResNet-50 (v1.5: stride on the 3x3 conv; downsample.0/1).
// Every ReLU position takes the model's activation (SAT swaps it).

import type { ModelBuilder } from './layers.js';
import type { ModelSpec } from './spec.js';

function head(m: ModelBuilder, h: string, name: string, fin: number, classes: number, opts: { zeroBias?: boolean } = {}): string {
  return m.linear(m.b.flatten(m.b.op('GlobalAveragePool', [h])), name, fin, classes, opts);
}

function preActBlock(m: ModelBuilder, x: string, name: string, cin: number, planes: number, stride: number): string {
  const out = m.act(m.batchNorm(x, `${name}.bn1`, cin), `${name}.act1`);
  const shortcut = stride !== 1 || cin !== planes ? m.conv(out, `${name}.shortcut.0`, cin, planes, 1, { stride }) : x;
  let h = m.conv(out, `${name}.conv1`, cin, planes, 3, { stride, pad: 1 });
  h = m.conv(m.act(m.batchNorm(h, `${name}.bn2`, planes), `${name}.act2`), `${name}.conv2`, planes, planes, 3, { pad: 1 });
  return m.b.add(h, shortcut);
}

export function buildPreActResNet18(m: ModelBuilder, x: string, spec: ModelSpec): string {
  const w = spec.width ?? 64;
  let h = m.conv(m.normalize(x, spec.mean, spec.std), 'conv1', spec.inChannels, w, 3, { pad: 1 });
  let cin = w;
  [w, 2 * w, 4 * w, 8 * w].forEach((planes, li) => {
    for (let bi = 0; bi < 2; bi++) {
      h = preActBlock(m, h, `layer${li + 1}.${bi}`, cin, planes, bi === 0 && li > 0 ? 2 : 1);
      cin = planes;
    }
  });
  h = m.act(m.batchNorm(h, 'bn', cin), 'act');
  return head(m, h, 'linear', cin, spec.numClasses);
}

function wideBlock(m: ModelBuilder, x: string, name: string, cin: number, cout: number, stride: number): string {
  const equal = cin === cout;
  const pre = m.act(m.batchNorm(x, `${name}.bn1`, cin), `${name}.relu1`);
  let h = m.conv(pre, `${name}.conv1`, cin, cout, 3, { stride, pad: 1 });
  h = m.act(m.batchNorm(h, `${name}.bn2`, cout), `${name}.relu2`);
  h = m.conv(h, `${name}.conv2`, cout, cout, 3, { pad: 1 });
  // RobustBench's block: when widths differ, the shortcut also starts from relu(bn1(x)).
  const shortcut = equal ? x : m.conv(pre, `${name}.convShortcut`, cin, cout, 1, { stride });
  return m.b.add(shortcut, h);
}

export function buildWideResNet(m: ModelBuilder, x: string, spec: ModelSpec): string {
  const depth = spec.depth ?? 28, k = spec.width ?? 10;
  if ((depth - 4) % 6 !== 0) throw new Error(`WideResNet depth must be 6n+4, got ${depth}`);
  const n = (depth - 4) / 6;
  const ch = [16, 16 * k, 32 * k, 64 * k];
  m.convInit = 'fan-out-normal'; // RobustBench's WideResNet: conv N(0, 2/(k*k*cout)), fc bias 0
  let h = m.conv(m.normalize(x, spec.mean, spec.std), 'conv1', spec.inChannels, ch[0]!, 3, { pad: 1 });
  for (let blk = 1; blk <= 3; blk++) {
    for (let i = 0; i < n; i++) {
      h = wideBlock(m, h, `block${blk}.layer.${i}`, i === 0 ? ch[blk - 1]! : ch[blk]!, ch[blk]!, i === 0 && blk > 1 ? 2 : 1);
    }
  }
  h = m.act(m.batchNorm(h, 'bn1', ch[3]!), 'relu');
  return head(m, h, 'fc', ch[3]!, spec.numClasses, { zeroBias: true });
}

function bottleneck(m: ModelBuilder, x: string, name: string, cin: number, planes: number, stride: number): string {
  const cout = planes * 4;
  let h = m.act(m.batchNorm(m.conv(x, `${name}.conv1`, cin, planes, 1), `${name}.bn1`, planes), `${name}.act1`);
  h = m.act(m.batchNorm(m.conv(h, `${name}.conv2`, planes, planes, 3, { stride, pad: 1 }), `${name}.bn2`, planes), `${name}.act2`);
  h = m.batchNorm(m.conv(h, `${name}.conv3`, planes, cout, 1), `${name}.bn3`, cout);
  const shortcut = stride !== 1 || cin !== cout ? m.batchNorm(m.conv(x, `${name}.downsample.0`, cin, cout, 1, { stride }), `${name}.downsample.1`, cout) : x;
  return m.act(m.b.add(h, shortcut), `${name}.act3`);
}

export function buildResNet50(m: ModelBuilder, x: string, spec: ModelSpec): string {
  const w = spec.width ?? 64;
  m.convInit = 'fan-out-normal'; // torchvision's ResNet: kaiming_normal_(mode='fan_out', nonlinearity='relu')
  let h = m.conv(m.normalize(x, spec.mean, spec.std), 'conv1', spec.inChannels, w, 7, { stride: 2, pad: 3 });
  h = m.act(m.batchNorm(h, 'bn1', w), 'act1');
  h = m.b.op('MaxPool', [h], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let cin = w;
  [3, 4, 6, 3].forEach((blocks, li) => {
    const planes = w * 2 ** li;
    for (let bi = 0; bi < blocks; bi++) {
      h = bottleneck(m, h, `layer${li + 1}.${bi}`, cin, planes, bi === 0 && li > 0 ? 2 : 1);
      cin = planes * 4;
    }
  });
  return head(m, h, 'fc', cin, spec.numClasses);
}
