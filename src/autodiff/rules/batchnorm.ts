// VJP rule for BatchNormalization (X [N, C, *spatial] or [N, C]; scale, B, mean, var [C]).
//
// Inference mode (training_mode absent or 0) normalises with the given statistics:
//   y = (x - mean) * invstd * scale + B,  invstd = 1/sqrt(var + eps)
// so x, scale, B, mean and var all get (simple) cotangents.
//
// Training mode (training_mode = 1) normalises with the batch statistics over N and the spatial axes
// (biased variance, as ONNX defines it), which depend on x:
//   dx = scale * invstd * (g - mean(g) - xhat * mean(g * xhat))
// (the usual (1/m) * invstd * scale * (m*g - sum g - xhat * sum(g*xhat)), written with means so the
// element count m never appears and a symbolic batch size costs nothing). input_mean/input_var do not
// affect Y in this mode. The running_mean / running_var outputs are statistics updates, not part of the
// model function: their cotangents are ignored, as PyTorch updates its running buffers outside autograd.

import type { Builder } from '../../ir/builder.js';
import { attrFloat, attrInt } from '../../ir/graph.js';
import { registerVjp } from '../registry.js';

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
    // Batch statistics, recomputed (keepdims: [1, C, 1, ...]).
    const mean = b.reduceMean(x, axes, true);
    const xc = b.sub(x, mean);
    const invstd = b.op('Reciprocal', [b.sqrt(b.add(b.reduceMean(b.mul(xc, xc), axes, true), b.scalarLike(eps, x)))]);
    const xhat = b.mul(xc, invstd);
    const gxhat = b.mul(gy, xhat);
    let gx: string | undefined;
    if (needs(0)) {
      const centred = b.sub(b.sub(gy, b.reduceMean(gy, axes, true)), b.mul(xhat, b.reduceMean(gxhat, axes, true)));
      gx = b.mul(centred, b.mul(invstd, ch(scale)));
    }
    return [gx, needs(1) ? sumNS(gxhat) : undefined, needs(2) ? sumNS(gy) : undefined];
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
