// The graph IR: a list of ONNX nodes in topological order over named values, with every value's
// dtype and shape tracked as nodes are added (shape inference rules live in ./shapes/).
// It mirrors ONNX's GraphProto closely so that serialisation is a direct mapping.

import { type DType, type Tensor } from './tensor.js';
import { inferShapes } from './shape-registry.js';

/** Node-name prefixes of the generated backward and optimizer-update nodes (untagged nodes are forward). */
export const NODE_PHASE = { backward: 'bwd', update: 'upd' } as const;
export type NodePhase = (typeof NODE_PHASE)[keyof typeof NODE_PHASE];

/** A dimension: a number when static, a name (e.g. "N") when symbolic. */
export type Dim = number | string;
export type Shape = Dim[];

export interface ValueType {
  dtype: DType;
  /** null when the rank is unknown (only for ops without a shape rule). */
  shape: Shape | null;
}

export type Attr =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor };

/** What builders may pass: plain values are typed by ONNX's conventions (see FLOAT_ATTRS). */
export type AttrInput = number | number[] | string | string[] | Tensor | Attr;

/** Attribute names that ONNX defines as FLOAT(S) for the ops advrun emits; every other number is an INT. */
const FLOAT_ATTRS = new Set(['alpha', 'beta', 'epsilon', 'momentum', 'gamma', 'lambd', 'bias', 'min', 'max', 'ratio', 'scale', 'seed', 'mean', 'high', 'low', 'value_float', 'value_floats', 'extrapolation_value', 'cubic_coeff_a']);

export interface NodeMeta {
  /** Autodiff treats the node's outputs as constants (tf.stop_gradient / torch .detach()). */
  stopGradient?: boolean;
  /** Name of a custom VJP rule (registered in the autodiff rule registry) to use instead of the op's own. */
  customVjp?: string;
}

export interface Node {
  name: string;
  op: string;
  domain: string;
  inputs: string[];   // '' marks an omitted optional input, as in ONNX
  outputs: string[];
  attrs: Record<string, Attr>;
  meta?: NodeMeta;
}

export function normaliseAttr(name: string, v: AttrInput): Attr {
  if (typeof v === 'object' && v !== null && 'type' in v && 'value' in v && !('dims' in v)) return v as Attr;
  if (typeof v === 'number') return FLOAT_ATTRS.has(name) || !Number.isInteger(v) ? { type: 'float', value: v } : { type: 'int', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    const nums = v as number[];
    return FLOAT_ATTRS.has(name) || nums.some((x) => !Number.isInteger(x)) ? { type: 'floats', value: nums } : { type: 'ints', value: nums };
  }
  return { type: 'tensor', value: v as Tensor };
}

export class GraphError extends Error {
  override name = 'GraphError';
}

export class Graph {
  name: string;
  opset: number;
  inputs: string[] = [];
  outputs: string[] = [];
  initializers = new Map<string, Tensor>();
  nodes: Node[] = [];
  types = new Map<string, ValueType>();
  private producers = new Map<string, Node>();
  private nameCounts = new Map<string, number>();
  /** Names fresh() must not hand out although they are not defined (yet): see reserve(). */
  private reserved = new Set<string>();

  constructor(name = 'advrun', opset = 17) {
    this.name = name;
    this.opset = opset;
  }

  /** A value name not yet used in this graph, derived from `base`. */
  fresh(base: string): string {
    let n = this.nameCounts.get(base) ?? 0;
    let name = n === 0 ? base : `${base}_${n}`;
    while (this.types.has(name) || this.producers.has(name) || this.reserved.has(name)) name = `${base}_${++n}`;
    this.nameCounts.set(base, n + 1);
    this.types.set(name, { dtype: 'float32', shape: null }); // reserve; overwritten by the definer
    return name;
  }

  /**
   * Keep fresh() from generating these names. A graph built by copying another one node by node
   * (rebuildGraph, the ONNX importer) reserves every name of the source first: values generated for
   * a rewritten node must not take the name of a source value that is copied in later.
   */
  reserve(names: Iterable<string>): void {
    for (const n of names) if (n !== '') this.reserved.add(n);
  }

