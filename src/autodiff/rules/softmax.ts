// VJP rules for Softmax/LogSoftmax and the fused classification losses, plus Dropout in inference mode.

import type { Builder } from '../../ir/builder.js';
import { attrInt, attrString, type Node } from '../../ir/graph.js';
import { makeTensor, toNumbers } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';

const norm = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/**
 * The axes a Softmax/LogSoftmax normalises over. Opset 13+: the single `axis` (default -1).
 * Before 13 the input is coerced to 2-D at `axis` (default 1), i.e. it normalises over all axes
 * from `axis` on, which the same formulas handle by reducing over all of them.
 */
function softmaxAxes(b: Builder, node: Node): number[] {
  const r = b.rank(node.inputs[0]!);
  if (b.graph.opset >= 13) return [norm(attrInt(node, 'axis', -1), r)];
  const axis = norm(attrInt(node, 'axis', 1), r);
  return Array.from({ length: r - axis }, (_, i) => axis + i);
}

// dx = y * (g - sum(g * y))
registerVjp('Softmax', ({ b, node, gradOutputs: [gy], output }) => {
  const y = output(0);
  return [b.mul(y, b.sub(gy!, b.reduceSum(b.mul(gy!, y), softmaxAxes(b, node), true)))];
});

// dx = g - softmax * sum(g), with softmax = exp(y)
registerVjp('LogSoftmax', ({ b, node, gradOutputs: [gy], output }) => [
  b.sub(gy!, b.mul(b.exp(output(0)), b.reduceSum(gy!, softmaxAxes(b, node), true))),
]);

/**
 * Shared part of SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss. Inputs are [N, C, d...]
 * scores (or log-probabilities) and int64 labels [N, d...]; each element's loss is
 * -w[label] * logp[label], and ignored labels weigh 0. Returns the one-hot of the labels along the
 * class axis and the cotangent of each element's loss ([N, 1, d...] or a scalar), weights included.
 */
function perElementCoefficient(b: Builder, node: Node, gLoss: string): { onehot: string; coef: string } {
  const x = node.inputs[0]!, labels = node.inputs[1]!, weights = node.inputs[2] || undefined;
  const xs = b.shape(x), dt = b.dtype(x);
  const C = xs[1];
  if (typeof C !== 'number') throw new Error(`the class dimension of ${node.op} must be static`);
  const reduction = attrString(node, 'reduction', 'mean');
  const ignore = node.attrs.ignore_index ? attrInt(node, 'ignore_index') : undefined;

  // Equal against [0..C) broadcast on axis 1 rather than OneHot, whose kernels lack float64.
  const classes = b.constant(makeTensor('int64', xs.map((_, i) => (i === 1 ? C : 1)), [...Array(C).keys()]));
  const lab = b.unsqueeze(labels, [1]);
  const onehot = b.cast(b.equal(lab, classes), dt);

  let w: string | undefined;
  let safe = lab;
  if (ignore !== undefined) {
    const ign = b.equal(lab, b.ints([ignore]));
    w = b.cast(b.op('Not', [ign]), dt);
    safe = b.where(ign, b.ints([0]), lab); // an ignored label may be out of range for Gather
  }
  if (weights) {
    const wl = b.op('Gather', [weights, safe], { axis: 0 });
    w = w ? b.mul(w, wl) : wl;
  }

  let g: string;
  if (reduction === 'none') g = b.unsqueeze(gLoss, [1]);
  else if (reduction === 'sum') g = gLoss;
  else if (reduction === 'mean') {
    // The mean divides by the total weight of the counted elements (the count, without weights).
    const total = w ? b.sumAll(w) : b.cast(b.op('Size', [labels]), dt);
    g = b.div(gLoss, total);
  } else throw new Error(`unknown ${node.op} reduction "${reduction}"`);
  return { onehot, coef: w ? b.mul(g, w) : g };
}

function checkNoWeightGrad(node: Node, needs: (i: number) => boolean): void {
  if (needs(2)) throw new Error(`advrun differentiates ${node.op} with respect to its scores only, not its class weights`);
}

// loss = -w[t] log softmax(x)[t]:  dx = coef * (softmax(x) - onehot(t)).
// The optional log_prob output adds its own LogSoftmax cotangent. Labels (int64) get none.
registerVjp('SoftmaxCrossEntropyLoss', ({ b, node, gradOutputs: [gLoss, gLogProb], needs }) => {
  checkNoWeightGrad(node, needs);
  const x = node.inputs[0]!;
  const logProb = node.outputs[1] || undefined;
  let p: string;
  if (logProb) p = b.exp(logProb);
  else if (b.graph.opset >= 13 || b.rank(x) === 2) p = b.op('Softmax', [x], { axis: 1 });
  else p = b.exp(b.sub(x, b.op('ReduceLogSumExp', [x], { axes: [1], keepdims: 1 }))); // opset 12 Softmax would flatten trailing axes
  const parts: string[] = [];
  if (gLoss) {
    const { onehot, coef } = perElementCoefficient(b, node, gLoss);
    parts.push(b.mul(coef, b.sub(p, onehot)));
  }
  if (gLogProb) parts.push(b.sub(gLogProb, b.mul(p, b.reduceSum(gLogProb, [1], true))));
  return [parts.length ? b.sum(parts) : undefined];
});

// loss = -w[t] x[t]:  dx = -coef * onehot(t)
registerVjp('NegativeLogLikelihoodLoss', ({ b, node, gradOutputs: [gLoss], needs }) => {
  checkNoWeightGrad(node, needs);
  const { onehot, coef } = perElementCoefficient(b, node, gLoss!);
  return [b.neg(b.mul(coef, onehot))];
});

// Inference-mode Dropout is the identity. In training mode the mask is random per run, and its
// scaling would have to be replayed exactly; advrun does not differentiate that.
registerVjp('Dropout', ({ b, node, gradOutputs: [gy] }) => {
  const mode = node.inputs[2];
  if (mode) {
    const t = b.graph.constantValue(mode);
    if (!t || toNumbers(t)[0] !== 0) {
      throw new Error('Dropout in training mode (training_mode input not a constant false) is not differentiable in advrun; export the model in eval mode or remove the Dropout');
    }
  }
  return [gy, undefined, undefined];
});
