// ONNX Runtime's NCHWc layout ops, which runtime/nchwc.ts emits around lowered convolutions (the NCHWc
// Conv itself has the standard Conv's shape rule). ReorderInput pads channels to a whole number of blocks:
// a no-op on the shape here, since only block-aligned activations are reordered. ReorderOutput keeps
// `channels` of them.
import { attrInt } from '../graph.js';
import { registerShape } from '../shape-registry.js';

registerShape('ReorderInput', ({ inputs }) => [{ ...inputs[0]! }]);
registerShape('ReorderOutput', ({ inputs, node }) => [{ dtype: inputs[0]!.dtype, shape: inputs[0]!.shape!.map((d, i) => (i === 1 ? attrInt(node, 'channels') : d)) }]);
