// ONNX classifiers exported by torch.onnx.export (or other tools), made into advrun models.
//
// loadOnnxFile reads the model; importOnnx then rewrites it into a canonical "template" graph with
// the same contract as advrun's built-in models (buildModel):
//   - the one non-initializer input becomes "input" [N, C, H, W] with a symbolic batch N;
//   - the first output becomes "logits" [N, K] (other outputs are dropped);
//   - every initializer stays an initializer, classified by how the graph uses it:
//       params  = weights and biases of Conv/ConvTranspose/Gemm/MatMul, BN/Instance/LayerNorm affine,
//                 PRelu slopes, and Add biases after a MatMul, also when they pass through
//                 Unsqueeze/Reshape/Transpose/... on the way (trainable; fine-tuning updates them),
//       buffers = BatchNormalization running mean/var (updated by train-mode forward passes),
//       the rest (normalisation constants, shape tensors...) stay constants of the graph;
//   - opset 13-16 is upgraded in place to 17 (every CNN op is unchanged from 13 to 17; the checks
//     below refuse the few definitions that did change), so the MaxPool/Gather VJPs, which need
//     ScatterElements with reduction "add" (opset 16), are available;
//   - nodes computing values from constants only (torch without constant folding) are evaluated
//     once by ONNX Runtime and replaced by Constant nodes (const-fold.ts);
//   - torch's dedup of identical initializers (`Identity(bn.bias) -> bn.running_mean`) is undone:
//     Identity nodes of initializers become initializers of their own;
//   - run-time shape computations feeding Reshape (`x.view(x.size(0), -1)` exports as
//     Shape/Gather/Unsqueeze/Concat) are folded to constant targets ([0, -1]) when the only run-time
//     quantity is a dimension the Reshape copies, so shapes stay known for autodiff.
// Names that collide with advrun's artifact interface (labels, loss, grad_input...) get a suffix, and
// node names in the IR builder's pattern ("Conv_3") get an "onnx/" prefix.
//
// From the template, imported-artifacts.ts builds the eval, attack and (optionally) train-step
// graphs that ModelRuntime runs, exactly as for built-in models.

import { Builder } from '../ir/builder.js';
import { attrInt, Graph, type Dim, type Node } from '../ir/graph.js';
import { toNumbers, type Tensor } from '../ir/tensor.js';
import type { BuiltModel, ModelSpec } from '../models/index.js';
import { trainModeBatchNorm, type ParamInfo, type ParamKind } from '../models/layers.js';
import { modelProtoToGraph } from '../onnx/io.js';
import { UserError } from '../util/errors.js';
import { foldConstantSubgraphs } from './const-fold.js';
import { rebuildGraph } from '../ir/rebuild.js';
import { sha256Hex } from '../util/hash.js';
import { readInputFile } from '../util/fs.js';

export const IMPORTED_ARCH = 'onnx';
export const TARGET_OPSET = 17;

export interface ImportedOnnx {
  source: string;
  /** SHA-256 of the ONNX file. */
  sha256: string;
  opset: { original: number; used: number };
  /** The template: input "input", output "logits", params and buffers as initializers. */
  graph: Graph;
  params: ParamInfo[];
  buffers: string[];
  spec: ModelSpec;
  /** Original names of the image input and the logits output. */
  io: { input: string; output: string };
  /** What the import changed (opset upgrade, folded reshapes, renamed values...). */
  notes: string[];
}

const RESERVED = new Set(['input', 'input_adv', 'logits', 'labels', 'targets', 'clean_probs', 'loss', 'grad_input', 'lr', 'grad_norms_sq']);
const isReserved = (n: string) => RESERVED.has(n) || n.startsWith('momentum.') || n.startsWith('next.');

// ---------- opset ----------

