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
