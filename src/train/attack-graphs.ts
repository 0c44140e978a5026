// The losses attacks maximise, as graphs over the eval-mode model: each gives per-example losses and
// d(sum of losses)/d(input). Only the input gradient is formed (no parameter gradients).

import type { Builder } from '../ir/builder.js';
import type { Graph } from '../ir/graph.js';
import { makeTensor } from '../ir/tensor.js';
import { crossEntropy } from './losses.js';

export type AttackLossKind = 'ce' | 'kl' | 'dlr' | 'dlr-targeted';

/** Adds the loss's extra inputs to `g` and returns the per-example loss [N]. */
export function attackLoss(b: Builder, g: Graph, kind: AttackLossKind, logits: string): string {
  const k = b.shape(logits)[1] as number;
  switch (kind) {
    case 'ce':
      return crossEntropy(b, logits, g.addInput('labels', 'int64', ['N']), { reduction: 'none' });
    case 'kl': {
      // KL(p_clean || softmax(z)); p_clean is given (TRADES computes it once on the clean batch).
      const p = g.addInput('clean_probs', 'float32', ['N', k]);
      const logq = b.op('LogSoftmax', [logits], { axis: 1 });
      const logp = b.log(b.add(p, b.scalar(1e-12)));
      return b.reduceSum(b.mul(p, b.sub(logp, logq)), [1], false);
    }
    case 'dlr':
    case 'dlr-targeted': {
      const onehot = (labels: string) => b.op('OneHot', [labels, b.constant(makeTensor('int64', [], [k])), b.constant(makeTensor('float32', [2], [0, 1]))], { axis: -1 });
      const pick = (oh: string) => b.reduceSum(b.mul(logits, oh), [1], false);
      const yOh = onehot(g.addInput('labels', 'int64', ['N']));
      const zy = pick(yOh);
      const topk = Math.min(kind === 'dlr' ? 3 : 4, k);
      const [sorted] = b.opN('TopK', [logits, b.ints([topk])], 2, { axis: -1, largest: 1, sorted: 1 });
      const nth = (i: number) => b.squeeze(b.slice(sorted!, [i], [i + 1], [1]), [1]);
      if (kind === 'dlr') {
        // max over i != y: push the true class far down before taking the max.
        const other = b.reduce('ReduceMax', b.sub(logits, b.scale(yOh, 1e9)), [1], false);
        const denom = b.add(b.sub(nth(0), nth(Math.min(2, topk - 1))), b.scalar(1e-12));
        return b.neg(b.div(b.sub(zy, other), denom));
      }
      const zt = pick(onehot(g.addInput('targets', 'int64', ['N'])));
      const denom = b.add(b.sub(nth(0), b.scale(b.add(nth(Math.min(2, topk - 1)), nth(topk - 1)), 0.5)), b.scalar(1e-12));
      return b.neg(b.div(b.sub(zy, zt), denom));
    }
  }
}
