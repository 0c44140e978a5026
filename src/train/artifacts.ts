// Training artifacts: the train-step, eval and attack-gradient graphs generated for one
// (model, loss, optimizer) configuration, plus a manifest describing every input and output.
// They are written to graphs/<content-hash>/ and reused while the configuration and the
// generator code are unchanged.

import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addGradients, type GradOptions } from '../autodiff/grad.js';
import { Builder } from '../ir/builder.js';
import type { Graph, Shape } from '../ir/graph.js';
import type { DType } from '../ir/tensor.js';
import { buildModel, ModelGraph, type BuiltModel, type ModelSpec } from '../models/index.js';
import type { BnMode, ModelBuilder, ParamInfo } from '../models/layers.js';
import { graphToModelProto } from '../onnx/io.js';
import { writeFileAtomic } from '../util/fs.js';
import { attackLoss, type AttackLossKind } from './attack-graphs.js';
import { buildObjective, objectiveInputs, type LossConfig } from './objectives.js';
import { crossEntropy } from './losses.js';
import { smoothReluBackward } from '../autodiff/rules/activations.js';
import { emitSgdUpdate, output, type SgdConfig } from './optimizer.js';
import { sha256Hex, sourceFingerprint } from '../util/hash.js';

export const ARTIFACT_FORMAT = 'advrun-artifacts/1';

export type { LossConfig } from './objectives.js';

/** SAT's gradient-quality variants: ReLU forward, sigma(alpha x) backward, for the attacker and/or the weight update. */
export interface SmoothBackwardConfig {
  alpha: number;
  attacker: boolean;
  optimizer: boolean;
}

export interface ArtifactConfig {
  model: ModelSpec;
  loss: LossConfig;
  optimizer: SgdConfig;
  /** SAM (Foret et al.): ascend to w + rho g/||g|| and descend with the gradient there. Large rho: l-SAM / RFN. */
  samRho?: number;
  smoothBackward?: SmoothBackwardConfig;
  /**
   * The batch size the train step is planned for (the run's --batch-size). The graphs still take any batch
   * size with the same results; the train step's weight gradients are laid out in cache-sized pieces of it.
   */
  plannedBatch?: number;
}

export const ATTACK_LOSSES: AttackLossKind[] = ['ce', 'kl', 'dlr', 'dlr-targeted'];
export const attackGraphName = (kind: AttackLossKind) => `attack_${kind.replace('-', '_')}`;

export type ValueRole = 'data' | 'labels' | 'lr' | 'param' | 'buffer' | 'momentum' | 'loss' | 'logits' | 'grad' | 'grad-norms' | 'per-example-loss';

export interface IoSpec {
  name: string;
  dtype: DType;
  shape: Shape;
  role: ValueRole;
}

export interface GraphEntry {
  file: string;
  sha256: string;
  inputs: IoSpec[];
  outputs: IoSpec[];
}

export interface Manifest {
  format: typeof ARTIFACT_FORMAT;
  key: string;
  config: ArtifactConfig;
  params: ParamInfo[];
  buffers: string[];
  momentum: string[];
  /** state input name -> train-step output holding its next value */
  feedback: Record<string, string>;
  graphs: Record<string, GraphEntry>;
}

/** A generated graph before it is written: the IR plus each input/output's role. */
export interface GeneratedGraph {
  graph: Graph;
  roles: Record<string, ValueRole>;
}

// ---------- generation ----------

/**
 * Where the generators get the network: by default the built-in architecture of `cfg.model`
 * (buildModel); src/interop/imported-artifacts.ts passes an imported ONNX template instead.
 */
export interface ModelSource {
  /** The network with BN in `bnMode`: input "input", output "logits", params and buffers still initializers. */
  build(bnMode: BnMode): BuiltModel;
  /** Rewords a failure to differentiate the network (an imported model may hold ops without gradient rules). */
  gradientError?(task: 'attack' | 'train', e: Error): Error;
}

export function builtinModelSource(spec: ModelSpec): ModelSource {
  return { build: (bnMode) => buildModel(spec, { bnMode, seed: 0 }) };
}

function gradientsOf(source: ModelSource | undefined, task: 'attack' | 'train', compute: () => Record<string, string>): Record<string, string> {
  if (!source?.gradientError) return compute();
  try {
    return compute();
  } catch (e) {
    throw source.gradientError(task, e as Error);
  }
}