function resolveOpset(g: Graph, source: string, notes: string[]): number {
  const v = g.opset;
  if (v < 13) throw new UserError(`${source} uses ONNX opset ${v}; advrun imports opset 13 or newer (re-export with torch.onnx.export(..., opset_version=17))`);
  // A training-mode export normalises every batch with its own statistics (attacks and accuracy would
  // depend on the batch) and has no running-statistics update advrun could train: only eval-mode models.
  for (const n of g.nodes) {
    if (n.op === 'BatchNormalization' && (attrInt(n, 'training_mode', 0) === 1 || n.outputs.filter((o) => o !== '').length > 1)) {
      throw new UserError(`${source}: node "${n.name}" is a training-mode BatchNormalization (exported with training=TrainingMode.TRAINING); export the model in eval mode (model.eval() before torch.onnx.export)`);
    }
  }
  if (v >= TARGET_OPSET) return v;
  // Opset 14-17 changed these definitions in ways that matter (all other changes only add types or
  // attributes whose defaults keep the old behaviour): BatchNormalization-14 dropped the training
  // outputs of BatchNormalization-9 (refused above); RoiAlign-16 changed the default coordinate_transformation_mode.
  for (const n of g.nodes) {
    if (n.op === 'RoiAlign' && !n.attrs.coordinate_transformation_mode) n.attrs.coordinate_transformation_mode = { type: 'string', value: 'output_half_pixel' };
  }
  notes.push(`opset ${v} upgraded to ${TARGET_OPSET} (no operator used changed meaning)`);
  return TARGET_OPSET;
}

// ---------- symbolic shape values (for folding Reshape targets) ----------

interface SymVal { dims: Dim[]; scalar: boolean }

function symOf(g: Graph, sym: Map<string, SymVal>, name: string): SymVal | undefined {
  if (!name) return undefined;
  const s = sym.get(name);
  if (s) return s;
  const c = g.constantValue(name);
  if (c && (c.dtype === 'int64' || c.dtype === 'int32') && c.dims.length <= 1) return { dims: toNumbers(c), scalar: c.dims.length === 0 };
  return undefined;
}

function constInts(g: Graph, name: string | undefined): number[] | undefined {
  if (!name) return undefined;
  const c = g.constantValue(name);
  return c ? toNumbers(c) : undefined;
}

/** The symbolic value of a node's (single) int output, when it is a known function of shapes and constants. */
function evalSym(g: Graph, sym: Map<string, SymVal>, n: Node): SymVal | undefined {
  const arg = (i: number) => symOf(g, sym, n.inputs[i] ?? '');
  switch (n.op) {
    case 'Shape': {
      const s = g.type(n.inputs[0]!).shape;
      if (!s) return undefined;
      const r = s.length;
      const norm = (v: number) => Math.min(Math.max(v < 0 ? v + r : v, 0), r);
      const start = norm(attrInt(n, 'start', 0)), end = norm(attrInt(n, 'end', r));
      return { dims: s.slice(start, end), scalar: false };
    }
    case 'Identity': return arg(0);
    case 'Cast': return arg(0);
    case 'Gather': {
      const d = arg(0), idx = constInts(g, n.inputs[1]);
      const idxT = g.constantValue(n.inputs[1]!);
      if (!d || d.scalar || !idx || !idxT || attrInt(n, 'axis', 0) !== 0 || idxT.dims.length > 1) return undefined;
      const out = idx.map((i) => d.dims[i < 0 ? i + d.dims.length : i]);
      if (out.some((x) => x === undefined)) return undefined;
      return { dims: out as Dim[], scalar: idxT.dims.length === 0 };
    }
    case 'Unsqueeze': {
      const d = arg(0);
      const axes = (n.attrs.axes?.value as number[] | undefined) ?? constInts(g, n.inputs[1]);
      if (!d || !d.scalar || !axes || axes.length !== 1 || (axes[0] !== 0 && axes[0] !== -1)) return undefined;
      return { dims: d.dims, scalar: false };
    }
    case 'Squeeze': {
      const d = arg(0);
      return d && !d.scalar && d.dims.length === 1 ? { dims: d.dims, scalar: true } : undefined;
    }
    case 'Concat': {
      if (attrInt(n, 'axis', 0) !== 0) return undefined;
      const parts = n.inputs.map((_, i) => arg(i));
      if (parts.some((p) => !p || p.scalar)) return undefined;
      return { dims: parts.flatMap((p) => p!.dims), scalar: false };
    }
    case 'Slice': {
      const d = arg(0);
      const starts = constInts(g, n.inputs[1]), ends = constInts(g, n.inputs[2]);
      const axes = constInts(g, n.inputs[3]) ?? [0], steps = constInts(g, n.inputs[4]) ?? [1];
      if (!d || d.scalar || !starts || !ends || axes.length !== 1 || axes[0] !== 0 || steps[0] !== 1) return undefined;
      const len = d.dims.length;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + len : v, 0), len);
      return { dims: d.dims.slice(clamp(starts[0]!), clamp(ends[0]!)), scalar: false };
    }
    case 'Mul': case 'Add': case 'Sub': case 'Div': {
      const a = arg(0), b = arg(1);
      if (!a || !b) return undefined;
      const len = Math.max(a.dims.length, b.dims.length);
      const get = (v: SymVal, i: number) => (v.dims.length === 1 ? v.dims[0]! : v.dims[i]!);
      if (a.dims.length !== b.dims.length && a.dims.length !== 1 && b.dims.length !== 1) return undefined;
      const out: number[] = [];
      for (let i = 0; i < len; i++) {
        const x = get(a, i), y = get(b, i);
        if (typeof x !== 'number' || typeof y !== 'number') return undefined;
        out.push(n.op === 'Mul' ? x * y : n.op === 'Add' ? x + y : n.op === 'Sub' ? x - y : Math.trunc(x / y));
      }
      return { dims: out, scalar: a.scalar && b.scalar };
    }
  }
  return undefined;
}

