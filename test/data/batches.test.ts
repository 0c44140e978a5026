import { describe, expect, test } from 'vitest';
import { augmentBatch, batches, defaultAugment, epochOrder, numBatches } from '../../src/data/index.js';
import { Rng } from '../../src/util/random.js';
import { toyDataset } from './helpers.js';

describe('epoch shuffling', () => {
  test('order = f(seed, epoch): identical across calls, differs across epochs and seeds', () => {
    const a = epochOrder(1000, 42, 3);
    expect(epochOrder(1000, 42, 3)).toEqual(a);
    expect(epochOrder(1000, 42, 4)).not.toEqual(a);
    expect(epochOrder(1000, 43, 3)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // Pinned values: changing the derivation silently would break resumability of old runs.
    expect([...epochOrder(10, 0, 0)]).toEqual([9, 8, 5, 7, 3, 4, 0, 6, 2, 1]);
  });
});

describe('batch iterator', () => {
  const ds = toyDataset(10, 3, { size: 4 });
  const per = 16;

  test('covers every example once per epoch, sizes with and without dropLast', () => {
    const all = [...batches(ds, { batchSize: 4, seed: 1, epoch: 0 })];
    expect(all.map((b) => b.n)).toEqual([4, 4, 2]);
    expect(all[2]!.x.length).toBe(2 * per);
    expect(all.flatMap((b) => [...b.indices]).sort((x, y) => x - y)).toEqual([...Array(10).keys()]);
    const b0 = all[0]!;
    const j = b0.indices[1]!;
    expect(b0.x.subarray(per, 2 * per)).toEqual(ds.images.subarray(j * per, (j + 1) * per));
    expect(b0.y[1]).toBe(ds.labels[j]);
    expect([...batches(ds, { batchSize: 4, dropLast: true })].map((b) => b.n)).toEqual([4, 4]);
    expect(numBatches(10, 4)).toBe(3);
    expect(numBatches(10, 4, true)).toBe(2);
    expect([...batches(ds, { batchSize: 4, shuffle: false })][0]!.indices).toEqual(Uint32Array.from([0, 1, 2, 3]));
  });

  test('batch order follows epochOrder(seed, epoch), so epochs differ and repeat across runs', () => {
    const ds100 = toyDataset(100, 10, { size: 2 });
    const order = (epoch: number) => [...batches(ds100, { batchSize: 32, seed: 4, epoch })].flatMap((b) => [...b.indices]);
    expect(order(3)).toEqual([...epochOrder(100, 4, 3)]);
    expect(order(3)).toEqual(order(3));
    expect(order(4)).not.toEqual(order(3));
  });

  test('resuming at startBatch yields exactly the remaining batches, augmentation included', () => {
    const o = { batchSize: 3, seed: 9, epoch: 5, augment: defaultAugment({ height: 32, width: 32 }) };
    const full = [...batches(ds, o)];
    const resumed = [...batches(ds, { ...o, startBatch: 2 })];
    expect(resumed.map((b) => b.index)).toEqual([2, 3]);
    expect(resumed[0]!.x).toEqual(full[2]!.x);
    expect(resumed[1]!.indices).toEqual(full[3]!.indices);
  });
});

describe('augmentation', () => {
  const n = 64;
  const c = 3;
  const h = 8;
  const w = 8;
  const src = new Float32Array(n * c * h * w);
  new Rng(5).fillUniform(src, 0, 1);

  test('keeps shape and [0,1] range, changes images, is seeded', () => {
    const x = Float32Array.from(src);
    augmentBatch(x, n, c, h, w, { pad: 2, flip: true }, new Rng(1));
    expect(x.length).toBe(src.length);
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...x)).toBeLessThanOrEqual(1);
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const a = x.subarray(i * 192, (i + 1) * 192);
      if (a.some((v, k) => v !== src[i * 192 + k])) changed++;
    }
    expect(changed).toBeGreaterThan(n / 2);
    const y = Float32Array.from(src);
    augmentBatch(y, n, c, h, w, { pad: 2, flip: true }, new Rng(1));
    expect(y).toEqual(x);
    const z = Float32Array.from(src);
    augmentBatch(z, n, c, h, w, { pad: 2, flip: true }, new Rng(2));
    expect(z).not.toEqual(x);
  });

  test('flip alone mirrors rows exactly; crop alone shifts with zero fill', () => {
    const img = Float32Array.from({ length: 2 * 3 }, (_, i) => i + 1); // 1 channel, 2x3
    // Find a seed whose first draw flips.
    const flipped = Float32Array.from(img);
    let seed = 0;
    do {
      flipped.set(img);
      augmentBatch(flipped, 1, 1, 2, 3, { pad: 0, flip: true }, new Rng(seed++));
    } while (flipped[0] === 1 && seed < 64); // bounded: a broken flip must fail, not hang
    expect([...flipped]).toEqual([3, 2, 1, 6, 5, 4]);

    const big = Float32Array.from({ length: 16 }, (_, i) => i + 1); // 4x4
    for (let s = 0; s < 20; s++) {
      const x = Float32Array.from(big);
      augmentBatch(x, 1, 1, 4, 4, { pad: 1, flip: false }, new Rng(s));
      // Every output pixel is either zero (padding) or a source pixel shifted by the same offset.
      const nz = [...x].map((v, i) => [v, i] as const).filter(([v]) => v !== 0);
      const shifts = new Set(nz.map(([v, i]) => `${Math.floor((v - 1) / 4) - Math.floor(i / 4)},${((v - 1) % 4) - (i % 4)}`));
      expect(shifts.size).toBe(1);
      expect(nz.length).toBeGreaterThanOrEqual(9);
    }
  });

  test('pinned output for a fixed seed (changing it would break reproducibility of old runs)', () => {
    const x = Float32Array.from({ length: 2 * 16 }, (_, i) => (i % 16) + 1); // two 4x4 images
    augmentBatch(x, 2, 1, 4, 4, { pad: 1, flip: true }, new Rng(11));
    expect([...x]).toEqual([
      0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0,
      0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ]);
  });

  test('defaults: pad 4 for 32x32, 2 for 28x28', () => {
    expect(defaultAugment({ height: 32, width: 32 }).pad).toBe(4);
    expect(defaultAugment({ height: 28, width: 28 }).pad).toBe(2);
  });
});
