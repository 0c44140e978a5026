// Window geometry shared by Conv, ConvTranspose and pooling: explicit pads from auto_pad, output sizes.

import { attrInts, attrString, type Node } from './graph.js';

export interface WindowGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** [begin_0, begin_1, ..., end_0, end_1, ...] as in ONNX. */
  pads: number[];
  ceilMode: boolean;
}

/** Resolve a Conv/pool node's window attributes into explicit numbers for spatial input sizes `spatial`. */
export function windowGeometry(node: Node, spatial: number[], kernel: number[]): WindowGeometry {
  const r = spatial.length;
  const strides = attrInts(node, 'strides', Array(r).fill(1));
  const dilations = attrInts(node, 'dilations', Array(r).fill(1));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  let pads = attrInts(node, 'pads', Array(2 * r).fill(0));
  if (autoPad === 'VALID') pads = Array(2 * r).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const out = Math.ceil(spatial[i]! / strides[i]!);
      const total = Math.max(0, (out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - spatial[i]!);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i]!;
    }
  } else if (autoPad !== 'NOTSET') throw new Error(`unknown auto_pad "${autoPad}"`);
  const ceilMode = (node.attrs.ceil_mode?.value as number | undefined) === 1;
  return { kernel, strides, dilations, pads, ceilMode };
}

export function windowOutputSize(g: WindowGeometry, spatial: number[]): number[] {
  const r = spatial.length;
  return spatial.map((n, i) => {
    const span = (g.kernel[i]! - 1) * g.dilations[i]! + 1;
    const padded = n + g.pads[i]! + g.pads[i + r]!;
    let out = (g.ceilMode ? Math.ceil : Math.floor)((padded - span) / g.strides[i]!) + 1;
    // PyTorch/ONNX: with ceil_mode, a last window that starts entirely in the end padding is dropped.
    if (g.ceilMode && (out - 1) * g.strides[i]! >= n + g.pads[i]!) out -= 1;
    return out;
  });
}