/** A constant Reshape target equivalent to the run-time one, or undefined. */
function foldReshapeTarget(g: Graph, sym: Map<string, SymVal>, n: Node, data: string, shapeIn: string): number[] | undefined {
  const t = symOf(g, sym, shapeIn);
  const x = g.type(data).shape;
  if (!t || t.scalar || !x || t.dims.every((d) => typeof d === 'number')) return undefined;
  const allowZero = attrInt(n, 'allowzero', 0) === 1;
  const out: (number | undefined)[] = t.dims.map((d, i) => (typeof d === 'number' ? d : !allowZero && x[i] === d ? 0 : undefined));
  const unknown = out.filter((d) => d === undefined).length;
  if (unknown > 1 || (unknown === 1 && out.includes(-1))) return undefined;
  return out.map((d) => d ?? -1);
}

// ---------- classifying initializers ----------

type Role = 'param' | 'buffer' | 'const';

function roleOf(g: Graph, n: Node, slot: number): Role {
  const producedBy = (i: number) => g.producer(n.inputs[i] ?? '')?.op;
  switch (n.op) {
    case 'Conv': case 'ConvTranspose': return slot >= 1 ? 'param' : 'const';
    case 'Gemm': case 'MatMul': return 'param';
    case 'BatchNormalization': return slot === 1 || slot === 2 ? 'param' : slot >= 3 ? 'buffer' : 'const';
    case 'InstanceNormalization': case 'LayerNormalization': case 'GroupNormalization': return slot >= 1 ? 'param' : 'const';
    case 'PRelu': return slot === 1 ? 'param' : 'const';
    case 'Add': return producedBy(1 - slot) === 'MatMul' ? 'param' : 'const';
  }
  return 'const';
}

/** Ops that only move or relabel data: a weight reshaped or transposed on its way to its layer keeps its role. */
const PASS_THROUGH = new Set(['Identity', 'Unsqueeze', 'Squeeze', 'Reshape', 'Flatten', 'Transpose', 'Cast']);

function classify(g: Graph, notes: string[]): { params: ParamInfo[]; buffers: string[] } {
  const consumers = new Map<string, { node: Node; slot: number }[]>();
  for (const n of g.nodes) n.inputs.forEach((inp, slot) => {
    if (inp) (consumers.get(inp) ?? consumers.set(inp, []).get(inp)!).push({ node: n, slot });
  });
  const uses = (name: string) => consumers.get(name) ?? [];
  const role = (node: Node, slot: number, depth = 0): Role => {
    if (PASS_THROUGH.has(node.op) && slot === 0 && depth < 8) {
      const rs = uses(node.outputs[0]!).map((u) => role(u.node, u.slot, depth + 1));
      return rs.includes('param') ? 'param' : rs.length > 0 && rs.every((r) => r === 'buffer') ? 'buffer' : 'const';
    }
    return roleOf(g, node, slot);
  };
  const params: ParamInfo[] = [];
  const buffers: string[] = [];
  for (const [name, t] of [...g.initializers]) {
    if (t.dtype !== 'float32') continue;
    const u = uses(name);
    const roles = u.map(({ node, slot }) => role(node, slot));
    if (roles.includes('buffer') && roles.some((r) => r !== 'buffer')) {
      // A statistic shared with a weight (torch dedups equal tensors): give the BN slots their own copy.
      const copy = g.fresh(`${name}.running_stat`);
      g.addInitializer(copy, t);
      u.forEach(({ node, slot }, i) => { if (roles[i] === 'buffer') node.inputs[slot] = copy; });
      buffers.push(copy);
      notes.push(`initializer "${name}" is both a weight and a BatchNormalization statistic; the statistic is now "${copy}"`);
      if (roles.includes('param')) params.push({ name, decay: true, kind: paramKind(u) });
      continue;
    }
    if (roles.includes('param')) params.push({ name, decay: true, kind: paramKind(u) });
    else if (roles.length > 0 && roles.every((r) => r === 'buffer')) buffers.push(name);
  }
  return { params, buffers };
}

