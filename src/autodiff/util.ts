// Helpers shared by VJP rules.

import type { Builder } from '../ir/builder.js';
import type { Dim } from '../ir/graph.js';

/**
 * Sum a cotangent `g` (shaped like a broadcast result) back to the shape of `target`:
 * reduce the leading axes `target` lacks and the axes where `target` has size 1.
 */
export function unbroadcast(b: Builder, g: string, target: string): string {
  const gs = b.shape(g), ts = b.shape(target);
  if (sameShape(gs, ts)) return g;
  const lead = gs.length - ts.length;
  const axes: number[] = [];
  for (let i = 0; i < gs.length; i++) {
    const t = ts[i - lead];
    if (i < lead) axes.push(i);
    else if (t === 1 && gs[i] !== 1) axes.push(i);
    else if (typeof t === 'string' && typeof gs[i] === 'number' && (gs[i] as number) > 1) {
      // A symbolic size against a static one: 1 at run time (broadcast: sum over it) or that size (keep it)?
      // The graph cannot tell, and either guess gives some inputs a wrong gradient. (Two different symbols
      // are taken to be the same size: a batch dimension named differently by two parts of a graph.)
      throw new Error(`cannot differentiate the broadcast of "${target}" (dimension ${i - lead} is "${t}") to [${gs}]: give that dimension a static size`);
    }
  }
  let r = axes.length ? b.reduceSum(g, axes, true) : g;
  if (lead > 0) r = b.squeeze(r, Array.from({ length: lead }, (_, i) => i));
  return r;
}

export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
