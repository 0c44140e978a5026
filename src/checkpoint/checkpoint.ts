// Checkpoints: parameters and BN statistics under their PyTorch names, momentum buffers under
// "momentum.<param>", and a JSON metadata header (model spec, progress, config), as safetensors.
// Written atomically, so an interrupted run never leaves a half-written checkpoint behind.

import type { Tensor } from '../ir/tensor.js';
import type { ModelSpec } from '../models/spec.js';
import { UserError } from '../util/errors.js';
import { readInputFile } from '../util/fs.js';
import { decodeSafetensors, writeSafetensors } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'advrun-checkpoint/1';

export interface CheckpointMeta {
  model: ModelSpec;
  /** Epochs completed. */
  epoch: number;
  /** Train steps completed. */
  step: number;
  /** Anything else worth keeping (resolved run config, best metric...). */
  extra?: Record<string, unknown>;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  state: Map<string, Tensor>;
}

export function saveCheckpoint(path: string, state: Map<string, Tensor>, meta: CheckpointMeta): void {
  writeSafetensors(path, state, {
    format: CHECKPOINT_FORMAT,
    model: JSON.stringify(meta.model),
    epoch: String(meta.epoch),
    step: String(meta.step),
    extra: JSON.stringify(meta.extra ?? {}),
  });
}

export function loadCheckpoint(path: string): Checkpoint {
  return decodeCheckpoint(readInputFile(path), path);
}

/** A checkpoint from bytes already read (`path` names it in errors). */
export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, path);
  if (metadata.format !== CHECKPOINT_FORMAT || !metadata.model) {
    throw new UserError(`${path} is not an advrun checkpoint (no "${CHECKPOINT_FORMAT}" metadata); PyTorch checkpoints need --arch and the import path`);
  }
  return {
    meta: { model: JSON.parse(metadata.model), epoch: Number(metadata.epoch), step: Number(metadata.step), extra: JSON.parse(metadata.extra ?? '{}') },
    state: tensors,
  };
}

/** Check that `state` has every tensor `expected` names with the same shape; name the first mismatch. */
export function checkStateMatches(state: Map<string, Tensor>, expected: Map<string, Tensor>, source: string, arch: string): void {
  for (const [name, want] of expected) {
    const got = state.get(name);
    if (!got) throw new UserError(`${source} does not fit ${arch}: tensor "${name}" [${want.dims}] is missing`);
    if (got.dims.length !== want.dims.length || got.dims.some((d, i) => d !== want.dims[i])) {
      throw new UserError(`${source} does not fit ${arch}: tensor "${name}" has shape [${got.dims}] but the model needs [${want.dims}]`);
    }
  }
}
