// Layer helpers shared by the built-in architectures. They emit ONNX nodes through the Builder,
// create parameters as initializers named like PyTorch's state_dict (conv1.weight, bn1.running_mean, ...)
// and initialise them as PyTorch does by default (kaiming-uniform with a=sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))).

import { BATCH_STATISTICS_BN_VJP } from '../autodiff/rules/batchnorm.js';
import { Builder } from '../ir/builder.js';
import { Graph } from '../ir/graph.js';
import { makeTensor, numel } from '../ir/tensor.js';
import { Rng } from '../util/random.js';
import { applyActivation, type Activation } from './activations.js';

/** 'train': batch statistics, running stats updated. 'eval': running statistics. */
export type BnMode = 'train' | 'eval';

export interface ParamInfo {
  name: string;
  /** false for parameters excluded from weight decay (SAT's SmoothReLU scalar). */
  decay: boolean;
  /**
   * 'weight': a conv or linear weight; 'bias': their biases; 'norm': BN affine; 'other'. Recipes that
   * decay "conv/FC weights only" (SAT's ImageNet recipe) select on it.
   */
  kind?: ParamKind;
}

export type ParamKind = 'weight' | 'bias' | 'norm' | 'other';

export const BN_EPS = 1e-5;
export const BN_MOMENTUM = 0.1;

/**
 * A float32 scale s from which ONNX Runtime computes exactly `to` output pixels, floor(from * s): to/from
 * itself when it qualifies (integer factors such as 32 -> 224), else the next float32 up. Checked on the
 * exact product, so the float32 product ONNX Runtime forms (never below it, `to` being representable)
 * gives the same size.
 */
export function resizeScale(from: number, to: number): number {
  let s = Math.fround(to / from);
  for (let i = 0; i < 4 && Math.floor(from * s) < to; i++) s = Math.fround(s * (1 + 2 ** -23));
  if (Math.floor(from * s) !== to || Math.floor(Math.fround(from * s)) !== to) throw new Error(`no float32 scale resizes ${from} to exactly ${to}`);
  return s;
}

export class ModelBuilder {
  readonly graph: Graph;
  readonly b: Builder;
  readonly params: ParamInfo[] = [];
  readonly buffers: string[] = [];
  /** buffer name -> value holding its updated value after a train-mode forward pass */
  readonly bufferUpdates: Record<string, string> = {};
  private rng: Rng;

  /** BN mode of the forward pass being built; a graph may hold several passes (TRADES: clean and adversarial). */
  bnMode: BnMode;
  /**
   * TWINS' wing of the pass being built. The 'frozen' wing has its own BN layers, named `frozen.<bn>`:
   * normalised with the pre-training statistics always (never updated), with trainable affine parameters.
   */
  wing: 'adaptive' | 'frozen' = 'adaptive';
  /** Parameter name -> value to use instead in the pass being built (SAM's perturbed weights w + e). */
  paramOverride = new Map<string, string>();

  constructor(name: string, bnMode: BnMode, seed: number, readonly activation: Activation) {
    this.bnMode = bnMode;
    this.graph = new Graph(name, 17);
    this.b = new Builder(this.graph);
    this.rng = new Rng(seed);
  }

  /** Create a parameter, or reuse it when a second forward pass over the same weights asks for it again. */
  param(name: string, dims: number[], init: (rng: Rng, n: number) => number[] | Float32Array, decay = true, kind: ParamKind = 'other'): string {
    const override = this.paramOverride.get(name);
    if (override) return override;
    if (this.graph.initializers.has(name)) return name;
    const values = init(this.rng, numel(dims));
    this.graph.addInitializer(name, makeTensor('float32', dims, values));
    this.params.push({ name, decay, kind });
    return name;
  }

  buffer(name: string, dims: number[], fill: number): string {
    if (this.graph.initializers.has(name)) return name;
    this.graph.addInitializer(name, makeTensor('float32', dims, new Array(numel(dims)).fill(fill)));
    this.buffers.push(name);
    return name;
  }

  private uniform(bound: number) {
    return (rng: Rng, n: number) => rng.fillUniform(new Float32Array(n), -bound, bound);
  }

  /** Per-channel (x - mean) / std as constants inside the model, so attacks work in [0,1] pixel space. */
  normalize(x: string, mean: number[], std: number[]): string {
    if (mean.every((v) => v === 0) && std.every((v) => v === 1)) return x; // the model takes raw [0,1] pixels
    const shape = [1, mean.length, 1, 1];
    const m = this.b.constant(makeTensor('float32', shape, mean));
    const s = this.b.constant(makeTensor('float32', shape, std));
    return this.b.div(this.b.sub(x, m), s);
  }

