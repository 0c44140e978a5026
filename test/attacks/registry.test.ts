// createAttack: names, validation, errors.

import { describe, expect, test } from 'vitest';
import { ATTACK_NAMES, createAttack } from '../../src/attacks/index.js';
import { UserError } from '../../src/util/errors.js';

describe('createAttack', () => {
  test('every registered name builds an attack that reports that name', () => {
    expect([...ATTACK_NAMES]).toEqual(['fgsm', 'fgsm-rs', 'pgd', 'bim', 'mifgsm', 'apgd-ce', 'apgd-t', 'square', 'aa-lite']);
    for (const name of ATTACK_NAMES) {
      const a = createAttack(name, { eps: 8 / 255, norm: 'linf', steps: 10, seed: 0 });
      expect(a.name).toBe(name);
      expect(a.settings().attack).toBe(name);
      expect(a.settings().eps).toBe(8 / 255);
    }
  });

  test('an unknown name is a UserError listing the valid names', () => {
    let err: unknown;
    try {
      createAttack('pdg', { eps: 0.1, norm: 'linf', steps: 10, seed: 0 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    const msg = (err as Error).message;
    for (const name of ATTACK_NAMES) expect(msg).toContain(name);
    expect(msg).toContain('did you mean "pgd"');
    expect(() => createAttack('autoattack', { eps: 0.1, norm: 'linf', steps: 10, seed: 0 })).toThrow(UserError);
  });

  test('eps outside [0, 1] for linf is a UserError; L2 allows eps > 1', () => {
    for (const name of ATTACK_NAMES) {
      for (const eps of [1.5, -0.1, Number.NaN, Infinity]) {
        expect(() => createAttack(name, { eps, norm: 'linf', steps: 10, seed: 0 }), `${name} eps=${eps}`).toThrow(UserError);
      }
      expect(() => createAttack(name, { eps: 1, norm: 'linf', steps: 10, seed: 0 })).not.toThrow();
      expect(() => createAttack(name, { eps: 2, norm: 'l2', steps: 10, seed: 0 })).not.toThrow();
      expect(() => createAttack(name, { eps: -1, norm: 'l2', steps: 10, seed: 0 })).toThrow(UserError);
    }
  });

  test('other invalid options are UserErrors', () => {
    const base = { eps: 0.1, norm: 'linf' as const, seed: 0 };
    expect(() => createAttack('pgd', { ...base, steps: 0 })).toThrow(UserError);
    expect(() => createAttack('pgd', { ...base, steps: 2.5 })).toThrow(UserError);
    expect(() => createAttack('pgd', { ...base, restarts: 0 })).toThrow(UserError);
    expect(() => createAttack('pgd', { ...base, norm: 'l1' as never })).toThrow(UserError);
    expect(() => createAttack('pgd', { ...base, loss: 'hinge' as never })).toThrow(UserError);
    expect(() => createAttack('mifgsm', { ...base, decay: -1 })).toThrow(UserError);
    expect(() => createAttack('apgd-ce', { ...base, rho: 2 })).toThrow(UserError);
    expect(() => createAttack('apgd-t', { ...base, nTargetClasses: 0 })).toThrow(UserError);
    expect(() => createAttack('square', { ...base, nQueries: 0 })).toThrow(UserError);
    expect(() => createAttack('square', { ...base, pInit: 1.5 })).toThrow(UserError);
    expect(() => createAttack('aa-lite', { ...base, nQueries: -3 })).toThrow(UserError);
  });
});
