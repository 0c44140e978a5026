// Learning-rate schedules, evaluated per iteration (fractional epoch), as in the AT literature:
// piecewise (Madry / Rice: /10 at 50% and 75%), cosine annealing, cyclic (Wong et al.'s fast AT:
// linear up to the peak at 2/5 of training, then down to 0), each with optional linear warm-up.

export type ScheduleKind = 'piecewise' | 'cosine' | 'cyclic' | 'constant';

export interface ScheduleConfig {
  kind: ScheduleKind;
  lr: number;
  epochs: number;
  /** Warm-up epochs (linear from 0). */
  warmup: number;
  /** Piecewise milestones as fractions of training (default 0.5, 0.75) and the decay factor. */
  milestones?: number[];
  gamma?: number;
}

/** Learning rate at fractional epoch t in [0, epochs). */
export function learningRate(s: ScheduleConfig, t: number): number {
  if (s.warmup > 0 && t < s.warmup) return (s.lr * (t + 1e-9)) / s.warmup;
  const frac = s.epochs > 0 ? t / s.epochs : 0;
  switch (s.kind) {
    case 'constant': return s.lr;
    case 'piecewise': {
      const hits = (s.milestones ?? [0.5, 0.75]).filter((m) => frac >= m).length;
      return s.lr * (s.gamma ?? 0.1) ** hits;
    }
    case 'cosine': {
      const start = s.warmup / s.epochs;
      const p = Math.min(1, (frac - start) / Math.max(1e-12, 1 - start));
      return 0.5 * s.lr * (1 + Math.cos(Math.PI * p));
    }
    case 'cyclic': return frac < 0.4 ? (s.lr * frac) / 0.4 : s.lr * Math.max(0, (1 - frac) / 0.6);
  }
}
