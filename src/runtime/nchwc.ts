// CPU lowering of convolutions whose weights are computed or fed at run time (the train step, the
// state-as-inputs graphs, the input gradient's flipped weights) to ONNX Runtime's blocked NCHWc kernels.
//
// Why: ONNX Runtime's CPU Conv runs im2col + SGEMM unless its own graph transformer rewrites the node to
// the NCHWc direct convolution (com.microsoft.nchwc Conv), and that transformer only fires for constant
// weights, because it re-packs them once at load time. The kernel itself takes any weight tensor, so
// advrun does the re-packing in the graph (packWeight: a few MB per step) and wraps the activations in
// ReorderInput/ReorderOutput, exactly the nodes ONNX Runtime's transformer inserts.
// Measured (bench/RESULTS.md): 1.5-3.2x faster than im2col per layer on narrow or low-resolution layers, about
// even on 64 channels at 32x32; the whole train step 1.37x faster on PreActResNet-18 w16, 1.2x on w64.
//
// The generated artifacts stay standard ONNX: this is applied to a copy of a graph when a CPU session is
// created, and only when the running ONNX Runtime has the NCHWc kernels (probed once; the block size is
// the CPU's vector width: 16 floats with AVX-512, 8 with AVX2). RuntimeOptions.nchwc = false or
// ADVRUN_NCHWC=0 turns it off.

import ort from 'onnxruntime-node';
import { Builder, newGraph } from '../ir/builder.js';
import { attrInt, type Graph, type Node } from '../ir/graph.js';
import { rebuildGraph } from '../ir/rebuild.js';
import { makeTensor } from '../ir/tensor.js';
import { graphToModelProto } from '../onnx/io.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

let blockSize: Promise<number> | undefined;

/** Whether to lower: RuntimeOptions.nchwc when given, else on unless ADVRUN_NCHWC=0. */
export function nchwcWanted(requested?: boolean): boolean {
  return requested ?? process.env.ADVRUN_NCHWC !== '0';
}

/**
 * ONNX Runtime's NCHWc block size on this CPU, or 1 when the loaded build has no NCHWc kernels (they are
 * registered only on CPUs with a blocked implementation). Read off ReorderInput's output: 4 channels are
 * padded to one block.
 */
export function nchwcBlockSize(): Promise<number> {
  blockSize ??= (async () => {
    try {
      const { graph } = newGraph('nchwc_probe');
      const x = graph.addInput('x', 'float32', [1, 4, 1, 1]);
      const [y] = graph.addNode('Shape', [graph.addNode('ReorderInput', [x], {}, { domain: NCHWC_DOMAIN })[0]!]);
      graph.markOutput(y!);
      const s = await ort.InferenceSession.create(graphToModelProto(graph), { logSeverityLevel: 4 });
      const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) });
      await s.release();
      const block = Number((out[y!]!.data as BigInt64Array)[1]);
      return block;
    } catch {
      return 1;
    }
  })();
  return blockSize;
}

/** Values that depend on a graph input (everything else ONNX Runtime folds to a constant at load time). */
function runtimeValues(g: Graph): Set<string> {
  const dynamic = new Set(g.inputs);
  for (const n of g.nodes) if (n.inputs.some((i) => dynamic.has(i))) for (const o of n.outputs) dynamic.add(o);
  return dynamic;
}

/** A Conv this lowering handles: float32, 2-D, ungrouped, weights known only at run time, channels the kernel can take. */
function lowerable(g: Graph, node: Node, block: number, dynamic: Set<string>): boolean {
  if (node.op !== 'Conv' || node.domain !== '' || attrInt(node, 'group', 1) !== 1) return false;
  if (!dynamic.has(node.inputs[1]!)) return false; // ONNX Runtime's own transformer packs constant weights at load time
  if (g.type(node.inputs[0]!).dtype !== 'float32') return false; // the kernels are float32 only
  const x = g.type(node.inputs[0]!).shape, w = g.type(node.inputs[1]!).shape;
  if (!x || !w || x.length !== 4 || w.some((d) => typeof d !== 'number')) return false;
  const [M, C] = w as number[];
  // Inputs narrower than a block are read in plain NCHW by the kernel (the first layer); wider ones must fill blocks.
  return M! % block === 0 && (C! < block || C! % block === 0) && node.attrs.auto_pad === undefined;
}

