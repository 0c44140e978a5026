// Robustness evaluation: clean accuracy and accuracy under an attack, run on the points the model
// classifies correctly (the others already count as errors), with gradient-masking sanity checks.

import { argmaxCorrect, gatherCorrect } from '../attacks/common.js';
import { createAttack, type Attack, type AttackModel, type CreateAttackOptions } from '../attacks/index.js';
import { head, streamBatches, type Dataset } from '../data/index.js';

export interface EvalResult {
  clean_acc: number;
  robust_acc: number | null;
  n: number;
  attack: Record<string, unknown> | null;
  warnings: string[];
  seconds: number;
}

/** Warnings for the usual signs of gradient masking or a mis-wired model (AutoAttack checks.py, ART). */
async function sanityChecks(model: AttackModel, x: Float32Array, y: Int32Array, n: number): Promise<string[]> {
  const warnings: string[] = [];
  const k = model.numClasses;
  const { grad, logits } = await model.lossGrad(x, n, { kind: 'ce', labels: y });
  if (grad.some((v) => Number.isNaN(v))) warnings.push('the input gradient contains NaN: attacks cannot be trusted');
  const per = grad.length / n;
  let zero = 0;
  for (let i = 0; i < n; i++) if (grad.subarray(i * per, (i + 1) * per).every((v) => v === 0)) zero++;
  // AutoAttack's check_zero_gradients: any such point makes gradient-based attacks unreliable there.
  if (zero > 0) warnings.push(`${zero}/${n} examples have an all-zero input gradient (possible gradient masking)`);
  // AutoAttack's check_randomized: a model whose outputs change between two identical calls needs EOT attacks.
  // Beyond float32 rounding: advrun's runtime may serve the two calls from two sessions (state as inputs,
  // then compiled in), whose kernels differ in the last bits.
  const [first, second] = [await model.logits(x, n), await model.logits(x, n)];
  if (first.some((v, i) => Math.abs(v - second[i]!) > 1e-3 * Math.max(1, Math.abs(v)))) warnings.push('the model gives different outputs for the same input (randomised defence): use attacks with expectation over transformation');
  let softmaxRows = 0;
  for (let i = 0; i < n; i++) {
    const row = logits.subarray(i * k, (i + 1) * k);
    const sum = row.reduce((a, v) => a + v, 0);
    if (row.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) < 1e-3) softmaxRows++;
  }
  if (softmaxRows === n) warnings.push('the model outputs look like probabilities (softmax), not logits: CE/DLR attacks are weakened');
  return warnings;
}

export interface EvaluateOptions extends CreateAttackOptions {
  attack: string | null;
  batchSize: number;
  limit?: number;
  /** The gradient-masking sanity checks on the first batch (default true; training's per-epoch validation skips them). */
  sanityChecks?: boolean;
}

export async function evaluate(model: AttackModel, ds: Dataset, o: EvaluateOptions): Promise<EvalResult> {
  const t0 = Date.now();
  const n = Math.min(o.limit ?? ds.n, ds.n);
  const attack: Attack | null = o.attack ? createAttack(o.attack, o) : null;
  const per = ds.channels * ds.height * ds.width;
  const k = ds.numClasses;
  let clean = 0, robust = 0, seen = 0;
  let warnings: string[] = [];
  let whiteBoxRobust = 0, blackBoxExtra = 0;
  for await (const batch of streamBatches(head(ds, n), { batchSize: o.batchSize, shuffle: false })) {
    // head() already stops at n examples.
    const { x, y, n: m } = batch;
    if (seen === 0 && o.sanityChecks !== false) warnings = await sanityChecks(model, x, y, m);
    const correct = argmaxCorrect(await model.logits(x, m), y, k);
    clean += correct.reduce((a, v) => a + v, 0);
    if (attack) {
      const c = gatherCorrect(x, y, correct, per);
      if (c.idx.length > 0) {
        const r = await attack.run(model, c.x, c.y, c.idx.length, c.idx.map((i) => seen + i)); // ids: dataset positions
        robust += r.robust.reduce((a, v) => a + v, 0);
        if (r.stages) {
          // aa-lite's per-stage survivors: APGD-T ends the white-box part, Square the black-box one.
          const survivors = (stage: string) => r.stages!.find((s) => s.name === stage)?.robust ?? 0;
          whiteBoxRobust += survivors('apgd-t');
          blackBoxExtra += survivors('apgd-t') - survivors('square');
        }
      }
    }
    seen += m;
  }
  if (blackBoxExtra > 0) warnings.push(`the black-box Square attack broke ${blackBoxExtra} points the white-box APGD attacks did not (of ${whiteBoxRobust}): a sign of gradient masking`);
  return { clean_acc: clean / n, robust_acc: attack ? robust / n : null, n, attack: attack ? attack.settings() : null, warnings, seconds: (Date.now() - t0) / 1000 };
}