  /** Every value name this graph defines or has reserved (a graph copied from this one reserves them). */
  valueNames(): Set<string> {
    return new Set([...this.types.keys(), ...this.reserved]);
  }

  addInput(name: string, dtype: DType, shape: Shape): string {
    if (this.has(name)) throw new GraphError(`graph input "${name}" is already defined`);
    this.inputs.push(name);
    this.types.set(name, { dtype, shape: [...shape] });
    return name;
  }

  addInitializer(name: string, t: Tensor): string {
    if (this.has(name) && !this.inputs.includes(name)) throw new GraphError(`initializer "${name}" is already defined`);
    this.initializers.set(name, t);
    this.types.set(name, { dtype: t.dtype, shape: [...t.dims] });
    return name;
  }

  /** Turn an initializer into a graph input (its value then comes from the caller at run time). */
  promoteToInput(name: string): void {
    const t = this.initializers.get(name);
    if (!t) throw new GraphError(`"${name}" is not an initializer of graph "${this.name}"`);
    this.initializers.delete(name);
    if (!this.inputs.includes(name)) this.inputs.push(name);
  }

  has(name: string): boolean {
    return this.inputs.includes(name) || this.initializers.has(name) || this.producers.has(name);
  }

  type(name: string): ValueType {
    const t = this.types.get(name);
    if (!t) throw new GraphError(`value "${name}" is not defined in graph "${this.name}"`);
    return t;
  }

  /** Static shape of a value, or an error naming it when the rank is unknown. */
  shape(name: string): Shape {
    const s = this.type(name).shape;
    if (!s) throw new GraphError(`shape of "${name}" is unknown (produced by ${this.producer(name)?.op ?? 'an input'}); give the input a shape or add a shape rule`);
    return s;
  }

  producer(name: string): Node | undefined {
    return this.producers.get(name);
  }

