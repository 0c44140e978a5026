// Training artifacts: the train-step, eval and attack-gradient graphs generated for one
// (model, loss, optimizer) configuration, plus a manifest describing every input and output.
// They are written to graphs/<content-hash>/ and reused while the configuration and the
// generator code are unchanged.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addGradients, type GradOptions } from '../autodiff/grad.js';
import { Builder } from '../ir/builder.js';
import type { Graph, Shape } from '../ir/graph.js';
import type { DType } from '../ir/tensor.js';
import { buildModel, ModelGraph, type BuiltModel, type ModelSpec } from '../models/index.js';
import type { ParamInfo } from '../models/layers.js';
import { graphToModelProto } from '../onnx/io.js';
import { writeFileAtomic } from '../util/fs.js';
import { attackLoss, type AttackLossKind } from './attack-graphs.js';
import { crossEntropy, klDivergence } from './losses.js';
import { emitSgdUpdate, output, type SgdConfig } from './optimizer.js';

export const ARTIFACT_FORMAT = 'advrun-artifacts/1';

/**
 * What the train step minimises. 'ce': cross-entropy on one batch (standard training, PGD-AT and
 * FGSM-RS feed clean or adversarial images). 'trades': CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / N,
 * both passes in train mode (the clean pass's logits serve both terms).
 */
export type LossConfig =
  | { kind: 'ce'; labelSmoothing: number }
  | { kind: 'trades'; labelSmoothing: number; beta: number };

export interface ArtifactConfig {
  model: ModelSpec;
  loss: LossConfig;
  optimizer: SgdConfig;
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

/**
 * Train step: forward pass(es) in train mode, loss, gradients of every parameter, SGD update, BN
 * running-stat updates, and per-parameter gradient norms (so a NaN can be traced to a parameter).
 */
export function generateTrainStep(cfg: ArtifactConfig, gradOptions: GradOptions = {}): { gen: GeneratedGraph; model: BuiltModel; feedback: Record<string, string> } {
  const mg = new ModelGraph(cfg.model, 0);
  const g = mg.graph;
  g.name = 'train_step';
  const b = new Builder(g);
  const input = mg.imageInput('input');
  const labels = g.addInput('labels', 'int64', ['N']);
  const lr = g.addInput('lr', 'float32', []);
  const roles: Record<string, ValueRole> = { labels: 'labels', lr: 'lr', loss: 'loss', logits: 'logits', grad_norms_sq: 'grad-norms' };
  const logits = output(b, mg.forward(input, 'train'), 'logits');
  let loss = crossEntropy(b, logits, labels, { labelSmoothing: cfg.loss.labelSmoothing });
  if (cfg.loss.kind === 'trades') {
    const adv = mg.imageInput('input_adv');
    roles.input_adv = 'data';
    const kl = klDivergence(b, logits, mg.forward(adv, 'train'), { reduction: 'mean', detachP: false });
    loss = b.add(loss, b.scale(kl, cfg.loss.beta));
  }
  output(b, loss, 'loss');
  const model: BuiltModel = { graph: g, input, logits, params: mg.m.params, buffers: mg.m.buffers, bufferUpdates: mg.m.bufferUpdates };
  promoteState(model);
  Object.assign(roles, stateRoles(model));
  const grads = addGradients(g, 'loss', model.params.map((p) => p.name), gradOptions);
  const norms = b.concat(model.params.map((p) => b.reshape(b.reduce('ReduceSumSquare', grads[p.name]!, b.shape(grads[p.name]!).map((_, i) => i), false), [1])), 0);
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
export function generateEval(cfg: ArtifactConfig): GeneratedGraph {
  const model = buildModel(cfg.model, { bnMode: 'eval', seed: 0 });
  promoteState(model);
  model.graph.name = 'eval';
  return { graph: model.graph, roles: { ...stateRoles(model), logits: 'logits' } };
}

/**
 * Attack graph (eval-mode BN) for one loss: per-example losses and d(sum of losses)/d(input).
 * Only the input gradient is formed: no parameter gradients are computed.
 */
export function generateAttack(cfg: ArtifactConfig, kind: AttackLossKind, gradOptions: GradOptions = {}): GeneratedGraph {
  const model = buildModel(cfg.model, { bnMode: 'eval', seed: 0 });
  promoteState(model);
  const g = model.graph;
  g.name = attackGraphName(kind);
  const b = new Builder(g);
  const perExample = output(b, attackLoss(b, g, kind, model.logits), 'loss');
  const total = b.reduceSum(perExample, [0], false);
  const { input: gradInput } = addGradients(g, total, [model.input], gradOptions);
  output(b, gradInput!, 'grad_input');
  const roles: Record<string, ValueRole> = { ...stateRoles(model), labels: 'labels', targets: 'labels', clean_probs: 'data', loss: 'per-example-loss', logits: 'logits', grad_input: 'grad' };
  return { graph: g, roles };
}

// ---------- cache ----------

let fingerprint: string | undefined;

/** Hash of the code that generates graphs, so a changed generator never reuses stale artifacts. */
export function generatorFingerprint(): string {
  if (fingerprint) return fingerprint;
  const root = dirname(dirname(fileURLToPath(import.meta.url))); // src/ or dist/
  const h = createHash('sha256');
  for (const sub of ['ir', 'autodiff', 'models', 'train', 'onnx']) hashTree(h, join(root, sub));
  fingerprint = h.digest('hex').slice(0, 16);
  return fingerprint;
}

function hashTree(h: ReturnType<typeof createHash>, dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) hashTree(h, p);
    else if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) h.update(name).update(readFileSync(p));
  }
}

