// ONNX Runtime execution: sessions are created once per graph and reused for every step.
// Execution providers are chosen explicitly; an unavailable one is an error, never a silent CPU run.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { GraphError, type Graph } from '../ir/graph.js';
import { type DType, type Tensor, type TensorData } from '../ir/tensor.js';
import { graphToModelProto, modelProtoToGraph } from '../onnx/io.js';
import { lowerConvsToNchwc, nchwcBlockSize, nchwcWanted } from './nchwc.js';
import { newGraph } from '../ir/builder.js';
import { inCi } from '../util/ci.js';
import { UserError } from '../util/errors.js';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from './providers.js';

export { EXECUTION_PROVIDERS, type ExecutionProvider };

export interface RuntimeOptions {
  ep?: ExecutionProvider;
  /** Intra-op threads; 0 lets ONNX Runtime decide. */
  threads?: number;
  /** Called once when `auto` picks a provider, so the choice is said, not silent. */
  log?: (msg: string) => void;
  /**
   * ONNX Runtime's CPU memory arena. Off by default: each run's buffers go back to the system allocator,
   * which keeps a long-lived session such as the train step near its true peak (the arena grows in powers
   * of two and never shrinks: 1.7x the memory on PreActResNet-18 width 64) at ~8 % of train-step time
   * (bench/RESULTS.md). ModelRuntime keeps it on for its short-lived compiled-state sessions.
   * ADVRUN_MEM_ARENA=1 turns it on everywhere.
   */
  memArena?: boolean;
  /**
   * Lower convolutions with run-time weights to ONNX Runtime's NCHWc kernels on the CPU (runtime/nchwc.ts).
   * On by default; ADVRUN_NCHWC=0 turns it off everywhere.
   */
  nchwc?: boolean;
  /** Directory for ONNX Runtime's per-node profile traces (one per session); off when unset. */
  profileDir?: string;
}

// ONNX Runtime's native log goes straight to stderr; its failures reach advrun as exceptions, which are
// reported with context. Probing a missing provider would otherwise print a multi-line native error.
// ADVRUN_ORT_LOG=verbose|info|warning|error shows the native log when debugging.
ort.env.logLevel = (process.env.ADVRUN_ORT_LOG as typeof ort.env.logLevel | undefined) ?? 'fatal';

const ORT_DTYPE: Record<DType, ort.Tensor.Type> = {
  float32: 'float32', float64: 'float64', float16: 'float16', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool',
};

/** Probe results, once per provider and process: --ep cuda/webgpu asks again for every session it creates. */
const probes = new Map<string, Promise<{ ok: boolean; reason?: string }>>();

/** Providers this onnxruntime-node build can actually create a session with. */
export function providerWorks(ep: 'cpu' | 'cuda' | 'webgpu'): Promise<{ ok: boolean; reason?: string }> {
  let p = probes.get(ep);
  if (!p) probes.set(ep, (p = probeProvider(ep)));
  return p;
}

async function probeProvider(ep: 'cpu' | 'cuda' | 'webgpu'): Promise<{ ok: boolean; reason?: string }> {
  const listed = ort.listSupportedBackends().find((b) => b.name === ep);
  if (!listed) return { ok: false, reason: `onnxruntime-node ${ort.env.versions.node} on this platform has no ${ep} provider` };
  // A one-node model: creating a session is the only reliable availability check.
  const { graph, b } = newGraph('probe');
  const x = graph.addInput('x', 'float32', [1]);
  graph.markOutput(b.relu(x));
  const model = graphToModelProto(graph);
  // WebGPU's native layer (Dawn) prints its adapter search to stderr whatever the log level: probe it in a
  // child process, whose output is kept out of advrun's.
  if (ep === 'webgpu') return probeInChild(ep, model);
  try {
    // Severity 4 (fatal only): a missing provider library is the expected answer here, not a log line.
    const s = await ort.InferenceSession.create(model, { executionProviders: [ep], logSeverityLevel: 4 });
    await s.release();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message.split('\n')[0] };
  }
}

function probeInChild(ep: string, model: Uint8Array): { ok: boolean; reason?: string } {
  const script = `const ort = require(${JSON.stringify(createRequire(import.meta.url).resolve('onnxruntime-node'))});
    ort.InferenceSession.create(Buffer.from(process.argv[1], 'base64'), { executionProviders: [process.argv[2]], logSeverityLevel: 4 })
      .then((s) => s.release()).then(() => process.stdout.write('ok'), (e) => process.stdout.write(String(e.message).split('\\n')[0]));`;
  const r = spawnSync(process.execPath, ['-e', script, Buffer.from(model).toString('base64'), ep], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
  const out = (r.stdout ?? '').trim();
  return out === 'ok' ? { ok: true } : { ok: false, reason: out || `the probe process ended with ${r.signal ?? `code ${r.status}`}` };
}

const FIX: Record<string, string> = {
  cuda: 'install the CUDA binaries with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` on a machine with an NVIDIA GPU and CUDA 12 (see README), or use --ep cpu',
  webgpu: 'WebGPU needs a GPU adapter visible to onnxruntime-node; use --ep cpu on machines without one',
};

/** --ep auto's choice: probed once per process (every session would otherwise probe again) and said once. */
let autoChoice: Promise<'cpu' | 'cuda' | 'webgpu'> | undefined;

/** Where --ep auto says what it chose when the caller gives no log: stderr, unless in CI. */
const stderrNote = (m: string) => { if (!inCi()) process.stderr.write(`advrun: ${m}\n`); };

export async function resolveProvider(ep: ExecutionProvider = 'cpu', log?: (m: string) => void): Promise<'cpu' | 'cuda' | 'webgpu'> {
  if (ep === 'cpu') return 'cpu';
  if (ep === 'auto') {
    autoChoice ??= (async () => {
      for (const cand of ['cuda', 'webgpu'] as const) {
        if ((await providerWorks(cand)).ok) { (log ?? stderrNote)(`--ep auto: using ${cand}`); return cand; }
      }
      (log ?? stderrNote)('--ep auto: no GPU provider is available, using cpu');
      return 'cpu' as const;
    })();
    return autoChoice;
  }
  if (ep !== 'cuda' && ep !== 'webgpu') throw new UserError(`unknown execution provider "${ep}"; use ${EXECUTION_PROVIDERS.join(', ')}`);
  const probe = await providerWorks(ep);
  if (!probe.ok) throw new UserError(`--ep ${ep} is not available (${probe.reason}); ${FIX[ep]}`);
  return ep;
}

export function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(ORT_DTYPE[t.dtype], t.data as any, t.dims);
}

