// Running the artifacts: one ONNX Runtime session per graph, created once; the model state
// (parameters, BN statistics, momentum) lives as ONNX Runtime tensors and each train step's outputs
// become the next step's inputs without a copy.

import type ort from 'onnxruntime-node';
import type { AttackLoss, AttackModel, LossGradResult } from '../attacks/types.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { buildModel } from '../models/index.js';
import type { Graph } from '../ir/graph.js';
import { graphToModelProto, modelProtoToGraph } from '../onnx/io.js';
import { CompiledGraph, fromOrt, toOrt, type RuntimeOptions } from '../runtime/session.js';
import { UserError } from '../util/errors.js';
import { attackGraphName, type BuiltArtifacts, type Manifest } from './artifacts.js';

/** Fresh state for a configuration: PyTorch-style initial parameters for `seed`, zero momentum. */
export function initialState(manifest: Manifest, seed: number): Map<string, Tensor> {
  const model = buildModel(manifest.config.model, { bnMode: 'eval', seed });
  const state = new Map<string, Tensor>();
  // TWINS' frozen BN layers start as copies of the (adaptive) BN layers.
  const init = (name: string) => model.graph.initializers.get(name.replace(/^frozen\./, ''))!;
  for (const p of manifest.params) state.set(p.name, init(p.name));
  for (const b of manifest.buffers) state.set(b, init(b));
  for (const m of manifest.momentum) {
    const p = state.get(m.slice('momentum.'.length))!;
    state.set(m, makeTensor('float32', p.dims));
  }
  return state;
}

function int64Labels(y: Int32Array): ort.Tensor {
  return toOrt(makeTensor('int64', [y.length], BigInt64Array.from(y, (v) => BigInt(v))));
}

/**
 * How the evaluation and attack graphs see the model state:
 * - 'inputs': parameters and BN statistics are graph inputs fed on every run;
 * - 'compiled': the current state is compiled into those graphs as constants, and the sessions are
 *   rebuilt after the state changes (a train step, setState). On the CPU this lets ONNX Runtime pre-pack
 *   the convolution weights into its blocked (NCHWc) layout and fold everything that depends on the
 *   weights only (e.g. the flipped weights of the input gradient): attack steps run about twice as fast,
 *   for one session build per state (bench/RESULTS.md). The train step always takes the state as inputs.
 */
export type StateBinding = 'inputs' | 'compiled';

export class ModelRuntime implements AttackModel {
  private sessions = new Map<string, Promise<CompiledGraph>>();
  /** Sessions with the state compiled in, valid for `compiledVersion` of the state. */
  private compiled = new Map<string, Promise<CompiledGraph>>();
  private compiledVersion = -1;
  /** Runs of each graph in the current state before it is compiled (see evalSession). */
  private runsThisState = new Map<string, number>();
  /** Bumped whenever the state changes. */
  private stateVersion = 0;
  private parsed = new Map<string, Graph>();
  private state = new Map<string, ort.Tensor>();
  readonly stateBinding: StateBinding;
  readonly numClasses: number;
  readonly inputShape: readonly number[];
  /** Train steps taken (advanced by trainStep, restored from checkpoints). */
  step = 0;

  constructor(readonly artifacts: BuiltArtifacts, state: Map<string, Tensor>, private readonly opts: RuntimeOptions & { stateBinding?: StateBinding } = {}) {
    // GPU providers gain nothing from NCHWc pre-packing and pay more per session build.
    this.stateBinding = opts.stateBinding ?? ((opts.ep ?? 'cpu') === 'cpu' ? 'compiled' : 'inputs');
    const spec = artifacts.manifest.config.model;
    this.numClasses = spec.numClasses;
    this.inputShape = [spec.inChannels, spec.imageSize, spec.imageSize];
    this.setState(state);
  }

  get manifest(): Manifest {
    return this.artifacts.manifest;
  }

  setState(state: Map<string, Tensor>): void {
    const m = this.manifest;
    for (const name of [...m.params.map((p) => p.name), ...m.buffers, ...m.momentum]) {
      const t = state.get(name);
      if (!t) throw new UserError(`model state is missing tensor "${name}"`);
      this.state.set(name, toOrt(t));
    }
    this.stateVersion++;
  }

  /** Graphs currently compiled with the state (for tests of when sessions are built). */
  get compiledGraphs(): string[] {
    return [...this.compiled.keys()];
  }

