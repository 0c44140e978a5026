// ONNX ModelProto <-> Graph. Writing maps the IR one-to-one onto the protobuf messages;
// reading accepts models exported by torch.onnx.export and other tools (initializers listed as
// inputs or not, Constant nodes, raw or typed tensor data, symbolic dimensions).

import { readFileSync } from 'node:fs';
import { Graph, GraphError, type Attr, type Node, type Shape } from '../ir/graph.js';
import { dtypeFromOnnxCode, makeTensor, ONNX_DTYPE_CODE, tensorBytes, tensorFromBytes, type Tensor } from '../ir/tensor.js';
import '../ir/shapes/index.js';
import { ATTR_TYPE, ModelProto } from './schema.js';

const PRODUCER = 'advrun';

// ---------- writing ----------

function tensorToProto(name: string, t: Tensor): Record<string, unknown> {
  return { name, dims: t.dims, dataType: ONNX_DTYPE_CODE[t.dtype], rawData: tensorBytes(t) };
}

function typeProto(dtype: keyof typeof ONNX_DTYPE_CODE, shape: Shape | null): Record<string, unknown> {
  const tensorType: Record<string, unknown> = { elemType: ONNX_DTYPE_CODE[dtype] };
  if (shape) tensorType.shape = { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { tensorType };
}

function attrToProto(name: string, a: Attr): Record<string, unknown> {
  switch (a.type) {
    case 'float': return { name, type: ATTR_TYPE.FLOAT, f: a.value };
    case 'int': return { name, type: ATTR_TYPE.INT, i: a.value };
    case 'floats': return { name, type: ATTR_TYPE.FLOATS, floats: a.value };
    case 'ints': return { name, type: ATTR_TYPE.INTS, ints: a.value };
    case 'string': return { name, type: ATTR_TYPE.STRING, s: Buffer.from(a.value, 'utf8') };
    case 'strings': return { name, type: ATTR_TYPE.STRINGS, strings: a.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'tensor': return { name, type: ATTR_TYPE.TENSOR, t: tensorToProto('', a.value) };
  }
}

/**
 * Serialise a graph. `constants` turns some graph inputs into initializers with the given values
 * (ModelRuntime compiles a fixed model state into evaluation graphs this way).
 */
export function graphToModelProto(g: Graph, metadata: Record<string, string> = {}, constants?: ReadonlyMap<string, Tensor>): Uint8Array {
  const valueInfo = (n: string) => ({ name: n, type: typeProto(g.type(n).dtype, g.type(n).shape) });
  const inputs = constants ? g.inputs.filter((n) => !constants.has(n)) : g.inputs;
  const baked = constants ? [...constants].filter(([n]) => g.inputs.includes(n)).map(([n, t]) => tensorToProto(n, t)) : [];
  const obj = {
    irVersion: 8,
    producerName: PRODUCER,
    producerVersion: '0.1.0',
    // Contrib domains (ONNX Runtime's NCHWc kernels, see runtime/nchwc.ts) are version 1.
    opsetImport: [{ domain: '', version: g.opset }, ...[...new Set(g.nodes.map((n) => n.domain).filter((d) => d))].map((domain) => ({ domain, version: 1 }))],
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    graph: {
      name: g.name,
      input: inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
      initializer: [...[...g.initializers].filter(([n]) => !g.inputs.includes(n)).map(([n, t]) => tensorToProto(n, t)), ...baked],
      node: g.nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, a]) => attrToProto(k, a)),
        docString: n.meta ? JSON.stringify({ advrun: n.meta }) : undefined,
      })),
    },
  };
  const err = ModelProto.verify(obj);
  if (err) throw new GraphError(`cannot serialise graph "${g.name}": ${err}`);
  return ModelProto.encode(ModelProto.fromObject(obj)).finish();
}

// ---------- reading ----------

interface TensorMsg {
  name?: string; dims?: number[]; dataType?: number; rawData?: Uint8Array; floatData?: number[]; int32Data?: number[];
  int64Data?: string[]; doubleData?: number[]; uint64Data?: string[]; dataLocation?: number;
}

function tensorFromProto(t: TensorMsg, where: string): Tensor {
  const dtype = dtypeFromOnnxCode(t.dataType ?? 0);
  const dims = (t.dims ?? []).map(Number);
  if (t.dataLocation === 1) throw new GraphError(`${where}: tensor "${t.name}" uses external data, which advrun does not read; re-export with the weights embedded`);
  if (t.rawData && t.rawData.length > 0) return tensorFromBytes(dtype, dims, t.rawData);
  if (t.int64Data?.length || t.uint64Data?.length) return makeTensor(dtype, dims, (t.int64Data ?? t.uint64Data)!.map((v) => BigInt(v)));
  // float16 is stored as bit patterns in int32_data.
  if (dtype === 'float16') return makeTensor(dtype, dims, Uint16Array.from(t.int32Data ?? []));
  const typed = t.floatData?.length ? t.floatData : t.doubleData?.length ? t.doubleData : t.int32Data ?? [];
  return makeTensor(dtype, dims, typed.map(Number));
}

