// Derive independent, reproducible RNG streams from (seed, purpose, epoch, batch...) so that any
// point of a run (e.g. epoch 7, batch 120 after a resume) can be regenerated without replaying
// earlier draws.

import { Rng } from '../util/random.js';

/** Purposes get distinct salts so the val split, limit, shuffling and augmentation never share a stream. */
export const SALT = { valSplit: 0x76616c31, limit: 0x6c696d31, shuffle: 0x73687566, augment: 0x61756731, subset: 0x6d696e69, folderStats: 0x73746174 };

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function deriveSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new Error(`deriveSeed: not an integer: ${p}`);
    // Fold the high bits in too, so seeds beyond 2^32 still differ.
    h = fmix32(Math.imul(h ^ (p >>> 0), 0x01000193) ^ Math.floor(p / 4294967296));
  }
  return h;
}

export function deriveRng(...parts: number[]): Rng {
  return new Rng(deriveSeed(...parts));
}
