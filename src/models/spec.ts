// What identifies a model: architecture and everything that changes its graph or parameters.

import type { Activation } from './activations.js';

export interface ModelSpec {
  arch: string;
  numClasses: number;
  inChannels: number;
  /** Square input size (height = width). */
  imageSize: number;
  /** Base width (channels of the first stage); architecture-specific default when omitted. */
  width?: number;
  /** WideResNet depth, etc. */
  depth?: number;
  activation: Activation;
  /** Per-channel normalisation applied inside the model. */
  mean: number[];
  std: number[];
}
