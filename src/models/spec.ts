// What identifies a model: architecture and everything that changes its graph or parameters.

import type { Activation } from './activations.js';

export interface ModelSpec {
  arch: string;
  numClasses: number;
  inChannels: number;
  /** Square input size (height = width): the images the model is fed and attacks perturb. */
  imageSize: number;
  /**
   * Bilinearly resize the input to this square size as the model's first op (TWINS: CIFAR-10 32x32
   * upsampled to 224 for an ImageNet ResNet-50). Attacks still work on the imageSize pixels.
   */
  inputResize?: number;
  /** Base width (channels of the first stage); architecture-specific default when omitted. */
  width?: number;
  /** WideResNet depth, etc. */
  depth?: number;
  activation: Activation;
  /** Per-channel normalisation applied inside the model. */
  mean: number[];
  std: number[];
}
