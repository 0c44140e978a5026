// Constant folding of imported ONNX models, before they reach the IR.
//
// torch.onnx.export without constant folding computes many values at run time from constants only
// (F.pad's `pads` goes through Shape/ConstantOfShape/Concat/Reshape/Slice/Transpose of a constant
// list). advrun's shape inference and VJP rules need such values as constants, so every node whose
// inputs are all constants (Constant nodes, integer initializers, earlier folded values) is
// evaluated once by ONNX Runtime itself (same kernels as at run time, so nothing is re-implemented)
// and its consumed outputs become Constant nodes. Float initializers are never folded: they may be
// weights, which must stay parameters. Random ops are never folded.

import { onnxRoot, ModelProto, ATTR_TYPE } from '../onnx/schema.js';
import { ONNX_DTYPE_CODE, tensorBytes } from '../ir/tensor.js';
import { CompiledGraph, fromOrt } from '../runtime/session.js';
import { GraphError } from '../ir/graph.js';

const NodeProto = onnxRoot.lookupType('onnx.NodeProto');
const INT_CODES = new Set([2, 3, 4, 5, 6, 7, 9, 12, 13]); // uint8..int64, bool, uint32, uint64
const NEVER = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'If', 'Loop', 'Scan']);

export async function foldConstantSubgraphs(bytes: Uint8Array, source: string): Promise<{ bytes: Uint8Array; folded: number }> {
  let model: any;
  try {
    model = ModelProto.decode(bytes);
  } catch (e) {
    throw new GraphError(`${source} is not a valid ONNX model (protobuf decoding failed: ${(e as Error).message})`);
  }
  const graph = model.graph;
  if (!graph) return { bytes, folded: 0 };
  const nodes: any[] = graph.node ?? [];
  const constant = new Set<string>();
  const intInits = new Map<string, any>();
  for (const t of graph.initializer ?? []) if (INT_CODES.has(t.dataType)) { constant.add(t.name); intInits.set(t.name, t); }
  const cone = new Set<any>();
  for (const n of nodes) {
    if ((n.domain && n.domain !== 'ai.onnx') || NEVER.has(n.opType)) continue;
    if (n.opType === 'Constant') { for (const o of n.output) constant.add(o); continue; }
    const ins: string[] = (n.input ?? []).filter((i: string) => i !== '');
    if (ins.length > 0 && ins.every((i) => constant.has(i))) {
      cone.add(n);
      for (const o of n.output) if (o) constant.add(o);
    }
  }
  if (cone.size === 0) return { bytes, folded: 0 };
  // Values the cone produces that something outside it (or the graph output) consumes.
  const producedByCone = new Set<string>([...cone].flatMap((n) => n.output as string[]));
  const boundary = new Set<string>();
  for (const n of nodes) if (!cone.has(n)) for (const i of n.input ?? []) if (producedByCone.has(i)) boundary.add(i);
  for (const o of graph.output ?? []) if (producedByCone.has(o.name)) boundary.add(o.name);
  if (boundary.size === 0) return { bytes, folded: 0 };

  // The cone as its own model (with the Constant nodes and initializers it reads), run once.
  const needed = new Set<string>([...cone].flatMap((n) => (n.input as string[]).filter((i) => i)));
  const miniNodes = nodes.filter((n) => cone.has(n) || (n.opType === 'Constant' && n.output.some((o: string) => needed.has(o))));
  const mini = ModelProto.fromObject({
    irVersion: model.irVersion, opsetImport: model.opsetImport,
    graph: {
      name: 'constant_folding', node: miniNodes,
      initializer: [...needed].filter((i) => intInits.has(i)).map((i) => intInits.get(i)),
      output: [...boundary].map((name) => ({ name })),
    },
  });
  let values: Record<string, any>;
  let session: CompiledGraph | undefined;
  try {
    session = await CompiledGraph.create(ModelProto.encode(mini).finish(), { label: `constant subgraphs of ${source}`, nchwc: false });
    values = await session.run({});
  } catch (e) {
    throw new GraphError(`${source}: evaluating its constant subgraphs failed: ${(e as Error).message}`);
  } finally {
    await session?.release();
  }
  const folded = [...boundary].map((name) => {
    const t = fromOrt(values[name]);
    if (!(t.dtype in ONNX_DTYPE_CODE)) throw new GraphError(`${source}: constant "${name}" has unsupported type ${values[name].type}`);
    return NodeProto.fromObject({
      name: `folded:${name}`, opType: 'Constant', output: [name],
      attribute: [{ name: 'value', type: ATTR_TYPE.TENSOR, t: { dims: t.dims, dataType: ONNX_DTYPE_CODE[t.dtype], rawData: tensorBytes(t) } }],
    });
  });
  graph.node = [...folded, ...nodes.filter((n) => !cone.has(n))];
  return { bytes: ModelProto.encode(model).finish(), folded: cone.size };
}
