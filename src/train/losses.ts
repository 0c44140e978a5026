// Losses built from primitive ONNX ops (so they differentiate through the registered VJP rules).

import type { Builder } from '../ir/builder.js';
import { makeTensor } from '../ir/tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

function reduceBatch(b: Builder, perExample: string, reduction: Reduction): string {
  if (reduction === 'none') return perExample;
  return reduction === 'mean' ? b.reduceMean(perExample, [0], false) : b.reduceSum(perExample, [0], false);
}

/**
 * Cross-entropy of logits [N, K] against int64 labels [N], with PyTorch's label smoothing:
 * the target is (1 - s) * onehot + s / K.
 */
export function crossEntropy(b: Builder, logits: string, labels: string, opts: { labelSmoothing?: number; reduction?: Reduction } = {}): string {
  const k = b.shape(logits)[1] as number;
  const s = opts.labelSmoothing ?? 0;
  const logp = b.op('LogSoftmax', [logits], { axis: 1 });
  const onehot = b.op('OneHot', [labels, b.constant(makeTensor('int64', [], [k])), b.constant(makeTensor('float32', [2], [0, 1]))], { axis: -1 });
  const target = s === 0 ? onehot : b.add(b.scale(onehot, 1 - s), b.scalar(s / k));
  const perExample = b.neg(b.reduceSum(b.mul(target, logp), [1], false));
  return reduceBatch(b, perExample, opts.reduction ?? 'mean');
}

/**
 * KL(p || q) with p = softmax(pLogits) (treated as a constant target when `detachP`) and q = softmax(qLogits),
 * summed over classes: PyTorch's KLDivLoss(reduction='sum')(log_softmax(q), softmax(p)) per example.
 */
export function klDivergence(b: Builder, pLogits: string, qLogits: string, opts: { reduction?: Reduction; detachP?: boolean } = {}): string {
  let pl = pLogits;
  if (opts.detachP ?? true) pl = b.identity(pLogits, { stopGradient: true });
  const logp = b.op('LogSoftmax', [pl], { axis: 1 });
  const logq = b.op('LogSoftmax', [qLogits], { axis: 1 });
  const p = b.exp(logp);
  const perExample = b.reduceSum(b.mul(p, b.sub(logp, logq)), [1], false);
  return reduceBatch(b, perExample, opts.reduction ?? 'sum');
}