function promoteState(model: BuiltModel): void {
  for (const p of model.params) model.graph.promoteToInput(p.name);
  for (const bname of model.buffers) model.graph.promoteToInput(bname);
}

function stateRoles(model: BuiltModel): Record<string, ValueRole> {
  const roles: Record<string, ValueRole> = { input: 'data' };
  for (const p of model.params) roles[p.name] = 'param';
  for (const bname of model.buffers) roles[bname] = 'buffer';
  return roles;
}

/** Gradient options for the train step or the attacker, honouring SAT's smooth-backward variants. */
export function gradOptionsFor(cfg: ArtifactConfig, who: 'attacker' | 'optimizer'): GradOptions {
  const sb = cfg.smoothBackward;
  return sb && sb[who] ? { overrides: { Relu: smoothReluBackward(sb.alpha) } } : {};
}

/**
 * SAM's gradient: from the gradient g at w, form w' = w + rho g / ||g|| (global L2 norm), run the
 * objective again at w' and return its gradient with respect to w' (the ascent step is a constant).
 * BN running statistics keep the first pass's update only.
 */
function samGradients(mg: ModelGraph, b: Builder, cfg: ArtifactConfig, loss: string, params: string[], gradOptions: GradOptions): Record<string, string> {
  const m: ModelBuilder = mg.m;
  const g1 = addGradients(b.graph, loss, params, gradOptions);
  const sq = params.map((p) => b.reduce('ReduceSumSquare', g1[p]!, b.shape(g1[p]!).map((_, i) => i), false));
  const scale = b.div(b.scalar(cfg.samRho!), b.add(b.sqrt(b.sum(sq)), b.scalar(1e-12)));
  const statsAfterFirstPass = { ...m.bufferUpdates };
  m.paramOverride = new Map(params.map((p) => [p, b.add(p, b.mul(g1[p]!, scale))]));
  const second = buildObjective(mg, b, cfg.loss);
  const perturbed = [...m.paramOverride];
  m.paramOverride = new Map();
  Object.assign(m.bufferUpdates, statsAfterFirstPass);
  const g2 = addGradients(b.graph, second.loss, perturbed.map(([, v]) => v), gradOptions);
  return Object.fromEntries(perturbed.map(([p, v]) => [p, g2[v]!]));
}

/**
 * Train step: forward pass(es) in train mode, loss, gradients of every parameter (plain or SAM), SGD
 * update, BN running-stat updates, and per-parameter gradient norms (so a NaN can be traced to a parameter).
 *
 * With a `source`, the network is its single train-mode pass and the objective plain cross-entropy
 * (cfg.loss must be 'ce', no SAM); `gradOptions` then default to none.
 */
