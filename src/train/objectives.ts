// What a train step minimises, built over the model's forward pass(es). Each objective declares the
// image/label inputs it takes; the runtime feeds them (TWINS' two wings get the two halves of a batch).

import type { Builder } from '../ir/builder.js';
import type { ModelGraph } from '../models/index.js';
import { crossEntropy, klDivergence } from './losses.js';

/**
 * - 'ce': cross-entropy on one batch (standard training; PGD-AT and FGSM-RS feed adversarial images).
 * - 'trades': CE(f(x), y) + beta * KL(f(x) || f(x_adv)) / N, both passes in train mode.
 * - 'twins-at': lambda * CE(frozen wing, first half) + CE(adaptive wing, second half) (TWINS, CVPR 2023).
 * - 'twins-trades': lambda * CE(clean frozen) + CE(clean adaptive)
 *     + beta * [lambda * KL(clean frozen || adv frozen) + KL(clean adaptive || adv adaptive)] summed / B,
 *   B the full batch (the official code divides each wing's sum by the full batch).
 */
export type LossConfig =
  | { kind: 'ce'; labelSmoothing: number }
  | { kind: 'trades'; labelSmoothing: number; beta: number }
  | { kind: 'twins-at'; labelSmoothing: number; lambda: number }
  | { kind: 'twins-trades'; labelSmoothing: number; lambda: number; beta: number };

export interface ObjectiveInputs {
  images: string[];
  labels: string[];
}

export function objectiveInputs(loss: LossConfig): ObjectiveInputs {
  switch (loss.kind) {
    case 'ce': return { images: ['input'], labels: ['labels'] };
    case 'trades': return { images: ['input', 'input_adv'], labels: ['labels'] };
    case 'twins-at': return { images: ['input', 'input_b'], labels: ['labels', 'labels_b'] };
    case 'twins-trades': return { images: ['input', 'input_b', 'input_adv', 'input_adv_b'], labels: ['labels', 'labels_b'] };
  }
}

/** Forward pass(es) in train mode over the (already created) inputs, and the scalar loss. */
export function buildObjective(mg: ModelGraph, b: Builder, loss: LossConfig): { loss: string; logits: string } {
  const m = mg.m;
  const ls = { labelSmoothing: loss.labelSmoothing };
  const wing = (w: 'frozen' | 'adaptive', x: string) => {
    m.wing = w;
    const out = mg.forward(x, 'train');
    m.wing = 'adaptive';
    return out;
  };
  switch (loss.kind) {
    case 'ce': {
      const logits = mg.forward('input', 'train');
      return { loss: crossEntropy(b, logits, 'labels', ls), logits };
    }
    case 'trades': {
      const clean = mg.forward('input', 'train');
      const kl = klDivergence(b, clean, mg.forward('input_adv', 'train'), { reduction: 'mean', detachP: false });
      return { loss: b.add(crossEntropy(b, clean, 'labels', ls), b.scale(kl, loss.beta)), logits: clean };
    }
    case 'twins-at': {
      const frozen = wing('frozen', 'input'), adaptive = wing('adaptive', 'input_b');
      const total = b.add(b.scale(crossEntropy(b, frozen, 'labels', ls), loss.lambda), crossEntropy(b, adaptive, 'labels_b', ls));
      return { loss: total, logits: b.concat([frozen, adaptive], 0) };
    }
    case 'twins-trades': {
      const cf = wing('frozen', 'input'), ca = wing('adaptive', 'input_b');
      const af = wing('frozen', 'input_adv'), aa = wing('adaptive', 'input_adv_b');
      const ce = b.add(b.scale(crossEntropy(b, cf, 'labels', ls), loss.lambda), crossEntropy(b, ca, 'labels_b', ls));
      // sum over a half / B = (mean over the half) / 2, the halves being equal.
      const kl = (p: string, q: string) => klDivergence(b, p, q, { reduction: 'mean', detachP: false });
      const robust = b.scale(b.add(b.scale(kl(cf, af), loss.lambda), kl(ca, aa)), 0.5 * loss.beta);
      return { loss: b.add(ce, robust), logits: b.concat([cf, ca], 0) };
    }
  }
}