  /**
   * Append a node, infer its output types, and return the output names.
   * `outputs` is a count (names are generated from the op) or explicit names.
   */
  addNode(op: string, inputs: string[], attrs: Record<string, AttrInput | undefined> = {}, opts: { outputs?: number | string[]; name?: string; domain?: string; meta?: NodeMeta } = {}): string[] {
    for (const i of inputs) if (i !== '' && !this.types.has(i)) throw new GraphError(`${op}: input "${i}" is not defined`);
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(op.toLowerCase()));
    for (const o of outs) {
      if (this.producers.has(o) || this.inputs.includes(o) || this.initializers.has(o)) throw new GraphError(`${op}: output "${o}" is already defined`);
    }
    const normAttrs: Record<string, Attr> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) normAttrs[k] = normaliseAttr(k, v);
    const node: Node = { name: opts.name ?? this.freshNodeName(op), op, domain: opts.domain ?? '', inputs: [...inputs], outputs: outs, attrs: normAttrs, meta: opts.meta };
    this.insertNode(node);
    return outs;
  }

  /**
   * Add an already-formed node (used by the ONNX reader and graph transforms). `types` skips shape
   * inference for a node copied from a graph that already inferred its outputs.
   */
  insertNode(node: Node, types?: ValueType[]): void {
    for (const o of node.outputs) {
      if (o !== '' && (this.producers.has(o) || this.inputs.includes(o) || this.initializers.has(o))) {
        throw new GraphError(`${node.op} node "${node.name}": output "${o}" is already defined${this.producers.has(o) ? ` by ${this.producers.get(o)!.op} node "${this.producers.get(o)!.name}"` : ''}`);
      }
    }
    if (!types) {
      try {
        types = inferShapes(this, node);
      } catch (e) {
        throw new GraphError(`${node.op} node "${node.name}": ${(e as Error).message}`);
      }
    }
    node.outputs.forEach((o, i) => {
      if (o === '') return;
      this.producers.set(o, node);
      this.types.set(o, types![i] ?? { dtype: 'float32', shape: null });
    });
    this.nodes.push(node);
  }

  private nodeCount = 0;

  /**
   * Prefix the names of the nodes added since `start` (an earlier `nodes.length`) with `phase/`, so a
   * runtime profile can attribute time to forward, backward and update (see runtime/profile.ts).
   */
  tagNodesSince(start: number, phase: NodePhase): void {
    for (let i = start; i < this.nodes.length; i++) this.nodes[i]!.name = `${phase}/${this.nodes[i]!.name}`;
  }
  private freshNodeName(op: string): string {
    return `${op}_${this.nodeCount++}`;
  }

  /** The value of a constant (initializer or Constant node output), if it is one. Used by shape inference. */
  constantValue(name: string): Tensor | undefined {
    if (name === '') return undefined;
    if (this.initializers.has(name) && !this.inputs.includes(name)) return this.initializers.get(name);
    const p = this.producers.get(name);
    if (p && p.op === 'Constant') {
      const a = p.attrs.value ?? p.attrs.value_float ?? p.attrs.value_floats ?? p.attrs.value_int ?? p.attrs.value_ints;
      if (!a) return undefined;
      if (a.type === 'tensor') return a.value;
      if (a.type === 'float') return { dtype: 'float32', dims: [], data: new Float32Array([a.value]) };
      if (a.type === 'floats') return { dtype: 'float32', dims: [a.value.length], data: new Float32Array(a.value) };
      if (a.type === 'int') return { dtype: 'int64', dims: [], data: new BigInt64Array([BigInt(a.value)]) };
      if (a.type === 'ints') return { dtype: 'int64', dims: [a.value.length], data: BigInt64Array.from(a.value.map(BigInt)) };
    }
    return undefined;
  }

  markOutput(...names: string[]): void {
    for (const n of names) {
      this.type(n);
      if (!this.outputs.includes(n)) this.outputs.push(n);
    }
  }

  /** Deep-enough copy: nodes and maps are new, tensors are shared (they are never mutated in place). */
  clone(): Graph {
    const g = new Graph(this.name, this.opset);
    g.inputs = [...this.inputs];
    g.outputs = [...this.outputs];
    g.initializers = new Map(this.initializers);
    g.types = new Map(this.types);
    for (const n of this.nodes) {
      const copy: Node = { ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs }, meta: n.meta ? { ...n.meta } : undefined };
      g.nodes.push(copy);
      for (const o of copy.outputs) if (o) g.producers.set(o, copy);
    }
    g.nameCounts = new Map(this.nameCounts);
    g.reserved = new Set(this.reserved);
    g.nodeCount = this.nodeCount;
    return g;
  }

  /** Remove nodes (and initializers) that no graph output depends on. */
  prune(): void {
    const live = new Set<string>(this.outputs);
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (n.outputs.some((o) => live.has(o))) {
        keep.push(n);
        for (const inp of n.inputs) if (inp) live.add(inp);
      } else {
        for (const o of n.outputs) { this.producers.delete(o); this.types.delete(o); }
      }
    }
    this.nodes = keep.reverse();
    for (const name of [...this.initializers.keys()]) {
      if (!live.has(name)) { this.initializers.delete(name); if (!this.inputs.includes(name)) this.types.delete(name); }
    }
  }
}

// Attribute accessors for rules: typed, with defaults, and an error naming the node when missing.
export function attrInt(n: Node, name: string, dflt?: number): number {
  const a = n.attrs[name];
  if (!a) { if (dflt === undefined) throw new GraphError(`${n.op} "${n.name}" needs attribute ${name}`); return dflt; }
  return a.value as number;
}
export function attrFloat(n: Node, name: string, dflt?: number): number {
  return attrInt(n, name, dflt);
}
export function attrInts(n: Node, name: string, dflt?: number[]): number[] {
  const a = n.attrs[name];
  if (!a) { if (dflt === undefined) throw new GraphError(`${n.op} "${n.name}" needs attribute ${name}`); return dflt; }
  return a.value as number[];
}
export function attrString(n: Node, name: string, dflt?: string): string {
  const a = n.attrs[name];
  if (!a) { if (dflt === undefined) throw new GraphError(`${n.op} "${n.name}" needs attribute ${name}`); return dflt; }
  return a.value as string;
}
