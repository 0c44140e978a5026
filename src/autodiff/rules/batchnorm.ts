// VJP rule for BatchNormalization (X [N, C, *spatial] or [N, C]; scale, B, mean, var [C]).
//
// Inference mode (training_mode absent or 0) normalises with the given statistics:
//   y = (x - mean) * invstd * scale + B,  invstd = 1/sqrt(var + eps)
// so x, scale, B, mean and var all get (simple) cotangents.
//
// Training mode (training_mode = 1) normalises with the batch statistics over N and the spatial axes
// (biased variance, as ONNX defines it), which depend on x:
//   dx = scale * invstd * (g - mean(g) - xhat * mean(g * xhat))
// computed in the folded form of batchStatisticsVjp (below), which advrun's own train-mode BN also uses
// through the custom rule BATCH_STATISTICS_BN_VJP. input_mean/input_var do not affect Y in this mode. The running_mean / running_var outputs are statistics updates, not part of the
// model function: their cotangents are ignored, as PyTorch updates its running buffers outside autograd.

import type { Builder } from '../../ir/builder.js';
import { attrFloat, attrInt } from '../../ir/graph.js';
import { registerCustomVjp, registerVjp } from '../registry.js';

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => i + from);

/** A per-channel vector [C] shaped to broadcast against [N, C, *spatial]: [C, 1, ...] (unchanged for rank 2). */
function perChannel(b: Builder, v: string, rank: number): string {
  return rank > 2 ? b.unsqueeze(v, range(rank - 2, 1)) : v;
}

registerVjp('BatchNormalization', ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!gy) return []; // only running-stat outputs reach the loss: nothing flows back (see above)
  const x = input(0), scale = input(1);
  const rank = b.rank(x);
  const axes = [0, ...range(rank - 2, 2)];
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const training = attrInt(node, 'training_mode', 0) === 1;
  const ch = (v: string) => perChannel(b, v, rank);
  const sumNS = (v: string) => b.reduceSum(v, axes, false); // over N and spatial axes -> [C]

  if (training) {
    // Batch statistics, recomputed: input_mean/input_var do not affect Y in this mode.
    const mean = b.reduceMean(x, axes, false);
    const xc = b.sub(x, ch(mean));
    return batchStatisticsVjp(b, x, gy, scale, mean, b.reduceMean(b.mul(xc, xc), axes, false), eps, needs, xc);
  }

  const mean = input(3), variance = input(4);
  const invstd = b.op('Reciprocal', [b.sqrt(b.add(variance, b.scalarLike(eps, variance)))]); // [C]
  const needXc = needs(1) || needs(4);
  const xc = needXc ? b.sub(x, ch(mean)) : undefined;
  const gyScaled = needs(0) || needs(3) ? b.mul(gy, ch(b.mul(scale, invstd))) : undefined; // g * scale * invstd
  const sumGyXc = needXc ? sumNS(b.mul(gy, xc!)) : undefined;                                // sum g * (x - mean)
  return [
    needs(0) ? gyScaled : undefined,
    needs(1) ? b.mul(sumGyXc!, invstd) : undefined,                                  // sum g * xhat
    needs(2) ? sumNS(gy) : undefined,
    needs(3) ? b.neg(sumNS(gyScaled!)) : undefined,
    // d invstd / d var = -invstd^3 / 2
    needs(4) ? b.mul(b.mul(sumGyXc!, scale), b.scale(b.mul(invstd, b.mul(invstd, invstd)), -0.5)) : undefined,
  ];
});

/**
 * Name of the VJP for a BatchNormalization node fed with its own input's batch statistics
 * (mean = ReduceMean(x), var = biased ReduceMean((x - mean)^2) over N and the spatial axes), the way
 * advrun's models build train-mode BN. The rule gives x's total derivative, statistics included, in
 * closed form, so the statistics' own nodes get no cotangent:
 *   dx = A g + B (x - mean) + C   with per-channel A = scale*invstd, B = -scale*invstd^3*sum(g*(x-mean))/m,
 *   C = -A*sum(g)/m   (m elements per channel),
 * which is the usual invstd*scale*(g - mean(g) - xhat*mean(g*xhat)) with the per-channel factors folded:
 * a handful of full-tensor passes instead of back-propagating through the statistics' Sub/Mul/ReduceMean
 * chain (which materialises broadcasts with Expand).
 */
export const BATCH_STATISTICS_BN_VJP = 'batchnorm-batch-statistics';

registerCustomVjp(BATCH_STATISTICS_BN_VJP, ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!gy) return [];
  if (node.op !== 'BatchNormalization') throw new Error(`${BATCH_STATISTICS_BN_VJP} applies to BatchNormalization nodes, not ${node.op}`);
  return batchStatisticsVjp(b, input(0), gy, input(1), input(3), input(4), attrFloat(node, 'epsilon', 1e-5), needs);
});

/**
 * Cotangents of x (through the statistics), scale and B for BN normalising x [N, C, ...] with its own
 * batch statistics `mean`, `variance` ([C], biased): the closed form above. Shared by training_mode=1
 * nodes (which recompute the statistics) and the custom rule (which takes the forward's).
 */
function batchStatisticsVjp(b: Builder, x: string, gy: string, scale: string, mean: string, variance: string, eps: number, needs: (i: number) => boolean, centred?: string): (string | undefined)[] {
  const rank = b.rank(x);
  const axes = [0, ...range(rank - 2, 2)];
  const ch = (v: string) => perChannel(b, v, rank);
  const sumNS = (v: string) => b.reduceSum(v, axes, false);
  const invstd = b.op('Reciprocal', [b.sqrt(b.add(variance, b.scalarLike(eps, variance)))]); // [C]
  const xc = centred ?? b.sub(x, ch(mean)); // x - mean, unless the caller already has it
  const sumG = sumNS(gy), sumGXc = sumNS(b.mul(gy, xc));
  let gx: string | undefined;
  if (needs(0)) {
    // Elements per channel, a run-time value when the batch is symbolic.
    const channels = b.shape(x)[1];
    if (typeof channels !== 'number') throw new Error('the channel dimension must be static');
    const perChannelCount = b.div(b.cast(b.op('Size', [x]), b.dtype(x)), b.scalarLike(channels, x));
    const a = b.mul(scale, invstd);
    const coefXc = b.neg(b.div(b.mul(b.mul(a, b.mul(invstd, invstd)), sumGXc), perChannelCount));
    const offset = b.neg(b.div(b.mul(a, sumG), perChannelCount));
    gx = b.add(b.add(b.mul(gy, ch(a)), b.mul(xc, ch(coefXc))), ch(offset));
  }
  return [gx, needs(1) ? b.mul(sumGXc, invstd) : undefined, needs(2) ? sumG : undefined];
}
