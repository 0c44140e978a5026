// SGD with momentum, Nesterov and L2 (PyTorch-style, coupled) weight decay, in-graph:
// every parameter and momentum buffer goes in as an input and comes out updated.
//
// PyTorch's torch.optim.SGD (dampening 0):  g = grad + wd * w;  buf = mu * buf + g;
// step = nesterov ? g + mu * buf : buf;  w = w - lr * step.  (buf starts at zero, so the first
// step's buf equals g exactly as PyTorch's clone-on-first-step.)

import type { Builder } from '../ir/builder.js';
import { NODE_PHASE } from '../ir/graph.js';
import type { ParamInfo } from '../models/layers.js';
import { UserError } from '../util/errors.js';

export interface SgdConfig {
  kind: 'sgd';
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /**
   * Which parameters weight decay applies to: every one (PyTorch's single param group; the default) or
   * 'weights', conv and linear weights only (no BN affine, no biases), SAT's ImageNet recipe.
   */
  decayScope?: DecayScope;
}

/** SGD settings as every entry point (train, grids, graphs, bench) accepts them; one-line errors otherwise. */
export function sgdConfig(o: { momentum: number; nesterov: boolean; weightDecay: number }): SgdConfig {
  if (!(o.momentum >= 0 && o.momentum < 1)) throw new UserError(`--momentum must be in [0, 1), got ${o.momentum}`);
  if (o.nesterov && o.momentum === 0) throw new UserError('--nesterov needs a non-zero --momentum');
  if (!(o.weightDecay >= 0)) throw new UserError(`--weight-decay must be >= 0, got ${o.weightDecay}`);
  return { kind: 'sgd', momentum: o.momentum, nesterov: o.nesterov, weightDecay: o.weightDecay };
}

export const DECAY_SCOPES = ['all', 'weights'] as const;
export type DecayScope = (typeof DECAY_SCOPES)[number];

/** Whether weight decay applies to a parameter under `scope`. */
export function decays(p: ParamInfo, scope: DecayScope = 'all'): boolean {
  return p.decay && (scope === 'all' || p.kind === 'weight');
}

export const momentumName = (param: string) => `momentum.${param}`;
export const nextName = (state: string) => `next.${state}`;

/** Emit the update for each parameter; returns state input -> updated output names. */
export function emitSgdUpdate(b: Builder, params: ParamInfo[], grads: Record<string, string>, lr: string, cfg: SgdConfig): Record<string, string> {
  const g = b.graph;
  const firstNode = g.nodes.length;
  const feedback: Record<string, string> = {};
  for (const p of params) {
    let grad = grads[p.name]!;
    if (cfg.weightDecay !== 0 && decays(p, cfg.decayScope)) grad = b.add(grad, b.scale(p.name, cfg.weightDecay));
    let step = grad;
    if (cfg.momentum !== 0) {
      const buf = g.addInput(momentumName(p.name), 'float32', g.shape(p.name));
      const newBuf = b.add(b.scale(buf, cfg.momentum), grad);
      feedback[buf] = output(b, newBuf, nextName(buf));
      step = cfg.nesterov ? b.add(grad, b.scale(newBuf, cfg.momentum)) : newBuf;
    }
    feedback[p.name] = output(b, b.sub(p.name, b.mul(lr, step)), nextName(p.name));
  }
  g.tagNodesSince(firstNode, NODE_PHASE.update);
  return feedback;
}

/** Give a value a fixed output name (an Identity node) and mark it as a graph output. */
export function output(b: Builder, value: string, name: string): string {
  b.graph.addNode('Identity', [value], {}, { outputs: [name] });
  b.graph.markOutput(name);
  return name;
}
