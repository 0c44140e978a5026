// Shape inference: one rule per op type, registered by name (rules live in ./shapes/*.ts).

import type { Graph, Node, ValueType } from './graph.js';

export interface ShapeContext {
  graph: Graph;
  node: Node;
  /** Input types in order; undefined for omitted optional inputs. */
  inputs: (ValueType | undefined)[];
}

export type ShapeRule = (ctx: ShapeContext) => ValueType[];

const rules = new Map<string, ShapeRule>();

export function registerShape(ops: string | string[], rule: ShapeRule): void {
  for (const op of Array.isArray(ops) ? ops : [ops]) rules.set(op, rule);
}

export function hasShapeRule(op: string): boolean {
  return rules.has(op);
}

export function inferShapes(graph: Graph, node: Node): ValueType[] {
  const inputs = node.inputs.map((i) => (i === '' ? undefined : graph.type(i)));
  const rule = rules.get(node.op);
  // Ops without a rule (rare ops in imported models) keep their first input's dtype and an unknown shape;
  // anything that needs the shape later reports it by name.
  if (!rule) return node.outputs.map(() => ({ dtype: inputs[0]?.dtype ?? 'float32', shape: null }));
  return rule({ graph, node, inputs });
}
