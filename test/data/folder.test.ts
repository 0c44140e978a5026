import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import { scanImageFolder } from '../../src/data/folder.js';
import { expectUserError, tempDir } from './helpers.js';

let root: string;

/** A solid-colour image file of the given size. */
async function writeImage(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 100 })).toFile(file);
}

beforeAll(async () => {
  root = await tempDir();
  // Flat layout; names chosen so code-point order differs from locale order ('Zebra' < 'apple' < 'ant/' ...).
  const flat = path.join(root, 'flat');
  await writeImage(path.join(flat, 'apple', 'b.png'), 40, 20, [255, 0, 0]);
  await writeImage(path.join(flat, 'apple', 'a.png'), 10, 10, [0, 255, 0]);
  await writeImage(path.join(flat, 'apple', 'nested', 'c.PNG'), 10, 10, [0, 0, 255]);
  await fsp.writeFile(path.join(flat, 'apple', 'notes.txt'), 'ignored');
  await writeImage(path.join(flat, 'Zebra', 'z.jpg'), 16, 16, [255, 255, 255]);
  await writeImage(path.join(flat, 'banana', 'x.jpeg'), 8, 12, [0, 0, 0]);
  // Split layout.
  await writeImage(path.join(root, 'split', 'train', 'cat', '1.png'), 8, 8, [10, 20, 30]);
  await writeImage(path.join(root, 'split', 'train', 'dog', '1.png'), 8, 8, [30, 20, 10]);
  await writeImage(path.join(root, 'split', 'test', 'cat', '1.png'), 8, 8, [50, 50, 50]);
  await writeImage(path.join(root, 'split', 'test', 'dog', '1.png'), 8, 8, [60, 60, 60]);
});

afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('image folders', () => {
  test('classes sorted like torchvision, files walked in sorted order, resized to CHW [0,1]', async () => {
    const ds = await loadDataset(`folder:${path.join(root, 'flat')}`, 'train', { imageSize: 6 });
    expect(ds.classNames).toEqual(['Zebra', 'apple', 'banana']);
    expect([...ds.labels]).toEqual([0, 1, 1, 1, 2]);
    expect([ds.n, ds.channels, ds.height, ds.width]).toEqual([5, 3, 6, 6]);
    const per = 3 * 36;
    // Resampling may round 255 to 254, so compare to two decimals.
    const px = (i: number, c: number) => Math.round(ds.images[i * per + c * 36 + 14]! * 100) / 100;
    // apple/a.png (green) comes before apple/b.png (red), then apple/nested/c.PNG (blue).
    expect([px(1, 0), px(1, 1), px(1, 2)]).toEqual([0, 1, 0]);
    expect([px(2, 0), px(2, 1), px(2, 2)]).toEqual([1, 0, 0]);
    expect([px(3, 0), px(3, 1), px(3, 2)]).toEqual([0, 0, 1]);
    expect(Math.min(...ds.images)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ds.images)).toBeLessThanOrEqual(1);
    expect(ds.mean).toHaveLength(3);
  });

  test("files in torchvision's sorted(os.walk()) order: a folder's own files, then its sub-folders by full path", async () => {
    const tree = path.join(root, 'walk');
    // Python's sorted(os.walk('c')) visits c, c/sub, c/sub-x, c/sub/deeper ('-' sorts before '/').
    for (const f of ['c/z.png', 'c/a.png', 'c/sub/m.png', 'c/sub-x/b.png', 'c/sub/deeper/a.png']) await writeImage(path.join(tree, f), 2, 2, [9, 9, 9]);
    const { files } = await scanImageFolder(tree);
    expect(files.map((f) => path.relative(tree, f))).toEqual(['c/a.png', 'c/z.png', 'c/sub/m.png', 'c/sub-x/b.png', 'c/sub/deeper/a.png']);
    // torchvision would also load .bmp/.ppm/.pgm, which advrun cannot decode: an error, not a smaller dataset.
    await fsp.writeFile(path.join(tree, 'c', 'old.bmp'), Buffer.from('BM'));
    await expectUserError(scanImageFolder(tree), /old\.bmp: \.bmp images cannot be decoded by advrun .*convert them to \.png/);
  });

  test('grayscale and non-square sizes', async () => {
    const ds = await loadDataset(`folder:${path.join(root, 'flat')}`, 'test', { imageSize: [4, 7], channels: 1 });
    expect([ds.channels, ds.height, ds.width]).toEqual([1, 4, 7]);
    expect(ds.images.length).toBe(5 * 28);
    expect(ds.images[0]).toBeCloseTo(1, 2); // white zebra
    expect(ds.images[4 * 28]).toBe(0); // black banana
  });

  test('split sub-directories are used per split; a missing one is a UserError', async () => {
    const name = `folder:${path.join(root, 'split')}`;
    const train = await loadDataset(name, 'train', { imageSize: 4 });
    const test = await loadDataset(name, 'test', { imageSize: 4 });
    expect(train.classNames).toEqual(['cat', 'dog']);
    expect(train.images[0]).toBeCloseTo(10 / 255, 5);
    expect(test.images[0]).toBeCloseTo(50 / 255, 5);
    await expectUserError(loadDataset(name, 'val', { imageSize: 4 }), /has split sub-directories but no val\//, /--val/);
    const val = await loadDataset(name, 'val', { imageSize: 4, val: 1 });
    expect(val.n).toBe(1);
  });

  test('corrupt image, empty class, missing dir are UserErrors', async () => {
    const bad = path.join(root, 'bad');
    await writeImage(path.join(bad, 'a', 'ok.png'), 4, 4, [1, 2, 3]);
    await fsp.mkdir(path.join(bad, 'b'), { recursive: true });
    await expectUserError(loadDataset(`folder:${bad}`, 'train'), /b: class folder has no images/);
    await fsp.writeFile(path.join(bad, 'b', 'broken.jpg'), Buffer.from('definitely not a jpeg'));
    await expectUserError(loadDataset(`folder:${bad}`, 'train'), /broken\.jpg: cannot decode image .*remove or replace it/);
    // A JPEG cut short: libvips' multi-line complaint becomes one line.
    const jpeg = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 9, g: 99, b: 199 } } }).jpeg().toBuffer();
    await fsp.writeFile(path.join(bad, 'b', 'broken.jpg'), jpeg.subarray(0, 200));
    const err = await loadDataset(`folder:${bad}`, 'train').catch((e: Error) => e);
    expect((err as Error).message).toMatch(/broken\.jpg: cannot decode image/);
    expect((err as Error).message).not.toContain('\n');
    await expectUserError(loadDataset(`folder:${path.join(root, 'nope')}`, 'train'), /no such directory/);
    await expectUserError(loadDataset(`folder:${path.join(bad, 'a')}`, 'train'), /no class sub-directories/);
    await expectUserError(loadDataset(`folder:${bad}`, 'train', { imageSize: 0 }), /--image-size/);
  });
});
