// Training artifacts for imported ONNX models: the same graphs, roles and manifest that
// src/train/artifacts.ts generates for built-in architectures (eval, attack_<loss>, optionally
// train_step), built by the same generators from an ImportedOnnx template (a ModelSource) instead
// of buildModel, so ModelRuntime runs them unchanged.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GradOptions } from '../autodiff/grad.js';
import {
  ARTIFACT_FORMAT, ATTACK_LOSSES, attackGraphName, generateAttack, generateEval, generateTrainStep, generatorFingerprint, loadCachedArtifacts, writeArtifacts,
  type ArtifactConfig, type BuiltArtifacts, type GeneratedGraph, type Manifest, type ModelSource,
} from '../train/artifacts.js';
import type { SgdConfig } from '../train/optimizer.js';
import { UserError } from '../util/errors.js';
import { importedModel, type ImportedOnnx } from './onnx-import.js';
import { sha256Hex, sourceFingerprint } from '../util/hash.js';

export interface ImportedArtifactOptions {
  /** Also build the train step (fine-tuning): CE with label smoothing, SGD. Omitted: eval and attack graphs only. */
  train?: { labelSmoothing: number; optimizer: SgdConfig; plannedBatch?: number };
  gradOptions?: GradOptions;
}

/** The imported template as the generators' model source; train mode switches BN to batch statistics. */
export function importedModelSource(im: ImportedOnnx): ModelSource {
  return {
    build: (bnMode) => importedModel(im, bnMode),
    gradientError: (task, e) => new UserError(`${im.source} ${task === 'attack' ? 'cannot be attacked with gradients' : 'cannot be fine-tuned'}: ${e.message}`),
  };
}

function importedConfig(im: ImportedOnnx, train: ImportedArtifactOptions['train']): ArtifactConfig {
  return {
    model: im.spec,
    loss: { kind: 'ce', labelSmoothing: train?.labelSmoothing ?? 0 },
    optimizer: train?.optimizer ?? { kind: 'sgd', momentum: 0, nesterov: false, weightDecay: 0 },
    ...(train?.plannedBatch ? { plannedBatch: train.plannedBatch } : {}),
  };
}

export function generateImportedTrainStep(im: ImportedOnnx, train: NonNullable<ImportedArtifactOptions['train']>, gradOptions: GradOptions = {}): { gen: GeneratedGraph; feedback: Record<string, string> } {
  if (im.params.length === 0) throw new UserError(`${im.source} has no trainable initializers (weights of Conv/Gemm/MatMul/normalisation layers), so it cannot be fine-tuned`);
  const { gen, feedback } = generateTrainStep(importedConfig(im, train), importedModelSource(im), gradOptions);
  return { gen, feedback };
}

// ---------- cache ----------

let interopPrint: string | undefined;
function interopFingerprint(): string {
  interopPrint ??= sourceFingerprint([dirname(fileURLToPath(import.meta.url))]);
  return interopPrint;
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
  const cfg = importedConfig(im, opts.train);
  const key = sha256Hex(JSON.stringify({ format: ARTIFACT_FORMAT, cfg, onnx: im.sha256, train: !!opts.train, gen: generatorFingerprint(), interop: interopFingerprint() })).slice(0, 20);
  const dir = graphsRoot === null ? `(memory)/${key}` : join(graphsRoot, key);
  if (graphsRoot !== null && !opts.gradOptions) {
    const cached = loadCachedArtifacts(dir);
    if (cached) return cached;
  }
  const source = importedModelSource(im);
  const gens: Record<string, GeneratedGraph> = { eval: generateEval(cfg, source) };
  for (const kind of ATTACK_LOSSES) gens[attackGraphName(kind)] = generateAttack(cfg, kind, opts.gradOptions, source);
  let feedback: Record<string, string> = {};
  if (opts.train) {
    const t = generateImportedTrainStep(im, opts.train, opts.gradOptions);
    gens.train_step = t.gen;
    feedback = t.feedback;
  }
  const origin: ImportedManifest['source'] = { kind: 'onnx', file: im.source, sha256: im.sha256, opset: im.opset, notes: im.notes };
  return writeArtifacts(dir, key, cfg, { gens, params: im.params, buffers: im.buffers, feedback }, {
    // Graphs made with gradOptions (e.g. a smoothed backward) are not what the key names: never cached.
    persist: graphsRoot !== null && !opts.gradOptions,
    metadata: { advrun_source: im.sha256 },
    extra: { source: origin },
  });
}
