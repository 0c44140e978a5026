// The attack registry: createAttack(name, options) for every attack in this folder.
//
// Options are AttackOptions (steps optional: each attack has its own default) plus the
// attack-specific extras below; an extra that the named attack does not use is ignored.
// Invalid values (unknown name, eps outside [0, 1] for linf, ...) throw a UserError.

import { closest } from 'fastest-levenshtein';
import { UserError } from '../util/errors.js';
import { AaLite, type AaLiteOptions } from './aa-lite.js';
import { ApgdCe, ApgdT, type ApgdTOptions } from './apgd.js';
import { Bim } from './bim.js';
import { Fgsm, FgsmRs } from './fgsm.js';
import { Mifgsm, type MifgsmOptions } from './mifgsm.js';
import { Pgd, type PgdOptions } from './pgd.js';
import { Square, type SquareOptions } from './square.js';
import type { Attack } from './types.js';

export type { Attack, AttackLoss, AttackModel, AttackOptions, AttackResult, LossGradResult, Norm } from './types.js';
export { AaLite, ApgdCe, ApgdT, Bim, Fgsm, FgsmRs, Mifgsm, Pgd, Square };

export const ATTACK_NAMES = ['fgsm', 'fgsm-rs', 'pgd', 'bim', 'mifgsm', 'apgd-ce', 'apgd-t', 'square', 'aa-lite'] as const;
export type AttackName = (typeof ATTACK_NAMES)[number];

/** Everything createAttack accepts: the shared options plus every attack's extras. */
export type CreateAttackOptions = PgdOptions & MifgsmOptions & ApgdTOptions & SquareOptions & AaLiteOptions;

/** Attacks defined without a random start (FGSM, BIM, MI-FGSM): they reject one. */
const WITHOUT_RANDOM_START: readonly string[] = ['fgsm', 'bim', 'mifgsm'];

/** What --random-start means when not given: the attack's own definition (on for PGD, APGD, aa-lite, FGSM-RS). */
export function defaultRandomStart(attack: string): boolean {
  return !WITHOUT_RANDOM_START.includes(attack);
}

export function isAttackName(name: string): name is AttackName {
  return (ATTACK_NAMES as readonly string[]).includes(name);
}

export function createAttack(name: string, options: CreateAttackOptions): Attack {
  if (!isAttackName(name)) {
    const hint = typeof name === 'string' && name.length > 0 ? ` (did you mean "${closest(name, [...ATTACK_NAMES])}"?)` : '';
    throw new UserError(`unknown attack "${String(name)}"${hint}; valid attacks: ${ATTACK_NAMES.join(', ')}`);
  }
  switch (name) {
    case 'fgsm':
      return new Fgsm(options);
    case 'fgsm-rs':
      return new FgsmRs(options);
    case 'pgd':
      return new Pgd(options);
    case 'bim':
      return new Bim(options);
    case 'mifgsm':
      return new Mifgsm(options);
    case 'apgd-ce':
      return new ApgdCe(options);
    case 'apgd-t':
      return new ApgdT(options);
    case 'square':
      return new Square(options);
    case 'aa-lite':
      return new AaLite(options);
  }
}