export function artifactKey(cfg: ArtifactConfig): string {
  return createHash('sha256').update(JSON.stringify({ format: ARTIFACT_FORMAT, cfg, gen: generatorFingerprint() })).digest('hex').slice(0, 20);
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
 * Build (or load from graphs/<key>/) the artifacts for a configuration. The manifest records each
 * file's SHA-256; a file that no longer matches is regenerated.
 */
export function ensureArtifacts(cfg: ArtifactConfig, graphsRoot: string): BuiltArtifacts {
  const key = artifactKey(cfg);
  const dir = join(graphsRoot, key);
  const manifestPath = join(dir, 'manifest.json');
  if (existsSync(manifestPath)) {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    const bytes: Record<string, Uint8Array> = {};
    let intact = manifest.format === ARTIFACT_FORMAT;
    for (const [name, entry] of Object.entries(manifest.graphs)) {
      const p = join(dir, entry.file);
      if (!intact || !existsSync(p)) { intact = false; break; }
      const data = readFileSync(p);
      if (createHash('sha256').update(data).digest('hex') !== entry.sha256) { intact = false; break; }
      bytes[name] = data;
    }
    if (intact) return { dir, manifest, bytes, cached: true };
  }
  const { gen: train, model, feedback } = generateTrainStep(cfg);
  const gens: Record<string, GeneratedGraph> = { train_step: train, eval: generateEval(cfg) };
  for (const kind of ATTACK_LOSSES) gens[attackGraphName(kind)] = generateAttack(cfg, kind);
  mkdirSync(dir, { recursive: true });
  const bytes: Record<string, Uint8Array> = {};
  const graphs: Record<string, GraphEntry> = {};
  for (const [name, { graph, roles }] of Object.entries(gens)) {
    const data = graphToModelProto(graph, { advrun_artifact: name, advrun_key: key });
    writeFileAtomic(join(dir, `${name}.onnx`), data);
    bytes[name] = data;
    graphs[name] = {
      file: `${name}.onnx`,
      sha256: createHash('sha256').update(data).digest('hex'),
      inputs: ioSpecs(graph, graph.inputs, roles),
      outputs: ioSpecs(graph, graph.outputs, roles),
    };
  }
  const manifest: Manifest = {
    format: ARTIFACT_FORMAT, key, config: cfg, params: model.params, buffers: model.buffers,
    momentum: Object.keys(feedback).filter((k) => k.startsWith('momentum.')), feedback, graphs,
  };
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  return { dir, manifest, bytes, cached: false };
}
