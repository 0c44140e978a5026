// VJP rules: one small function per op type, registered by name (in the style of ONNX Runtime's
// gradient builder). A rule receives the forward node and the cotangents of its outputs and emits
// standard ONNX nodes computing the cotangents of its inputs.

import type { Builder } from '../ir/builder.js';
import type { Node, Shape } from '../ir/graph.js';

export interface VjpContext {
  /** Emits into the graph being differentiated (gradient nodes sit after the forward nodes). */
  b: Builder;
  node: Node;
  /** Cotangent of each output; undefined where an output does not reach the loss. */
  gradOutputs: (string | undefined)[];
  /** Whether input i needs a cotangent (it depends on a `wrt` value). Rules skip the rest: dead-gradient pruning. */
  needs(i: number): boolean;
  input(i: number): string;
  output(i: number): string;
  shape(name: string): Shape;
  /** The batch size the graph is planned for (GradOptions.plannedBatch), if any. */
  plannedBatch?: number;
}

/** Returns one cotangent per input (undefined for inputs that need none or are not differentiable). */
export type VjpRule = (ctx: VjpContext) => (string | undefined)[];

const rules = new Map<string, VjpRule>();
const customRules = new Map<string, VjpRule>();

export function registerVjp(ops: string | string[], rule: VjpRule): void {
  for (const op of Array.isArray(ops) ? ops : [ops]) {
    if (rules.has(op)) throw new Error(`VJP rule for ${op} registered twice`);
    rules.set(op, rule);
  }
}

export function vjpRuleFor(op: string): VjpRule | undefined {
  return rules.get(op);
}

export function registeredVjpOps(): string[] {
  return [...rules.keys()].sort();
}

/** Named custom rules, attached to single nodes through `node.meta.customVjp` (e.g. SAT's smooth ReLU backward). */
export function registerCustomVjp(name: string, rule: VjpRule): void {
  customRules.set(name, rule);
}

export function customVjp(name: string): VjpRule | undefined {
  return customRules.get(name);
}

/** Ops whose outputs are piecewise constant or integer-valued: no cotangent flows through them. */
export const NON_DIFFERENTIABLE = new Set(['Shape', 'Size', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Equal', 'Not', 'And', 'Or', 'Xor', 'ArgMax', 'ArgMin', 'OneHot', 'ConstantOfShape', 'Constant', 'Range', 'Sign', 'Floor', 'Ceil', 'Round', 'IsNaN', 'IsInf', 'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike']);