function attrFromProto(a: Record<string, any>, where: string): Attr {
  const name = a.name as string;
  switch (a.type as number) {
    case ATTR_TYPE.FLOAT: return { type: 'float', value: a.f ?? 0 };
    case ATTR_TYPE.INT: return { type: 'int', value: Number(a.i ?? 0) };
    case ATTR_TYPE.FLOATS: return { type: 'floats', value: a.floats ?? [] };
    case ATTR_TYPE.INTS: return { type: 'ints', value: (a.ints ?? []).map(Number) };
    case ATTR_TYPE.STRING: return { type: 'string', value: Buffer.from(a.s ?? []).toString('utf8') };
    case ATTR_TYPE.STRINGS: return { type: 'strings', value: (a.strings ?? []).map((s: Uint8Array) => Buffer.from(s).toString('utf8')) };
    case ATTR_TYPE.TENSOR: return { type: 'tensor', value: tensorFromProto(a.t, `${where} attribute ${name}`) };
    default: throw new GraphError(`${where}: attribute "${name}" has type ${a.type}, which advrun does not support (subgraphs and sparse tensors are not handled)`);
  }
}

export function modelProtoToGraph(bytes: Uint8Array, source = 'model'): Graph {
  let msg: Record<string, any>;
  try {
    // int64 as strings: 2^63 - 1 and the like survive exactly (as Numbers they would round past the int64 range).
    msg = ModelProto.toObject(ModelProto.decode(bytes), { longs: String, defaults: false, arrays: true }) as Record<string, any>;
  } catch (e) {
    throw new GraphError(`${source} is not a valid ONNX model (protobuf decoding failed: ${(e as Error).message})`);
  }
  const gp = msg.graph;
  if (!gp) throw new GraphError(`${source} is not a valid ONNX model: it has no graph`);
  const opsetEntry = (msg.opsetImport ?? []).find((o: any) => !o.domain || o.domain === 'ai.onnx');
  const opset = Number(opsetEntry?.version ?? 0);
  if (!opset) throw new GraphError(`${source} does not import the default ONNX opset`);
  const g = new Graph(gp.name || 'imported', opset);

  for (const t of gp.initializer ?? []) g.addInitializer(t.name, tensorFromProto(t, source));
  let unknown = 0;
  for (const vi of gp.input ?? []) {
    if (g.initializers.has(vi.name)) continue; // older exporters list initializers among the inputs
    const tt = vi.type?.tensorType;
    if (!tt) throw new GraphError(`${source}: input "${vi.name}" is not a tensor`);
    if (!tt.shape) throw new GraphError(`${source}: input "${vi.name}" declares no shape (not even its rank); re-export the model with input shapes`);
    const shape: Shape = (tt.shape.dim ?? []).map((d: any) => (d.dimValue !== undefined ? Number(d.dimValue) : d.dimParam || `unk_${unknown++}`));
    g.addInput(vi.name, dtypeFromOnnxCode(tt.elemType), shape);
  }
  for (const [i, np] of (gp.node ?? []).entries()) {
    const where = `${source} node ${np.name || i} (${np.opType})`;
    if (np.domain && np.domain !== 'ai.onnx') throw new GraphError(`${where}: operator domain "${np.domain}" is not supported; advrun reads standard ONNX operators only`);
    for (const inp of np.input ?? []) {
      if (inp && !g.types.has(inp)) throw new GraphError(`${where}: input "${inp}" is not defined before use (the graph is not topologically sorted or refers to a missing tensor)`);
    }
    const attrs: Record<string, Attr> = {};
    for (const a of np.attribute ?? []) attrs[a.name] = attrFromProto(a, where);
    const node: Node = { name: np.name || `${np.opType}_${i}`, op: np.opType, domain: '', inputs: np.input ?? [], outputs: np.output ?? [], attrs };
    if (np.docString?.startsWith('{"advrun"')) node.meta = JSON.parse(np.docString).advrun;
    g.insertNode(node);
  }
  for (const vo of gp.output ?? []) {
    if (!g.types.has(vo.name)) throw new GraphError(`${source}: output "${vo.name}" is not produced by any node`);
    g.outputs.push(vo.name);
  }
  return g;
}

export function loadOnnxFile(path: string): Graph {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new GraphError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return modelProtoToGraph(bytes, path);
}