export function generateTrainStep(cfg: ArtifactConfig, source?: ModelSource, gradOptions?: GradOptions): { gen: GeneratedGraph; model: BuiltModel; feedback: Record<string, string> } {
  const roles: Record<string, ValueRole> = { lr: 'lr', loss: 'loss', logits: 'logits', grad_norms_sq: 'grad-norms' };
  let model: BuiltModel, b: Builder, lr: string, loss: string;
  let gradients: (params: string[]) => Record<string, string>;
  // The train step's gradients are laid out for the planned batch (attack graphs compute no weight gradients).
  const planned = (o: GradOptions): GradOptions => ({ plannedBatch: cfg.plannedBatch, ...o });
  if (source) {
    if (cfg.loss.kind !== 'ce' || cfg.samRho) throw new Error('a model source is trained with plain cross-entropy only');
    model = source.build('train');
    b = new Builder(model.graph);
    const labels = model.graph.addInput('labels', 'int64', ['N']);
    roles[labels] = 'labels';
    lr = model.graph.addInput('lr', 'float32', []);
    loss = output(b, crossEntropy(b, model.logits, labels, { labelSmoothing: cfg.loss.labelSmoothing }), 'loss');
    gradients = (params) => gradientsOf(source, 'train', () => addGradients(model.graph, loss, params, planned(gradOptions ?? {})));
  } else {
    const mg = new ModelGraph(cfg.model, 0);
    const g = mg.graph;
    b = new Builder(g);
    const io = objectiveInputs(cfg.loss);
    for (const name of io.images) { mg.imageInput(name); roles[name] = 'data'; }
    for (const name of io.labels) { g.addInput(name, 'int64', ['N']); roles[name] = 'labels'; }
    lr = g.addInput('lr', 'float32', []);
    const objective = buildObjective(mg, b, cfg.loss);
    output(b, objective.logits, 'logits');
    loss = output(b, objective.loss, 'loss');
    model = { graph: g, input: io.images[0]!, logits: 'logits', params: mg.m.params, buffers: mg.m.buffers, bufferUpdates: mg.m.bufferUpdates };
    const opts = planned(gradOptions ?? gradOptionsFor(cfg, 'optimizer'));
    gradients = (params) => cfg.samRho ? samGradients(mg, b, cfg, loss, params, opts) : addGradients(g, loss, params, opts);
  }
  const g = model.graph;
  g.name = 'train_step';
  promoteState(model);
  Object.assign(roles, stateRoles(model));
  const paramNames = model.params.map((p) => p.name);
  const grads = gradients(paramNames);
  const norms = b.concat(paramNames.map((p) => b.reshape(b.reduce('ReduceSumSquare', grads[p]!, b.shape(grads[p]!).map((_, i) => i), false), [1])), 0);
  output(b, norms, 'grad_norms_sq');
  const feedback = emitSgdUpdate(b, model.params, grads, lr, cfg.optimizer);
  for (const [buf, upd] of Object.entries(model.bufferUpdates)) feedback[buf] = output(b, upd, `next.${buf}`);
  for (const [state, out] of Object.entries(feedback)) {
    roles[state] ??= 'momentum';
    roles[out] = roles[state]!;
  }
  g.prune();
  return { gen: { graph: g, roles }, model, feedback };
}

/** Eval graph: logits with BN running statistics. Parameters are inputs so one session serves every epoch. */
export function generateEval(cfg: ArtifactConfig, source: ModelSource = builtinModelSource(cfg.model)): GeneratedGraph {
  const model = source.build('eval');
  promoteState(model);
  model.graph.name = 'eval';
  return { graph: model.graph, roles: { ...stateRoles(model), logits: 'logits' } };
}

/**
 * Attack graph (eval-mode BN) for one loss: per-example losses and d(sum of losses)/d(input).
 * Only the input gradient is formed: no parameter gradients are computed.
 */
export function generateAttack(cfg: ArtifactConfig, kind: AttackLossKind, gradOptions: GradOptions = {}, source: ModelSource = builtinModelSource(cfg.model)): GeneratedGraph {
  const model = source.build('eval');
  promoteState(model);
  const g = model.graph;
  g.name = attackGraphName(kind);
  const b = new Builder(g);
  const perExample = output(b, attackLoss(b, g, kind, model.logits), 'loss');
  const total = b.reduceSum(perExample, [0], false);
  const grads = gradientsOf(source, 'attack', () => addGradients(g, total, [model.input], gradOptions));
  output(b, grads[model.input]!, 'grad_input');
  const roles: Record<string, ValueRole> = { ...stateRoles(model), labels: 'labels', targets: 'labels', clean_probs: 'data', loss: 'per-example-loss', logits: 'logits', grad_input: 'grad' };
  return { graph: g, roles };
}

// ---------- cache ----------

let fingerprint: string | undefined;

/** Hash of the code that generates graphs, so a changed generator never reuses stale artifacts. */
export function generatorFingerprint(): string {
  const root = dirname(dirname(fileURLToPath(import.meta.url))); // src/ or dist/
  fingerprint ??= sourceFingerprint(['ir', 'autodiff', 'models', 'train', 'onnx'].map((sub) => join(root, sub)));
  return fingerprint;
}

export function artifactKey(cfg: ArtifactConfig): string {
  return sha256Hex(JSON.stringify({ format: ARTIFACT_FORMAT, cfg, gen: generatorFingerprint() })).slice(0, 20);
}

function ioSpecs(g: Graph, names: string[], roles: Record<string, ValueRole>): IoSpec[] {
  return names.map((name) => ({ name, dtype: g.type(name).dtype, shape: g.shape(name), role: roles[name] ?? 'data' }));
}