/**
 * The weight [M, C, kh, kw] re-packed as the kernel reads it: output channels in blocks of `block`
 * innermost (OIHWBo) when the input stays NCHW, else input and output channels blocked (OIHWBiBo).
 * ONNX Runtime's general Transpose moves ~1 GB/s, so the move of each output-channel block innermost is a MatMul
 * by the identity with its left operand transposed (MLAS packs that operand quickly; exact: products by 1 and 0),
 * and what remains for OIHWBiBo is a Transpose of whole `block`-float rows (`node bench/weight_pack.mjs`, 2 threads:
 * 17.2 -> 6.3 ms for a 512x512x3x3 weight, 0.98 -> 0.58 ms for 128x128x3x3, byte-identical).
 */
export function packWeight(b: Builder, w: string, identity: string, name: string): string {
  const [M, C, kh, kw] = b.shape(w) as number[];
  const block = b.shape(identity)[0] as number;
  const g = b.graph;
  const K = kh! * kw!;
  const reshape = (v: string, dims: number[], tag: string) => g.addNode('Reshape', [v, b.ints(dims)], {}, { name: `${name}/${tag}` })[0]!;
  const rows = g.addNode('Transpose', [reshape(w, [M! / block, block, C! * K], 'split')], { perm: [0, 2, 1] }, { name: `${name}/rows` })[0]!;
  const outInner = g.addNode('MatMul', [rows, identity], {}, { name: `${name}/pack` })[0]!; // [M/block, C*K, block]
  if (C! < block) return reshape(outInner, [M!, C!, kh!, kw!], 'packed');
  const blocked = g.addNode('Transpose', [reshape(outInner, [M! / block, C! / block, block, K, block], 'blocks')], { perm: [0, 1, 3, 2, 4] }, { name: `${name}/pack_in` })[0]!;
  return reshape(blocked, [M!, C!, kh!, kw!], 'packed');
}

/**
 * A copy of `src` with every lowerable Conv replaced by ReorderInput -> NCHWc Conv -> ReorderOutput, or
 * `src` itself when there is none. Node names keep the original's (so profiles keep their phase), and an
 * activation reordered once is shared by every Conv that reads it.
 */
export function lowerConvsToNchwc(src: Graph, block: number): Graph {
  const dynamic = runtimeValues(src);
  if (block <= 1 || !src.nodes.some((n) => lowerable(src, n, block, dynamic))) return src;
  const reordered = new Map<string, string>();
  let identity: string | undefined; // packWeight's [block, block] identity, one constant for the whole graph
  return rebuildGraph(src, (node, g, b, map) => {
    if (!lowerable(src, node, block, dynamic)) return undefined;
    const [x, w, bias] = node.inputs.map(map);
    const C = (b.shape(w!) as number[])[1]!, M = (b.shape(w!) as number[])[0]!;
    let xIn = x!;
    if (C >= block) {
      xIn = reordered.get(x!) ?? g.addNode('ReorderInput', [x!], {}, { domain: NCHWC_DOMAIN, name: `${node.name}/reorder_in` })[0]!;
      reordered.set(x!, xIn);
    }
    identity ??= b.constant(makeTensor('float32', [block, block], Array.from({ length: block * block }, (_, i) => (i % (block + 1) === 0 ? 1 : 0))));
    const inputs = [xIn, packWeight(b, w!, identity, node.name), ...(bias ? [bias] : [])];
    const [y] = g.addNode('Conv', inputs, node.attrs, { domain: NCHWC_DOMAIN, name: `${node.name}/nchwc` });
    // The result keeps the Conv's value name: graph outputs and later nodes see no difference.
    return g.addNode('ReorderOutput', [y!], { channels: M }, { domain: NCHWC_DOMAIN, name: `${node.name}/reorder_out`, outputs: [node.outputs[0]!] });
  }, { keepTypes: true });
}
