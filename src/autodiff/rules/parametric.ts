// VJP rules for activations with learnable parameters: PRelu (torch.nn.PReLU exports it).
//
// ONNX PRelu: y = x for x >= 0, slope * x for x < 0, with slope broadcast to x (unidirectionally).
// The subgradient at 0 follows PyTorch's prelu backward, which tests x > 0:
//   dx = gy where x > 0, gy * slope elsewhere;   dslope = sum over the broadcast of gy * x where x <= 0.

import { registerVjp } from '../registry.js';
import { unbroadcast } from '../util.js';

registerVjp('PRelu', ({ b, gradOutputs: [gy], input, needs }) => {
  const x = input(0), slope = input(1);
  const pos = b.greater(x, b.scalarLike(0, x));
  const zero = b.scalarLike(0, gy!);
  return [
    needs(0) ? b.where(pos, gy!, b.mul(gy!, slope)) : undefined,
    needs(1) ? unbroadcast(b, b.where(pos, zero, b.mul(gy!, x)), slope) : undefined,
  ];
});
