// VJP rule for Resize (nearest and linear, no antialiasing; see ir/resize-geometry.ts).
//
// Such a Resize is separable and linear in X: along each resized axis, Y = A · X with a fixed
// interpolation matrix A [out, in]. For NCHW bilinear upsampling Y = A_h · X · A_wᵀ, so
// dX = A_hᵀ · dY · A_w: one MatMul with a constant per resized axis. That is exact, uses standard ops,
// and is itself differentiable (MatMul has a rule), so Hessian-vector products pass through too.

import type { Builder } from '../../ir/builder.js';
import { makeTensor } from '../../ir/tensor.js';
import { interpolationMatrix, resizeGeometry } from '../../ir/resize-geometry.js';
import { registerVjp } from '../registry.js';

/** Constant [rows, cols] matrix in `like`'s dtype; `transpose` stores Mᵀ of the row-major [cols, rows] input. */
function matrixConstant(b: Builder, m: Float64Array, rows: number, cols: number, like: string, transpose: boolean): string {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) data[i * cols + j] = transpose ? m[j * rows + i]! : m[i * cols + j]!;
  return b.constant(makeTensor(b.dtype(like), [rows, cols], data));
}

/** Contract the cotangent's `axis` (size out) with A [out, in], leaving size in along that axis. */
function applyTransposed(b: Builder, g: string, axis: number, a: Float64Array, out: number, inSize: number): string {
  const r = b.rank(g);
  if (axis === r - 1) return b.matmul(g, matrixConstant(b, a, out, inSize, g, false)); // [..., out] @ [out, in]
  if (axis === r - 2) return b.matmul(matrixConstant(b, a, inSize, out, g, true), g); // [in, out] @ [..., out, W]
  // Any other axis: swap it with the last one, contract, swap back.
  const perm = [...Array(r).keys()];
  perm[axis] = r - 1;
  perm[r - 1] = axis;
  return b.transpose(applyTransposed(b, b.transpose(g, perm), r - 1, a, out, inSize), perm);
}

// Only X is differentiable; roi, scales and sizes are constants.
registerVjp('Resize', ({ b, node, gradOutputs: [gy], input, needs }) => {
  if (!needs(0)) return [];
  const geo = resizeGeometry(b.graph, node, b.shape(input(0)));
  let g = gy!;
  geo.axes.forEach((ax, axis) => {
    if (ax) g = applyTransposed(b, g, axis, interpolationMatrix(ax, geo), ax.outSize, ax.inSize);
  });
  return [g];
});
