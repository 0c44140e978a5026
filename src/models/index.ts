// Model registry: architecture name -> graph builder. Every model takes [N, C, H, W] images in [0,1]
// named "input" and outputs "logits" [N, classes]; parameters are initializers named like PyTorch's.

import type { Graph } from '../ir/graph.js';
import { UserError } from '../util/errors.js';
import { ModelBuilder, type BnMode, type ParamInfo } from './layers.js';
import { buildPreActResNet18, buildResNet50, buildWideResNet } from './resnets.js';
import { buildSmallCnn } from './small-cnn.js';
import type { ModelSpec } from './spec.js';

export type { ModelSpec } from './spec.js';
export { parseActivation, activationName, type Activation } from './activations.js';

type ArchBuilder = (m: ModelBuilder, input: string, spec: ModelSpec) => string;

const ARCHS = new Map<string, ArchBuilder>([
  ['small-cnn', buildSmallCnn],
  ['preact-resnet18', buildPreActResNet18],
  ['wrn', buildWideResNet],
  ['wrn-28-10', (m, x, spec) => buildWideResNet(m, x, { ...spec, depth: spec.depth ?? 28, width: spec.width ?? 10 })],
  ['resnet50', buildResNet50],
]);

export function registerArch(name: string, build: ArchBuilder): void {
  ARCHS.set(name, build);
}

export function archNames(): string[] {
  return [...ARCHS.keys()].sort();
}

export interface BuiltModel {
  /** Parameters and buffers are initializers holding their initial values. */
  graph: Graph;
  input: string;
  logits: string;
  params: ParamInfo[];
  buffers: string[];
  /** Train mode only: buffer -> value of its update after the forward pass(es). */
  bufferUpdates: Record<string, string>;
}

/**
 * A model graph that may hold several forward passes over the same parameters (e.g. TRADES' clean and
 * adversarial passes): call forward() once per pass; parameters are created on the first.
 */
export class ModelGraph {
  readonly m: ModelBuilder;
  private readonly arch: ArchBuilder;

  constructor(readonly spec: ModelSpec, seed: number) {
    const arch = ARCHS.get(spec.arch);
    if (!arch) throw new UserError(`unknown architecture "${spec.arch}"; available: ${archNames().join(', ')}`);
    this.arch = arch;
    this.m = new ModelBuilder(spec.arch, 'eval', seed, spec.activation);
  }

  get graph(): Graph {
    return this.m.graph;
  }

  imageInput(name = 'input'): string {
    const s = this.spec;
    return this.graph.addInput(name, 'float32', ['N', s.inChannels, s.imageSize, s.imageSize]);
  }

  /** Logits of one forward pass over `x` with BN in `bnMode`. */
  forward(x: string, bnMode: BnMode): string {
    this.m.bnMode = bnMode;
    const s = this.spec;
    const input = s.inputResize ? this.m.resizeInput(x, s.imageSize, s.inputResize) : x;
    return this.arch(this.m, input, s);
  }
}

/** The usual single-pass model: input "input" -> output "logits". */
export function buildModel(spec: ModelSpec, opts: { bnMode: BnMode; seed: number }): BuiltModel {
  const mg = new ModelGraph(spec, opts.seed);
  const input = mg.imageInput();
  const g = mg.graph;
  g.addNode('Identity', [mg.forward(input, opts.bnMode)], {}, { outputs: ['logits'] });
  g.outputs = ['logits'];
  return { graph: g, input, logits: 'logits', params: mg.m.params, buffers: mg.m.buffers, bufferUpdates: mg.m.bufferUpdates };
}