export interface BuiltArtifacts {
  dir: string;
  manifest: Manifest;
  /** Serialised graphs by name (train_step, eval, attack_<loss>). */
  bytes: Record<string, Uint8Array>;
  /** Whether they came from the cache rather than being generated now. */
  cached: boolean;
}

/**
 * The artifacts under `dir` if its manifest and every graph it lists are intact (current format,
 * files present, SHA-256 matching); undefined otherwise.
 */
export function loadCachedArtifacts(dir: string): BuiltArtifacts | undefined {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) return undefined;
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  const bytes: Record<string, Uint8Array> = {};
  if (manifest.format !== ARTIFACT_FORMAT) return undefined;
  for (const [name, entry] of Object.entries(manifest.graphs)) {
    const p = join(dir, entry.file);
    if (!existsSync(p)) return undefined;
    const data = readFileSync(p);
    if (sha256Hex(data) !== entry.sha256) return undefined;
    bytes[name] = data;
  }
  return { dir, manifest, bytes, cached: true };
}

/** What the generators produced for one configuration: the graphs and the state the manifest records. */
export interface GeneratedArtifacts {
  gens: Record<string, GeneratedGraph>;
  params: ParamInfo[];
  buffers: string[];
  feedback: Record<string, string>;
}

export interface WriteArtifactsOptions {
  /** Write the graphs and manifest.json under `dir`; false keeps them in memory only. */
  persist: boolean;
  /** Extra ONNX metadata on every graph, after advrun_artifact and advrun_key. */
  metadata?: Record<string, string>;
  /** Extra manifest fields, after the standard ones. */
  extra?: Record<string, unknown>;
}

/** Serialise generated graphs, record them in a manifest, and (if `persist`) write both under `dir`. */
export function writeArtifacts(dir: string, key: string, cfg: ArtifactConfig, generated: GeneratedArtifacts, opts: WriteArtifactsOptions): BuiltArtifacts {
  if (opts.persist) mkdirSync(dir, { recursive: true });
  const bytes: Record<string, Uint8Array> = {};
  const graphs: Record<string, GraphEntry> = {};
  for (const [name, { graph, roles }] of Object.entries(generated.gens)) {
    const data = graphToModelProto(graph, { advrun_artifact: name, advrun_key: key, ...opts.metadata });
    if (opts.persist) writeFileAtomic(join(dir, `${name}.onnx`), data);
    bytes[name] = data;
    graphs[name] = {
      file: `${name}.onnx`,
      sha256: sha256Hex(data),
      inputs: ioSpecs(graph, graph.inputs, roles),
      outputs: ioSpecs(graph, graph.outputs, roles),
    };
  }
  const { params, buffers, feedback } = generated;
  const manifest: Manifest = {
    format: ARTIFACT_FORMAT, key, config: cfg, params, buffers,
    momentum: Object.keys(feedback).filter((k) => k.startsWith('momentum.')), feedback, graphs,
    ...opts.extra,
  };
  if (opts.persist) writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return { dir, manifest, bytes, cached: false };
}

/**
 * Build (or load from graphs/<key>/) the artifacts for a configuration. The manifest records each
 * file's SHA-256; a file that no longer matches is regenerated.
 */
export function ensureArtifacts(cfg: ArtifactConfig, graphsRoot: string): BuiltArtifacts {
  const key = artifactKey(cfg);
  const dir = join(graphsRoot, key);
  const cached = loadCachedArtifacts(dir);
  if (cached) return cached;
  const { gen: train, model, feedback } = generateTrainStep(cfg);
  const gens: Record<string, GeneratedGraph> = { train_step: train, eval: generateEval(cfg) };
  for (const kind of ATTACK_LOSSES) gens[attackGraphName(kind)] = generateAttack(cfg, kind);
  // SAT's attacker-side smooth backward: training attacks get their own graphs; evaluation keeps true gradients.
  if (cfg.smoothBackward?.attacker) {
    for (const kind of ATTACK_LOSSES) gens[`train_${attackGraphName(kind)}`] = generateAttack(cfg, kind, gradOptionsFor(cfg, 'attacker'));
  }
  return writeArtifacts(dir, key, cfg, { gens, params: model.params, buffers: model.buffers, feedback }, { persist: true });
}