/** What an imported parameter is, from its direct uses (a conv/linear weight, bias, BN affine), for weight-decay scopes. */
function paramKind(uses: { node: Node; slot: number }[]): ParamKind {
  const is = (ops: string[], slot: number) => uses.some((u) => ops.includes(u.node.op) && u.slot === slot);
  if (is(['Conv', 'ConvTranspose', 'Gemm'], 1) || uses.some((u) => u.node.op === 'MatMul')) return 'weight';
  if (is(['Conv', 'ConvTranspose', 'Gemm'], 2)) return 'bias';
  if (is(['BatchNormalization', 'InstanceNormalization', 'LayerNormalization'], 1) || is(['BatchNormalization', 'InstanceNormalization', 'LayerNormalization'], 2)) return 'norm';
  return 'other';
}

// ---------- import ----------

export async function importOnnxFile(path: string): Promise<ImportedOnnx> {
  return importOnnx(readInputFile(path), path);
}

export async function importOnnx(bytes: Uint8Array, source: string): Promise<ImportedOnnx> {
  const notes: string[] = [];
  const cf = await foldConstantSubgraphs(bytes, source);
  if (cf.folded) notes.push(`${cf.folded} node(s) computing constants evaluated once by ONNX Runtime and replaced by their values`);
  const g0 = modelProtoToGraph(cf.bytes, source);
  const opset = resolveOpset(g0, source, notes);
  const images = g0.inputs;
  if (images.length !== 1) {
    throw new UserError(`${source} has ${images.length} inputs (${images.join(', ') || 'none'}); advrun imports classifiers with one image input [N, C, H, W]`);
  }
  const inName = images[0]!;
  const inType = g0.type(inName);
  const s = inType.shape ?? [];
  if (inType.dtype !== 'float32' || s.length !== 4 || typeof s[1] !== 'number' || typeof s[2] !== 'number' || typeof s[3] !== 'number') {
    throw new UserError(`${source}: input "${inName}" is ${inType.dtype} [${s}]; advrun needs float32 images [N, C, H, W] with static C, H, W`);
  }
  const [, C, H, W] = s as [Dim, number, number, number];
  if (H !== W) throw new UserError(`${source}: input "${inName}" is ${H}x${W}; advrun's attacks and datasets use square images`);
  if (g0.outputs.length === 0) throw new UserError(`${source} has no outputs`);
  const outName = g0.outputs[0]!;
  if (typeof s[0] === 'number') notes.push(`input batch dimension ${s[0]} made symbolic`);

  // Names: the image input becomes "input"; values colliding with the artifact interface get a suffix.
  const taken = new Set<string>([...g0.types.keys()]);
  const rename = new Map<string, string>([[inName, 'input']]);
  for (const n of taken) {
    if (n === inName || !isReserved(n) || (n === 'logits' && n === outName)) continue;
    let alt = `${n}__onnx`;
    for (let k = 1; taken.has(alt); k++) alt = `${n}__onnx${k}`;
    taken.add(alt);
    rename.set(n, alt);
    notes.push(`value "${n}" renamed "${alt}" (the name is part of advrun's graph interface)`);
  }
  const nm = (n: string) => (n === '' ? '' : rename.get(n) ?? n);

  const g = new Graph(g0.name || 'imported', opset);
  // Folded Reshape targets get fresh names: keep them apart from the model's own (later) values.
  g.reserve([...g0.types.keys()].map(nm));
  const b = new Builder(g);
  g.addInput('input', 'float32', ['N', C, H, W]);
  for (const [n, t] of g0.initializers) g.addInitializer(nm(n), t);
  const sym = new Map<string, SymVal>();
  let folded = 0, splitIdentities = 0;
  for (const node of g0.nodes) {
    const inputs = node.inputs.map(nm);
    const outputs = node.outputs.map(nm);
    if (node.op === 'Identity' && g.initializers.has(inputs[0]!) && outputs[0]) {
      g.addInitializer(outputs[0], g.initializers.get(inputs[0]!)!);
      splitIdentities++;
      continue;
    }
    if (node.op === 'Reshape' && inputs[1] && !g.constantValue(inputs[1])) {
      const target = foldReshapeTarget(g, sym, node, inputs[0]!, inputs[1]);
      if (target) { inputs[1] = b.ints(target); folded++; }
    }
    // Node names like the IR builder's own ("Conv_3") would collide with the nodes autodiff adds.
    const name = /^[A-Za-z]+_\d+$/.test(node.name) ? `onnx/${node.name}` : node.name;
    const copy: Node = { ...node, name, inputs, outputs, attrs: { ...node.attrs } };
    g.insertNode(copy);
    if (outputs.length === 1 && outputs[0] && (g.type(outputs[0]).dtype === 'int64' || g.type(outputs[0]).dtype === 'int32')) {
      const v = evalSym(g, sym, copy);
      if (v) sym.set(outputs[0], v);
    }
  }
  if (splitIdentities) notes.push(`${splitIdentities} Identity node(s) of initializers replaced by initializers (torch's dedup of equal tensors undone)`);
  if (folded) notes.push(`${folded} run-time Reshape target(s) folded to constants`);

  const logitsIn = nm(outName);
  const ls = g.type(logitsIn).shape;
  if (!ls || ls.length !== 2 || typeof ls[1] !== 'number') {
    throw new UserError(`${source}: output "${outName}" has shape [${ls ?? '?'}]; advrun needs logits [N, classes] with a static number of classes`);
  }
  if (typeof ls[0] === 'number') {
    throw new UserError(`${source}: output "${outName}" has a fixed batch size ${ls[0]} (a Reshape with a constant batch?); re-export with dynamic_axes={"${inName}": {0: "batch"}, "${outName}": {0: "batch"}} and x.flatten(1) or x.view(x.size(0), -1)`);
  }
  if (logitsIn !== 'logits') g.addNode('Identity', [logitsIn], {}, { outputs: ['logits'], name: 'advrun/logits' });
  g.outputs = ['logits'];
  g.prune();
  const { params, buffers } = classify(g, notes);
  const spec: ModelSpec = {
    arch: IMPORTED_ARCH, numClasses: ls[1], inChannels: C, imageSize: H, activation: { kind: 'relu' }, mean: [], std: [],
  };
  return {
    source, sha256: sha256Hex(bytes), opset: { original: g0.opset, used: opset },
    graph: g, params, buffers, spec, io: { input: inName, output: outName }, notes,
  };
}

