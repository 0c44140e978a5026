// The files of one training run's directory, in one place: `advrun train --out` writes them, the grid
// scheduler, `reproduce` and the loaders read them.

import { join, resolve } from 'node:path';

export interface RunFiles {
  dir: string;
  config: string;
  metrics: string;
  checkpoint: string;
  best: string;
  result: string;
  /** The --save-every snapshot after `epoch` (1-based). */
  snapshot(epoch: number): string;
}

/** The files `advrun train` writes in its --out directory (the grid's run directories reuse them). */
export function runFiles(dir: string): RunFiles {
  const d = resolve(dir);
  return {
    dir: d, config: join(d, 'config.json'), metrics: join(d, 'metrics.jsonl'), checkpoint: join(d, 'checkpoint.safetensors'),
    best: join(d, 'checkpoint-best.safetensors'), result: join(d, 'result.json'), snapshot: (epoch) => join(d, `checkpoint-epoch${epoch}.safetensors`),
  };
}