  /** Create the train step's session now (it is otherwise made on the first step): set-up errors surface here. */
  async prepare(): Promise<void> {
    await this.session('train_step');
  }

  /**
   * Start counting a state's runs afresh (dropping its compiled sessions): which session serves the next
   * evaluation call then depends only on the calls after this point, not on what ran before in this state.
   * The two sessions agree only to float32 rounding, and PGD's sign steps can amplify that, so a training
   * loop calls this at every epoch start: epoch k+1 then sees the same sessions whether epoch k's validation
   * ran in this process or the run was resumed from epoch k's checkpoint.
   */
  async restartStateRuns(): Promise<void> {
    await this.releaseCompiled(this.stateVersion);
  }

  /** Host copies of the state (for checkpoints). */
  getState(): Map<string, Tensor> {
    return new Map([...this.state].map(([k, v]) => [k, fromOrt(v)]));
  }

  private session(name: string): Promise<CompiledGraph> {
    let s = this.sessions.get(name);
    if (!s) {
      const bytes = this.artifacts.bytes[name];
      if (!bytes) throw new Error(`artifacts have no graph "${name}"`);
      s = CompiledGraph.create(bytes, { ...this.opts, label: name });
      this.sessions.set(name, s);
    }
    return s;
  }

  /**
   * The session for an evaluation or attack graph: with the current state compiled in (rebuilt once the
   * state has changed; the stale sessions are released first so their memory is reused), or the shared one.
   * A graph is compiled for a state only on its second run in that state: a graph run once per train step
   * (the clean logits of PGD's random start, an FGSM step) would pay a session build for a single run.
   */
  private async evalSession(name: string): Promise<CompiledGraph> {
    if (this.stateBinding === 'inputs') return this.session(name);
    if (this.compiledVersion !== this.stateVersion) await this.releaseCompiled(this.stateVersion);
    let s = this.compiled.get(name);
    if (!s) {
      const runs = (this.runsThisState.get(name) ?? 0) + 1;
      this.runsThisState.set(name, runs);
      if (runs < 2) return this.session(name);
      // These sessions live for one model state, so their memory arena is returned at every rebuild and
      // never accumulates (unlike the train step's, which stays off by default): keep it, it saves ~10 % of
      // an attack step on narrow networks.
      // All weights are constants here, so ONNX Runtime pre-packs them itself: nothing for advrun's NCHWc
      // lowering to do, and skipping it saves re-parsing the model at every rebuild.
      s = CompiledGraph.create(this.bytesWithState(name), { ...this.opts, label: name, memArena: this.opts.memArena ?? true, nchwc: false });
      this.compiled.set(name, s);
    }
    return s;
  }

  private bytesWithState(name: string): Uint8Array {
    let g = this.parsed.get(name);
    if (!g) {
      const bytes = this.artifacts.bytes[name];
      if (!bytes) throw new Error(`artifacts have no graph "${name}"`);
      g = modelProtoToGraph(bytes, name);
      this.parsed.set(name, g);
    }
    const constants = new Map<string, Tensor>();
    for (const [k, v] of this.state) if (g.inputs.includes(k)) constants.set(k, fromOrt(v));
    return graphToModelProto(g, {}, constants);
  }

  /** Drop the compiled sessions (they belong to an older state); `version` is the state they will be rebuilt for. */
  private async releaseCompiled(version = -1): Promise<void> {
    const stale = [...this.compiled.values()];
    this.compiled.clear();
    this.runsThisState.clear();
    this.compiledVersion = version;
    for (const s of stale) await (await s).release();
  }

