// Training artifacts for imported ONNX models: the same graphs, roles and manifest that
// src/train/artifacts.ts generates for built-in architectures (eval, attack_<loss>, optionally
// train_step), built from an ImportedOnnx template instead of buildModel, so ModelRuntime runs them
// unchanged. The generation steps mirror generateEval / generateAttack / generateTrainStep and use
// the same loss, attack-loss and optimizer emitters.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addGradients, type GradOptions } from '../autodiff/grad.js';
import { Builder } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import type { BuiltModel } from '../models/index.js';
import { graphToModelProto } from '../onnx/io.js';
import {
  ARTIFACT_FORMAT, ATTACK_LOSSES, attackGraphName, generatorFingerprint,
  type ArtifactConfig, type BuiltArtifacts, type GeneratedGraph, type GraphEntry, type IoSpec, type Manifest, type ValueRole,
} from '../train/artifacts.js';
import { attackLoss, type AttackLossKind } from '../train/attack-graphs.js';
import { crossEntropy } from '../train/losses.js';
import { emitSgdUpdate, output, type SgdConfig } from '../train/optimizer.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { importedModel, type ImportedOnnx } from './onnx-import.js';

export interface ImportedArtifactOptions {
  /** Also build the train step (fine-tuning): CE with label smoothing, SGD. Omitted: eval and attack graphs only. */
  train?: { labelSmoothing: number; optimizer: SgdConfig };
  gradOptions?: GradOptions;
}

function promoteState(m: BuiltModel): void {
  for (const p of m.params) m.graph.promoteToInput(p.name);
  for (const b of m.buffers) m.graph.promoteToInput(b);
}

function stateRoles(m: BuiltModel): Record<string, ValueRole> {
  const roles: Record<string, ValueRole> = { input: 'data' };
  for (const p of m.params) roles[p.name] = 'param';
  for (const b of m.buffers) roles[b] = 'buffer';
  return roles;
}

export function generateImportedEval(im: ImportedOnnx): GeneratedGraph {
  const m = importedModel(im, 'eval');
  promoteState(m);
  m.graph.name = 'eval';
  return { graph: m.graph, roles: { ...stateRoles(m), logits: 'logits' } };
}

export function generateImportedAttack(im: ImportedOnnx, kind: AttackLossKind, gradOptions: GradOptions = {}): GeneratedGraph {
  const m = importedModel(im, 'eval');
  promoteState(m);
  const g = m.graph;
  g.name = attackGraphName(kind);
  const b = new Builder(g);
  const perExample = output(b, attackLoss(b, g, kind, m.logits), 'loss');
  const total = b.reduceSum(perExample, [0], false);
  let grads: Record<string, string>;
  try {
    grads = addGradients(g, total, [m.input], gradOptions);
  } catch (e) {
    throw new UserError(`${im.source} cannot be attacked with gradients: ${(e as Error).message}`);
  }
  output(b, grads[m.input]!, 'grad_input');
  const roles: Record<string, ValueRole> = { ...stateRoles(m), labels: 'labels', targets: 'labels', clean_probs: 'data', loss: 'per-example-loss', logits: 'logits', grad_input: 'grad' };
  return { graph: g, roles };
}

export function generateImportedTrainStep(im: ImportedOnnx, train: NonNullable<ImportedArtifactOptions['train']>, gradOptions: GradOptions = {}): { gen: GeneratedGraph; feedback: Record<string, string> } {
  if (im.params.length === 0) throw new UserError(`${im.source} has no trainable initializers (weights of Conv/Gemm/MatMul/normalisation layers), so it cannot be fine-tuned`);
  const m = importedModel(im, 'train');
  const g = m.graph;
  g.name = 'train_step';
  const b = new Builder(g);
  const labels = g.addInput('labels', 'int64', ['N']);
  const lr = g.addInput('lr', 'float32', []);
  const roles: Record<string, ValueRole> = { labels: 'labels', lr: 'lr', loss: 'loss', logits: 'logits', grad_norms_sq: 'grad-norms' };
  output(b, crossEntropy(b, m.logits, labels, { labelSmoothing: train.labelSmoothing }), 'loss');
  promoteState(m);
  Object.assign(roles, stateRoles(m));
  let grads: Record<string, string>;
  try {
    grads = addGradients(g, 'loss', m.params.map((p) => p.name), gradOptions);
  } catch (e) {
    throw new UserError(`${im.source} cannot be fine-tuned: ${(e as Error).message}`);
  }
  const norms = b.concat(m.params.map((p) => b.reshape(b.reduce('ReduceSumSquare', grads[p.name]!, b.shape(grads[p.name]!).map((_, i) => i), false), [1])), 0);
  output(b, norms, 'grad_norms_sq');
  const feedback = emitSgdUpdate(b, m.params, grads, lr, train.optimizer);
  for (const [buf, upd] of Object.entries(m.bufferUpdates)) feedback[buf] = output(b, upd, `next.${buf}`);
  for (const [state, out] of Object.entries(feedback)) {
    roles[state] ??= 'momentum';
    roles[out] = roles[state]!;
  }
  g.prune();
  return { gen: { graph: g, roles }, feedback };
}

