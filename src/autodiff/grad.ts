// Reverse-mode autodiff over the IR. Gradients are appended to the graph as standard ONNX nodes,
// so the result runs on any ONNX Runtime build and execution provider.
//
// Only nodes that lie on a path from a `wrt` value to the loss are differentiated, and a rule is told
// which of its inputs need cotangents: an input-gradient graph computes no weight gradients and vice versa.

import { Builder } from '../ir/builder.js';
import { Graph, GraphError, NODE_PHASE, type Node } from '../ir/graph.js';
import { makeTensor, type DType } from '../ir/tensor.js';
import { customVjp, NON_DIFFERENTIABLE, vjpRuleFor, type VjpContext, type VjpRule } from './registry.js';
import './rules/index.js';

export interface GradOptions {
  /** Rules to use instead of the registered ones, by op type, for this gradient only (e.g. SAT's attacker-only smooth backward). */
  overrides?: Record<string, VjpRule>;
  /** Cotangent of the loss; defaults to ones (the loss is usually a scalar). */
  seed?: string;
  /**
   * The batch size the graph will mostly run with. The batch stays symbolic and every batch size gets the
   * same gradient; rules only use it to plan work in cache-sized pieces (the Conv weight gradient builds its
   * columns a few images at a time, rules/conv.ts).
   */
  plannedBatch?: number;
}

const FLOAT_DTYPES = new Set<DType>(['float32', 'float64', 'float16']);

function isFloat(g: Graph, name: string): boolean {
  return FLOAT_DTYPES.has(g.type(name).dtype);
}

/** Values that depend (differentiably) on any of `wrt`. */
function forwardReach(g: Graph, wrt: string[]): Set<string> {
  const reached = new Set(wrt);
  for (const n of g.nodes) {
    if (n.meta?.stopGradient || NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((i) => i && reached.has(i))) for (const o of n.outputs) if (o && isFloat(g, o)) reached.add(o);
  }
  return reached;
}

/** Values the loss depends on. */
function backwardReach(g: Graph, loss: string): Set<string> {
  const needed = new Set([loss]);
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k]!;
    if (n.outputs.some((o) => needed.has(o))) for (const i of n.inputs) if (i) needed.add(i);
  }
  return needed;
}

/**
 * Append to `g` the nodes computing d(loss)/d(w) for every w in `wrt` (graph inputs, initializers or
 * intermediate values). Returns the gradient value names; a w the loss does not depend on gets zeros.
 */
export function addGradients(g: Graph, loss: string, wrt: string[], opts: GradOptions = {}): Record<string, string> {
  const b = new Builder(g);
  const firstNode = g.nodes.length;
  for (const w of wrt) {
    if (!g.types.has(w)) throw new GraphError(`cannot differentiate with respect to "${w}": no such value in graph "${g.name}"`);
    if (!isFloat(g, w)) throw new GraphError(`cannot differentiate with respect to "${w}": it is ${g.type(w).dtype}, not floating point`);
  }
  const reached = forwardReach(g, wrt);
  const needed = backwardReach(g, loss);
  const active = g.nodes.filter((n) => n.outputs.some((o) => o && reached.has(o) && needed.has(o)));

  const contributions = new Map<string, string[]>();
  const push = (name: string, ct: string) => {
    const list = contributions.get(name);
    if (list) list.push(ct);
    else contributions.set(name, [ct]);
  };
  const total = (name: string): string | undefined => {
    const list = contributions.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) contributions.set(name, [b.sum(list)]);
    return contributions.get(name)![0];
  };

  const lossType = g.type(loss);
  if (!isFloat(g, loss)) throw new GraphError(`loss "${loss}" is ${lossType.dtype}, not floating point`);
  push(loss, opts.seed ?? seedOnes(b, loss));

  for (let k = active.length - 1; k >= 0; k--) {
    const node = active[k]!;
    const gradOutputs = node.outputs.map((o) => (o ? total(o) : undefined));
    if (gradOutputs.every((x) => x === undefined)) continue;
    const rule = pickRule(node, opts);
    const ctx: VjpContext = {
      b,
      node,
      gradOutputs,
      needs: (i) => { const n = node.inputs[i]; return !!n && reached.has(n) && isFloat(g, n); },
      input: (i) => node.inputs[i]!,
      output: (i) => node.outputs[i]!,
      shape: (name) => g.shape(name),
      plannedBatch: opts.plannedBatch,
    };
    let inputGrads: (string | undefined)[];
    try {
      inputGrads = rule(ctx);
    } catch (e) {
      throw new GraphError(`VJP of ${node.op} node "${node.name}": ${(e as Error).message}`);
    }
    inputGrads.forEach((ct, i) => {
      if (!ct || !ctx.needs(i)) return;
      checkCotangentShape(g, node, i, ct);
      push(node.inputs[i]!, ct);
    });
  }

  const out: Record<string, string> = {};
  for (const w of wrt) out[w] = total(w) ?? b.zerosLike(w);
  g.tagNodesSince(firstNode, NODE_PHASE.backward);
  return out;
}

function pickRule(node: Node, opts: GradOptions): VjpRule {
  if (node.meta?.customVjp) {
    const r = customVjp(node.meta.customVjp);
    if (!r) throw new GraphError(`node "${node.name}" asks for custom VJP "${node.meta.customVjp}", which is not registered`);
    return r;
  }
  const r = opts.overrides?.[node.op] ?? vjpRuleFor(node.op);
  if (!r) throw new GraphError(`no VJP rule for op ${node.op} (node "${node.name}"); advrun cannot differentiate through it`);
  return r;
}

function seedOnes(b: Builder, loss: string): string {
  const t = b.graph.type(loss);
  if (t.shape && t.shape.every((d) => typeof d === 'number')) {
    const dims = t.shape as number[];
    return b.constant(makeTensor(t.dtype, dims, new Array(dims.reduce((a, c) => a * c, 1)).fill(1)));
  }
  return b.add(b.zerosLike(loss), b.scalar(1, t.dtype));
}

function checkCotangentShape(g: Graph, node: Node, i: number, ct: string): void {
  const want = g.type(node.inputs[i]!).shape, got = g.type(ct).shape;
  if (!want || !got) return;
  const bad = want.length !== got.length || want.some((d, j) => typeof d === 'number' && typeof got[j] === 'number' && d !== got[j]);
  if (bad) throw new GraphError(`VJP rule for ${node.op} (node "${node.name}") produced a cotangent of shape [${got}] for input ${i} of shape [${want}]`);
}

export interface GradResult {
  graph: Graph;
  /** wrt value name -> output name of its gradient (`grad_<name>`). */
  grads: Record<string, string>;
}

/**
 * `grad(graph, loss, wrt)`: a copy of `graph` that also outputs d(loss)/d(w) as `grad_<w>` for each w.
 * The original outputs (and the loss, if not already one) stay outputs.
 */
export function grad(graph: Graph, loss: string, wrt: string[], opts: GradOptions = {}): GradResult {
  const g = graph.clone();
  const raw = addGradients(g, loss, wrt, opts);
  const grads: Record<string, string> = {};
  g.markOutput(loss);
  for (const w of wrt) {
    const name = `grad_${w}`;
    g.addNode('Identity', [raw[w]!], {}, { outputs: [name] });
    g.markOutput(name);
    grads[w] = name;
  }
  return { graph: g, grads };
}