  /** The state tensors `session` takes as inputs (none when the state is compiled in). */
  private stateFeeds(session: CompiledGraph): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = this.state.get(name);
      if (t) feeds[name] = t;
    }
    return feeds;
  }

  private images(x: Float32Array, n: number): ort.Tensor {
    return toOrt(makeTensor('float32', [n, ...this.inputShape], x));
  }

  /**
   * One SGD step on a batch; returns the loss and the train-mode logits (of `x`).
   * TRADES artifacts also take the adversarial batch `xAdv`; TWINS artifacts get each batch split in
   * halves, the first half through the frozen wing and the second through the adaptive one.
   */
  async trainStep(x: Float32Array, y: Int32Array, n: number, lr: number, xAdv?: Float32Array): Promise<{ loss: number; logits: Float32Array }> {
    const s = await this.session('train_step');
    const twins = s.inputNames.includes('input_b');
    if (twins && n % 2 !== 0) throw new UserError(`TWINS splits each batch into two equal halves, but got a batch of ${n}; use an even --batch-size (the last batch is dropped when odd)`);
    const h = twins ? n / 2 : n;
    const per = this.inputShape.reduce((a, d) => a * d, 1);
    const half = (a: Float32Array, i: number) => a.subarray(i * h * per, (i + 1) * h * per);
    const feeds: Record<string, ort.Tensor> = { ...this.stateFeeds(s), lr: toOrt(makeTensor('float32', [], [lr])) };
    feeds.input = this.images(half(x, 0), h);
    feeds.labels = int64Labels(y.subarray(0, h));
    if (twins) {
      feeds.input_b = this.images(half(x, 1), h);
      feeds.labels_b = int64Labels(y.subarray(h, n));
    }
    if (s.inputNames.includes('input_adv')) {
      if (!xAdv) throw new Error('these artifacts (TRADES) need the adversarial batch');
      feeds.input_adv = this.images(half(xAdv, 0), h);
      if (twins) feeds.input_adv_b = this.images(half(xAdv, 1), h);
    }
    const out = await s.run(feeds);
    const loss = Number(out.loss!.data[0]);
    this.checkFinite(loss, out.grad_norms_sq!);
    for (const [state, next] of Object.entries(this.manifest.feedback)) this.state.set(state, out[next]!);
    this.stateVersion++;
    this.step++;
    return { loss, logits: out.logits!.data as Float32Array };
  }

  private checkFinite(loss: number, gradNormsSq: ort.Tensor): void {
    const where = `at train step ${this.step + 1}`;
    if (!Number.isFinite(loss)) throw new UserError(`loss became ${loss} ${where}; lower the learning rate (--lr) or check the data for NaN/Inf`);
    const norms = gradNormsSq.data as Float32Array;
    for (let i = 0; i < norms.length; i++) {
      if (!Number.isFinite(norms[i]!)) throw new UserError(`gradient of parameter "${this.manifest.params[i]!.name}" became ${norms[i]} ${where}; lower the learning rate (--lr)`);
    }
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    const s = await this.evalSession('eval');
    const out = await s.run({ ...this.stateFeeds(s), input: this.images(x, n) });
    return out.logits!.data as Float32Array;
  }

  lossGrad(x: Float32Array, n: number, loss: AttackLoss): Promise<LossGradResult> {
    return this.lossGradWith('', x, n, loss);
  }

  /**
   * The model as the training attacker sees it: the same, unless SAT's attacker-side smooth backward
   * gave the training attacks their own gradient graphs (evaluation always uses true gradients).
   */
  trainingAttacker(): AttackModel {
    if (!this.artifacts.bytes[`train_${attackGraphName('ce')}`]) return this;
    return { numClasses: this.numClasses, inputShape: this.inputShape, logits: (x, n) => this.logits(x, n), lossGrad: (x, n, l) => this.lossGradWith('train_', x, n, l) };
  }

  private async lossGradWith(prefix: string, x: Float32Array, n: number, loss: AttackLoss): Promise<LossGradResult> {
    const name = prefix + attackGraphName(loss.kind);
    const s = await this.evalSession(name);
    const feeds: Record<string, ort.Tensor> = { ...this.stateFeeds(s), input: this.images(x, n) };
    if ('labels' in loss) feeds.labels = int64Labels(loss.labels);
    if (loss.kind === 'dlr-targeted') feeds.targets = int64Labels(loss.targets);
    if (loss.kind === 'kl') feeds.clean_probs = toOrt(makeTensor('float32', [n, this.numClasses], loss.cleanProbs));
    const out = await s.run(feeds);
    return { loss: out.loss!.data as Float32Array, grad: out.grad_input!.data as Float32Array, logits: out.logits!.data as Float32Array };
  }

  /** Stop profiling every session opened so far (RuntimeOptions.profileDir); graph name -> trace path. */
  async endProfiling(): Promise<Record<string, string>> {
    const dir = this.opts.profileDir;
    if (!dir) throw new Error('this runtime was not created with profiling on');
    const out: Record<string, string> = {};
    for (const [name, s] of [...this.sessions, ...this.compiled]) out[name] = (await s).endProfiling(dir);
    return out;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
    await this.releaseCompiled();
  }
}
