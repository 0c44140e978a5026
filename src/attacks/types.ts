// The one interface every attack implements, and the model interface attacks see.
// Attacks work in pixel space on [0,1] images (normalisation is inside the model) and never
// leave the eps-ball or [0,1].

export type Norm = 'linf' | 'l2';

/** Losses the model side can differentiate in one forward+backward pass (each is its own ONNX graph). */
export type AttackLoss =
  | { kind: 'ce'; labels: Int32Array }
  /** AutoAttack's DLR: -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3 + 1e-12). */
  | { kind: 'dlr'; labels: Int32Array }
  /** Targeted DLR: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2 + 1e-12). */
  | { kind: 'dlr-targeted'; labels: Int32Array; targets: Int32Array }
  /** TRADES' attack loss: KL(p_clean || softmax(z)) summed over classes, with p_clean given. */
  | { kind: 'kl'; cleanProbs: Float32Array };

export interface LossGradResult {
  /** Per-example loss [n]. */
  loss: Float32Array;
  /** d(sum of per-example losses)/d(x), same layout as x. */
  grad: Float32Array;
  /** Logits [n * numClasses] from the same forward pass. */
  logits: Float32Array;
}

/** What an attack needs from a model. Implemented over ONNX Runtime graphs (eval-mode BN by default). */
export interface AttackModel {
  readonly numClasses: number;
  /** [C, H, W] */
  readonly inputShape: readonly number[];
  logits(x: Float32Array, n: number): Promise<Float32Array>;
  lossGrad(x: Float32Array, n: number, loss: AttackLoss): Promise<LossGradResult>;
}

export interface AttackOptions {
  eps: number;
  norm: Norm;
  steps: number;
  /** Step size; attacks document their default when omitted. */
  stepSize?: number;
  randomStart?: boolean;
  restarts?: number;
  seed: number;
}

export interface AttackResult {
  /** Adversarial images, same layout as the input. */
  xAdv: Float32Array;
  /** Per-example: is the model still correct on xAdv. */
  robust: Uint8Array;
  /** Forward(+backward) passes used, for budget accounting. */
  queries: number;
  /** Composite attacks (aa-lite): how many examples were still robust after each stage, in order. */
  stages?: { name: string; robust: number }[];
}

export interface Attack {
  readonly name: string;
  /** Every setting that changes the number, for result JSON (RobustBench style). */
  settings(): Record<string, unknown>;
  /**
   * Attack n examples. `ids` (default 0..n-1) are the examples' identities, e.g. their dataset indices:
   * each example's random stream derives from its id, so results do not depend on how examples are batched.
   */
  run(model: AttackModel, x: Float32Array, y: Int32Array, n: number, ids?: ArrayLike<number>): Promise<AttackResult>;
}