// ---------- forward passes ----------

/**
 * The imported model as a BuiltModel. 'eval' is the template itself (a copy). 'train' replaces every
 * inference BatchNormalization over buffers by batch statistics (biased variance for normalising)
 * and emits PyTorch's running-statistics update (unbiased variance; PyTorch momentum = 1 - ONNX
 * momentum attribute, 0.1 for torch's default), like advrun's own train-mode BN.
 */
export function importedModel(im: ImportedOnnx, mode: 'eval' | 'train'): BuiltModel {
  const base = { input: 'input', logits: 'logits', params: im.params, buffers: im.buffers };
  if (mode === 'eval') return { ...base, graph: im.graph.clone(), bufferUpdates: {} };
  const bufferUpdates: Record<string, string> = {};
  const buffers = new Set(im.buffers);
  const graph = rebuildGraph(im.graph, (node, g, b, map) => {
    if (node.op !== 'BatchNormalization' || attrInt(node, 'training_mode', 0) !== 0) return undefined;
    const [x, scale, bias, rm, rv] = node.inputs.map(map) as [string, string, string, string, string];
    if (!buffers.has(rm) || !buffers.has(rv)) return undefined;
    const eps = (node.attrs.epsilon?.value as number | undefined) ?? 1e-5;
    const momentum = 1 - ((node.attrs.momentum?.value as number | undefined) ?? 0.9); // ONNX's is 1 - PyTorch's
    const y = trainModeBatchNorm(b, x, { scale, bias, rm, rv }, eps, momentum, bufferUpdates);
    return [y];
  });
  return { ...base, graph, bufferUpdates };
}

/** The template's current weights as a state map (params and buffers). */
export function importedState(im: ImportedOnnx): Map<string, Tensor> {
  const state = new Map<string, Tensor>();
  for (const p of im.params) state.set(p.name, im.graph.initializers.get(p.name)!);
  for (const bname of im.buffers) state.set(bname, im.graph.initializers.get(bname)!);
  return state;
}

/** For export: the template graph with `state` written into its initializers. */
export function importedWithState(im: ImportedOnnx, state: Map<string, Tensor>): Graph {
  const g = im.graph.clone();
  for (const [k, t] of state) if (g.initializers.has(k)) g.initializers.set(k, t);
  return g;
}
