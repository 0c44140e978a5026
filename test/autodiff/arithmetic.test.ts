import { describe, expect, test } from 'vitest';
import { gradcheck } from '../helpers/gradcheck.js';

describe('arithmetic VJP rules', () => {
  const binary = ['Add', 'Sub', 'Mul', 'Div'] as const;
  const shapes: [number[], number[]][] = [[[2, 3], [2, 3]], [[2, 3, 4], [4]], [[2, 1, 4], [3, 1]], [[1], [2, 3]]];
  for (const op of binary) {
    for (const [sa, sb] of shapes) {
      test(`${op} [${sa}] x [${sb}]`, async () => {
        const r = await gradcheck({
          inputs: [{ name: 'a', shape: sa }, { name: 'b', shape: sb, init: op === 'Div' ? 'positive' : 'normal' }],
          build: (b, [x, y]) => b.op(op, [x!, y!]),
        });
        expect(r.checked).toBeGreaterThan(0);
      });
    }
  }
  test('Neg, Identity and Sum of three broadcast inputs', async () => {
    await gradcheck({
      inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3] }, { name: 'c', shape: [2, 1] }],
      build: (b, [x, y, z]) => b.neg(b.identity(b.op('Sum', [x!, y!, z!]))),
    });
  });
  test('a value used twice accumulates both cotangents', async () => {
    await gradcheck({ inputs: [{ name: 'a', shape: [5] }], build: (b, [x]) => b.mul(b.add(x!, x!), x!) });
  });
});

describe('broadcasting a symbolic dimension', () => {
  test('against a static size > 1 the gradient cannot be shaped: an error, not a silently wrong gradient', async () => {
    const { newGraph } = await import('../../src/ir/builder.js');
    const { addGradients } = await import('../../src/autodiff/grad.js');
    const { graph, b } = newGraph('bc');
    const x = graph.addInput('x', 'float32', ['N', 3]), y = graph.addInput('y', 'float32', [5, 3]);
    expect(() => addGradients(graph, b.sumAll(b.add(x, y)), [x])).toThrow(/cannot differentiate the broadcast of "x" \(dimension 0 is "N"\) to \[5,3\]/);
    // The same symbol on both sides is the batch: fine.
    const g2 = newGraph('bc2');
    const a = g2.graph.addInput('a', 'float32', ['N', 3]), c = g2.graph.addInput('c', 'float32', ['N', 1]);
    expect(() => addGradients(g2.graph, g2.b.sumAll(g2.b.mul(a, c)), [a, c])).not.toThrow();
  });
});