export function fromOrt(t: ort.Tensor): Tensor {
  const dtype = (Object.entries(ORT_DTYPE).find(([, v]) => v === t.type)?.[0] ?? 'float32') as DType;
  return { dtype, dims: [...t.dims], data: t.data as TensorData };
}

export type Feeds = Record<string, ort.Tensor>;

/**
 * The bytes a session loads. On the CPU (unless turned off) convolutions with run-time weights are lowered
 * to NCHWc (runtime/nchwc.ts); a model advrun cannot read into its IR (an imported model's constant
 * subgraph) has nothing advrun generated to lower and is loaded as it is.
 */
async function sessionBytes(graphOrBytes: Graph | Uint8Array, lower: boolean): Promise<Uint8Array> {
  const toBytes = (g: Graph | Uint8Array) => (g instanceof Uint8Array ? g : graphToModelProto(g));
  const block = lower ? await nchwcBlockSize() : 1;
  if (block <= 1) return toBytes(graphOrBytes);
  let graph: Graph;
  try {
    graph = graphOrBytes instanceof Uint8Array ? modelProtoToGraph(graphOrBytes, 'model') : graphOrBytes;
  } catch (e) {
    if (e instanceof GraphError || e instanceof UserError) return graphOrBytes as Uint8Array;
    throw e;
  }
  const lowered = lowerConvsToNchwc(graph, block);
  return lowered === graph ? toBytes(graphOrBytes) : graphToModelProto(lowered);
}

/** A compiled graph: one InferenceSession, its input/output names, and typed run helpers. */
export class CompiledGraph {
  private constructor(readonly session: ort.InferenceSession, readonly inputNames: readonly string[], readonly outputNames: readonly string[], readonly label: string) {}

  static async create(graphOrBytes: Graph | Uint8Array, opts: RuntimeOptions & { label?: string } = {}): Promise<CompiledGraph> {
    if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 0)) {
      throw new UserError(`--threads must be a whole number >= 0 (0: ONNX Runtime's default), got ${opts.threads}`);
    }
    const ep = await resolveProvider(opts.ep ?? 'cpu', opts.log);
    const bytes = await sessionBytes(graphOrBytes, ep === 'cpu' && nchwcWanted(opts.nchwc));
    const label = opts.label ?? (graphOrBytes instanceof Uint8Array ? 'model' : graphOrBytes.name);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: [ep],
        intraOpNumThreads: opts.threads ?? 0,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        enableCpuMemArena: opts.memArena ?? process.env.ADVRUN_MEM_ARENA === '1',
        ...(opts.profileDir ? { enableProfiling: true, profileFilePrefix: join(opts.profileDir, label) } : {}),
      });
    } catch (e) {
      throw new Error(`ONNX Runtime rejected graph "${label}": ${(e as Error).message.split('\n')[0]}`);
    }
    return new CompiledGraph(session, session.inputNames, session.outputNames, label);
  }

  async run(feeds: Feeds, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
    for (const n of this.inputNames) if (!(n in feeds)) throw new Error(`graph "${this.label}" needs input "${n}", which was not given`);
    try {
      return await this.session.run(feeds, outputs ?? (this.outputNames as string[]));
    } catch (e) {
      throw new Error(`running graph "${this.label}" failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }

  /** Convenience for tests and one-off evaluation: host tensors in, host tensors out. */
  async runTensors(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const ortFeeds: Feeds = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    const out = await this.run(ortFeeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, fromOrt(v)]));
  }

  /** Stop profiling and return the trace's path (ONNX Runtime names it <prefix>_<timestamp>.json). */
  endProfiling(dir: string): string {
    this.session.endProfiling();
    // "<label>_<date>_<time>.json": the date right after the label keeps attack_dlr from matching attack_dlr_targeted.
    const mine = readdirSync(dir).filter((f) => f.startsWith(`${this.label}_`) && /^\d{4}-\d{2}-\d{2}_/.test(f.slice(this.label.length + 1)) && f.endsWith('.json')).sort();
    if (mine.length === 0) throw new Error(`ONNX Runtime wrote no profile for graph "${this.label}" in ${dir}`);
    return join(dir, mine[mine.length - 1]!);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
