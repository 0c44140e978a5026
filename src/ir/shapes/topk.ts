// TopK: values and int64 indices, with the k-sized axis (k must be a constant).

import { attrInt } from '../graph.js';
import { toNumbers } from '../tensor.js';
import { registerShape } from '../shape-registry.js';

registerShape('TopK', (ctx) => {
  const x = ctx.inputs[0]!;
  if (!x.shape) throw new Error('input has unknown shape');
  const k = ctx.graph.constantValue(ctx.node.inputs[1]!);
  if (!k) throw new Error('k must be a constant');
  const axis = attrInt(ctx.node, 'axis', -1);
  const a = axis < 0 ? axis + x.shape.length : axis;
  const shape = x.shape.map((d, i) => (i === a ? toNumbers(k)[0]! : d));
  return [{ dtype: x.dtype, shape }, { dtype: 'int64', shape }];
});
