// Running the artifacts: one ONNX Runtime session per graph, created once; the model state
// (parameters, BN statistics, momentum) lives as ONNX Runtime tensors and each train step's outputs
// become the next step's inputs without a copy.

import type ort from 'onnxruntime-node';
import type { AttackLoss, AttackModel, LossGradResult } from '../attacks/types.js';
import { makeTensor, type Tensor } from '../ir/tensor.js';
import { buildModel } from '../models/index.js';
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

export class ModelRuntime implements AttackModel {
  private sessions = new Map<string, Promise<CompiledGraph>>();
  private state = new Map<string, ort.Tensor>();
  readonly numClasses: number;
  readonly inputShape: readonly number[];
  /** Train steps taken (advanced by trainStep, restored from checkpoints). */
  step = 0;

  constructor(readonly artifacts: BuiltArtifacts, state: Map<string, Tensor>, private readonly opts: RuntimeOptions = {}) {
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

  private stateFeeds(graph: string): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const io of this.manifest.graphs[graph]!.inputs) {
      const t = this.state.get(io.name);
      if (t) feeds[io.name] = t;
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
    const feeds: Record<string, ort.Tensor> = { ...this.stateFeeds('train_step'), lr: toOrt(makeTensor('float32', [], [lr])) };
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
    const s = await this.session('eval');
    const out = await s.run({ ...this.stateFeeds('eval'), input: this.images(x, n) });
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
    const s = await this.session(name);
    const feeds: Record<string, ort.Tensor> = { ...this.stateFeeds(name), input: this.images(x, n) };
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
    for (const [name, s] of this.sessions) out[name] = (await s).endProfiling(dir);
    return out;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}
