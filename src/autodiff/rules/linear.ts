// VJP rules for the matrix products Gemm and MatMul.

import type { Builder } from '../../ir/builder.js';
import { attrFloat, attrInt } from '../../ir/graph.js';
import { registerVjp } from '../registry.js';
import { unbroadcast } from '../util.js';

// Y = alpha * A' B' + beta * C, with A' = transA ? A^T : A and B' = transB ? B^T : B.
//   dA' = alpha * G B'^T and dB' = alpha * A'^T G; each is then transposed back if its operand was, which
//   is again a single Gemm with the trans flags chosen so nothing is transposed explicitly:
//   dA = transA ? alpha * B' G^T : alpha * G B'^T,   dB = transB ? alpha * G^T A' : alpha * A'^T G.
// dC = beta * G summed over the axes C was broadcast along (C may be [N], [1, N], [M, 1], [1] or a scalar).
registerVjp('Gemm', ({ b, node, gradOutputs: [gy], input, needs }) => {
  const a = input(0), bm = input(1);
  const alpha = attrFloat(node, 'alpha', 1), beta = attrFloat(node, 'beta', 1);
  const ta = attrInt(node, 'transA', 0), tb = attrInt(node, 'transB', 0);
  const gemm = (x: string, y: string, transA: number, transB: number) =>
    b.op('Gemm', [x, y], { alpha: alpha === 1 ? undefined : alpha, transA: transA || undefined, transB: transB || undefined });
  const ga = needs(0) ? (ta ? gemm(bm, gy!, tb, 1) : gemm(gy!, bm, 0, 1 - tb)) : undefined;
  const gb = needs(1) ? (tb ? gemm(gy!, a, 1, ta) : gemm(a, gy!, 1 - ta, 0)) : undefined;
  const gc = node.inputs[2] && needs(2) ? unbroadcast(b, b.scale(gy!, beta), input(2)) : undefined;
  return [ga, gb, gc];
});

/** Swap the last two axes. */
function transposeLast2(b: Builder, v: string): string {
  const r = b.rank(v);
  return b.transpose(v, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
}

// Y = A @ B with numpy semantics: a 1-D A is a row [1, K] and a 1-D B a column [K, 1] whose added axis is
// dropped from Y; the batch axes broadcast. With A2, B2 the 2-D+ promoted operands and G2 the cotangent
// with the dropped axes restored:
//   dA2 = G2 @ B2^T,  dB2 = A2^T @ G2,
// each summed over the batch axes its operand was broadcast along, then the added axis squeezed away.
registerVjp('MatMul', ({ b, gradOutputs: [gy], input, needs }) => {
  const a = input(0), bm = input(1);
  const ra = b.rank(a), rb = b.rank(bm);
  const a2 = ra === 1 ? b.unsqueeze(a, [0]) : a;
  const b2 = rb === 1 ? b.unsqueeze(bm, [1]) : bm;
  let g2 = gy!;
  if (ra === 1 && rb === 1) g2 = b.reshape(g2, [1, 1]);
  else if (ra === 1) g2 = b.unsqueeze(g2, [-2]);
  else if (rb === 1) g2 = b.unsqueeze(g2, [-1]);

  let ga: string | undefined, gb: string | undefined;
  if (needs(0)) {
    ga = unbroadcast(b, b.matmul(g2, transposeLast2(b, b2)), a2);
    if (ra === 1) ga = b.squeeze(ga, [0]);
  }
  if (needs(1)) {
    const [k, n] = b.shape(b2);
    if (rb <= 2 && b.rank(a2) > 2 && typeof k === 'number' && typeof n === 'number') {
      // A shared 2-D weight under a batched A (a linear layer over [batch, seq, K]): fold the batch axes
      // into the rows, so that one [K, rows] x [rows, N] product replaces a batch of [K, N] products
      // that would then be summed.
      gb = b.matmul(b.transpose(b.reshape(a2, [-1, k]), [1, 0]), b.reshape(g2, [-1, n]));
    } else {
      gb = unbroadcast(b, b.matmul(transposeLast2(b, a2), g2), b2);
    }
    if (rb === 1) gb = b.squeeze(gb, [1]);
  }
  return [ga, gb];
});