  /**
   * Bilinear resize of square [N, C, from, from] images to [N, C, to, to], torch's
   * F.interpolate(mode='bilinear', align_corners=False): ONNX Resize, linear, half_pixel. The batch is
   * symbolic, so the target is given as scales [1, 1, s, s] (opset 17 has no axes attribute), with s the
   * float32 nearest to to/from that ONNX Runtime turns back into exactly `to` pixels.
   */
  resizeInput(x: string, from: number, to: number): string {
    if (from === to) return x;
    const s = resizeScale(from, to);
    return this.b.op('Resize', [x, '', this.b.constant(makeTensor('float32', [4], [1, 1, s, s]))], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
  }

  /**
   * How conv weights start: 'torch-default' is nn.Conv2d's own (kaiming-uniform, a = sqrt(5): U(+-1/sqrt(fan_in)));
   * 'fan-out-normal' is N(0, 2/fan_out) with fan_out = cout*k*k, what torchvision's ResNets
   * (kaiming_normal_, mode='fan_out') and RobustBench's WideResNet (normal_(0, sqrt(2/n))) set.
   */
  convInit: 'torch-default' | 'fan-out-normal' = 'torch-default';

  conv(x: string, name: string, cin: number, cout: number, k: number, opts: { stride?: number; pad?: number; bias?: boolean; groups?: number } = {}): string {
    const groups = opts.groups ?? 1;
    const fanIn = (cin / groups) * k * k;
    const init = this.convInit === 'fan-out-normal'
      ? (rng: Rng, n: number) => rng.fillNormal(new Float32Array(n), Math.sqrt(2 / (cout * k * k)))
      : this.uniform(1 / Math.sqrt(fanIn));
    const w = this.param(`${name}.weight`, [cout, cin / groups, k, k], init, true, 'weight');
    const inputs = [x, w];
    if (opts.bias) inputs.push(this.param(`${name}.bias`, [cout], this.uniform(1 / Math.sqrt(fanIn)), true, 'bias'));
    const s = opts.stride ?? 1, p = opts.pad ?? 0;
    return this.b.op('Conv', inputs, { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p], group: groups });
  }

  /** nn.Linear: y = x W^T + b with W [out, in]; `zeroBias` as RobustBench's WideResNet initialises its head. */
  linear(x: string, name: string, fin: number, fout: number, opts: { zeroBias?: boolean } = {}): string {
    const bound = 1 / Math.sqrt(fin);
    const w = this.param(`${name}.weight`, [fout, fin], this.uniform(bound), true, 'weight');
    const bias = this.param(`${name}.bias`, [fout], opts.zeroBias ? (_, n) => new Float32Array(n) : this.uniform(bound), true, 'bias');
    return this.b.op('Gemm', [x, w, bias], { transB: 1 });
  }

  /**
   * nn.BatchNorm2d. In train mode the batch mean and biased variance are computed explicitly and fed to an
   * inference-mode BatchNormalization (same output as batch-statistics BN, and its gradient flows through the
   * statistics). ONNX Runtime's own training_mode=1 kernel is avoided: it may write the running statistics
   * in place into its input buffers, and ONNX's running-stat update differs from PyTorch's (momentum
   * convention, unbiased variance). The running statistics are updated here with PyTorch's rule.
   */
  batchNorm(x: string, bnName: string, c: number, mode: BnMode = this.bnMode): string {
    const frozen = this.wing === 'frozen';
    const name = frozen ? `frozen.${bnName}` : bnName;
    const scale = this.param(`${name}.weight`, [c], (_, n) => new Float32Array(n).fill(1), true, 'norm');
    const bias = this.param(`${name}.bias`, [c], (_, n) => new Float32Array(n), true, 'norm');
    const rm = this.buffer(`${name}.running_mean`, [c], 0);
    const rv = this.buffer(`${name}.running_var`, [c], 1);
    return this.batchNormWith(x, { scale, bias, rm, rv }, frozen ? 'eval' : mode);
  }

  /** BatchNorm over given parameter/statistics values (TWINS builds two wings over shared names). */
  batchNormWith(x: string, v: { scale: string; bias: string; rm: string; rv: string }, mode: BnMode): string {
    if (mode === 'eval') return this.b.op('BatchNormalization', [x, v.scale, v.bias, v.rm, v.rv], { epsilon: BN_EPS });
    return trainModeBatchNorm(this.b, x, v, BN_EPS, BN_MOMENTUM, this.bufferUpdates);
  }

  act(x: string, layer: string): string {
    return applyActivation(this, x, this.activation, layer);
  }
}

/**
 * PyTorch's train-mode BatchNorm: normalise with the batch statistics (biased variance), differentiated
 * through them by the closed-form VJP (rules/batchnorm.ts), and record the running-statistics update
 * (unbiased variance, PyTorch `momentum`) in `bufferUpdates`. A later pass over the same layer updates
 * what the earlier pass left, as PyTorch does. Shared by advrun's models and imported ONNX models.
 */
export function trainModeBatchNorm(b: Builder, x: string, v: { scale: string; bias: string; rm: string; rv: string }, eps: number, momentum: number, bufferUpdates: Record<string, string>): string {
  const axes = [0, ...b.shape(x).slice(2).map((_, i) => i + 2)];
  const meanKeep = b.reduceMean(x, axes, true);
  const centered = b.sub(x, meanKeep);
  const varBiased = b.reduceMean(b.mul(centered, centered), axes, false);
  const mean = b.reshape(meanKeep, [-1]);
  const y = b.op('BatchNormalization', [x, v.scale, v.bias, mean, varBiased], { epsilon: eps }, { customVjp: BATCH_STATISTICS_BN_VJP });
  // n = elements per channel = numel(x) / C, known only at run time (the batch is symbolic).
  const c = b.shape(x)[1] as number;
  const n = b.div(b.cast(b.op('Size', [x]), 'float32'), b.scalar(c));
  const unbiased = b.mul(varBiased, b.div(n, b.sub(n, b.scalar(1))));
  const rm = bufferUpdates[v.rm] ?? v.rm, rv = bufferUpdates[v.rv] ?? v.rv;
  bufferUpdates[v.rm] = b.add(b.scale(rm, 1 - momentum), b.scale(mean, momentum));
  bufferUpdates[v.rv] = b.add(b.scale(rv, 1 - momentum), b.scale(unbiased, momentum));
  return y;
}
