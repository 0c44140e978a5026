// Activation functions selectable per model (SAT swaps them). Each is expressed with opset-17 ONNX ops,
// so it is differentiable through the primitive VJP rules and runs on every provider.

import { UserError } from '../util/errors.js';
import type { ModelBuilder } from './layers.js';

export type Activation =
  | { kind: 'relu' | 'softplus' | 'silu' | 'gelu' | 'gelu-tanh' | 'elu' | 'smooth-relu' }
  | { kind: 'psoftplus'; alpha: number }
  | { kind: 'celu'; alpha: number };

export const ACTIVATION_NAMES = ['relu', 'softplus', 'psoftplus(alpha)', 'silu', 'gelu', 'gelu-tanh', 'elu', 'celu(alpha)', 'smooth-relu'];

/** Parse `relu`, `psoftplus(10)`, `celu(1.5)`, ... */
export function parseActivation(text: string): Activation {
  const m = /^([a-z-]+)(?:\(([^)]*)\))?$/.exec(text.trim());
  const fail = () => new UserError(`unknown activation "${text}"; use one of ${ACTIVATION_NAMES.join(', ')}`);
  if (!m) throw fail();
  const [, name, arg] = m;
  const num = (dflt: number) => {
    if (arg === undefined || arg === '') return dflt;
    const v = Number(arg);
    if (!Number.isFinite(v) || v <= 0) throw new UserError(`activation "${text}": the parameter must be a positive number`);
    return v;
  };
  switch (name) {
    case 'psoftplus': return { kind: 'psoftplus', alpha: num(10) };
    case 'celu': return { kind: 'celu', alpha: num(1) };
    case 'relu': case 'softplus': case 'silu': case 'gelu': case 'gelu-tanh': case 'elu': case 'smooth-relu':
      if (arg !== undefined) throw fail();
      return { kind: name };
    default: throw fail();
  }
}

export function activationName(a: Activation): string {
  return 'alpha' in a ? `${a.kind}(${a.alpha})` : a.kind;
}

/** SmoothReLU's trainable scalar b (beta = b^2) starts at 20 (SAT). */
const SMOOTH_RELU_INIT = 20;

export function applyActivation(m: ModelBuilder, x: string, a: Activation, layer: string): string {
  const b = m.b;
  switch (a.kind) {
    case 'relu': return b.relu(x);
    case 'softplus': return b.op('Softplus', [x]);
    case 'psoftplus': return b.scale(b.op('Softplus', [b.scale(x, a.alpha)]), 1 / a.alpha);
    case 'silu': return b.mul(x, b.sigmoid(x));
    case 'elu': return b.op('Elu', [x], { alpha: 1.0 });
    case 'celu': return b.op('Celu', [x], { alpha: a.alpha });
    case 'gelu': {
      // x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); the Gelu op itself needs opset 20.
      const erf = b.op('Erf', [b.scale(x, Math.SQRT1_2)]);
      return b.mul(b.scale(x, 0.5), b.add(erf, b.scalar(1)));
    }
    case 'gelu-tanh': {
      const inner = b.scale(b.add(x, b.scale(b.mul(b.mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
      return b.mul(b.scale(x, 0.5), b.add(b.tanh(inner), b.scalar(1)));
    }
    case 'smooth-relu': {
      // x - log(beta x + 1)/beta for x >= 0, else 0; beta = b^2 with b trainable per layer, no weight decay.
      const s = m.param(`${layer}.smooth_relu_b`, [], (_, n) => new Float32Array(n).fill(SMOOTH_RELU_INIT), false);
      const beta = b.mul(s, s);
      const pos = b.relu(x);
      const smooth = b.sub(pos, b.div(b.log(b.add(b.mul(beta, pos), b.scalar(1))), beta));
      return smooth;
    }
  }
}
