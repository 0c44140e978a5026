// TopK: the cotangent of the selected values goes back to the positions they came from.

import { attrInt } from '../../ir/graph.js';
import { makeTensor } from '../../ir/tensor.js';
import { registerVjp } from '../registry.js';

registerVjp('TopK', ({ b, node, gradOutputs: [gValues], input, output }) => {
  if (!gValues) return [];
  const shape = b.shape(input(0));
  const rank = shape.length;
  const axis = (attrInt(node, 'axis', -1) + rank) % rank;
  if (axis !== rank - 1) throw new Error('only TopK along the last axis is differentiable');
  const n = shape[axis] as number;
  // onehot[..., j, i] = (indices[..., j] == i); dx[..., i] = sum_j g[..., j] * onehot[..., j, i]
  const onehot = b.op('OneHot', [output(1), b.constant(makeTensor('int64', [], [n])), b.constant(makeTensor(b.dtype(gValues), [2], [0, 1]))], { axis: -1 });
  return [b.reduceSum(b.mul(b.unsqueeze(gValues, [rank]), onehot), [rank - 1], false)];
});