// ---------- cache ----------

let interopPrint: string | undefined;
function interopFingerprint(): string {
  if (interopPrint) return interopPrint;
  const dir = dirname(fileURLToPath(import.meta.url));
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) if (/\.(ts|js)$/.test(name) && !name.endsWith('.d.ts')) h.update(name).update(readFileSync(join(dir, name)));
  interopPrint = h.digest('hex').slice(0, 16);
  return interopPrint;
}

function ioSpecs(g: Graph, names: string[], roles: Record<string, ValueRole>): IoSpec[] {
  return names.map((name) => ({ name, dtype: g.type(name).dtype, shape: g.shape(name), role: roles[name] ?? 'data' }));
}

export interface ImportedManifest extends Manifest {
  /** Where the model came from (imported models only). */
  source: { kind: 'onnx'; file: string; sha256: string; opset: { original: number; used: number }; notes: string[] };
}

/**
 * Build (or load from `<graphsRoot>/<key>/`) the artifacts of an imported model. The key covers the
 * ONNX file's hash, the configuration and the generator code. `graphsRoot` null keeps them in memory.
 */
export function ensureImportedArtifacts(im: ImportedOnnx, graphsRoot: string | null, opts: ImportedArtifactOptions = {}): BuiltArtifacts {
  const cfg: ArtifactConfig = {
    model: im.spec,
    loss: { kind: 'ce', labelSmoothing: opts.train?.labelSmoothing ?? 0 },
    optimizer: opts.train?.optimizer ?? { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 },
  };
  const key = createHash('sha256')
    .update(JSON.stringify({ format: ARTIFACT_FORMAT, cfg, onnx: im.sha256, train: !!opts.train, gen: generatorFingerprint(), interop: interopFingerprint() }))
    .digest('hex').slice(0, 20);
  const dir = graphsRoot === null ? `(memory)/${key}` : join(graphsRoot, key);
  const manifestPath = join(dir, 'manifest.json');
  if (graphsRoot !== null && existsSync(manifestPath) && !opts.gradOptions) {
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
  const gens: Record<string, GeneratedGraph> = { eval: generateImportedEval(im) };
  for (const kind of ATTACK_LOSSES) gens[attackGraphName(kind)] = generateImportedAttack(im, kind, opts.gradOptions);
  let feedback: Record<string, string> = {};
  if (opts.train) {
    const t = generateImportedTrainStep(im, opts.train, opts.gradOptions);
    gens.train_step = t.gen;
    feedback = t.feedback;
  }
  if (graphsRoot !== null) mkdirSync(dir, { recursive: true });
  const bytes: Record<string, Uint8Array> = {};
  const graphs: Record<string, GraphEntry> = {};
  for (const [name, { graph, roles }] of Object.entries(gens)) {
    const data = graphToModelProto(graph, { advrun_artifact: name, advrun_key: key, advrun_source: im.sha256 });
    if (graphsRoot !== null) writeFileAtomic(join(dir, `${name}.onnx`), data);
    bytes[name] = data;
    graphs[name] = {
      file: `${name}.onnx`,
      sha256: createHash('sha256').update(data).digest('hex'),
      inputs: ioSpecs(graph, graph.inputs, roles),
      outputs: ioSpecs(graph, graph.outputs, roles),
    };
  }
  const manifest: ImportedManifest = {
    format: ARTIFACT_FORMAT, key, config: cfg, params: im.params, buffers: im.buffers,
    momentum: Object.keys(feedback).filter((k) => k.startsWith('momentum.')), feedback, graphs,
    source: { kind: 'onnx', file: im.source, sha256: im.sha256, opset: im.opset, notes: im.notes },
  };
  if (graphsRoot !== null) writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2));
  return { dir, manifest, bytes, cached: false };
}
