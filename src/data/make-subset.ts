// Regenerates datasets/fashion-mnist-mini from the official Fashion-MNIST files.
//   npm run build && node dist/data/make-subset.js [--source DIR] [--out DIR]
//       [--train-per-class 200] [--test-per-class 50] [--seed 0] [--allow-unofficial]
// The default source is the Debian package dir (apt-get install dataset-fashion-mnist). The output
// is byte-for-byte reproducible: same source + options => same files and manifest.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { UserError, isUserFacing } from '../util/errors.js';
import { FASHION_MNIST_FILES, FASHION_MNIST_SYSTEM_DIR, fashionFiles, findIdx, type FashionFile } from './fashion-mnist.js';
import { encodeIdx, maybeGunzip, parseIdx } from './idx.js';
import { selectBalanced, MINI_DIR, type MiniManifest } from './mini.js';
import { writeFileAtomic } from '../util/fs.js';
import { displayPath } from './paths.js';
import { sha256Hex } from '../util/hash.js';

export interface MakeSubsetOptions {
  source?: string;
  out?: string;
  trainPerClass?: number;
  testPerClass?: number;
  seed?: number;
  /** Build from files whose content differs from the official release (manifest records their hashes). */
  allowUnofficial?: boolean;
}

async function readRaw(dir: string, base: FashionFile, allowUnofficial: boolean): Promise<Uint8Array> {
  const file = await findIdx(dir, base);
  if (!file) throw new UserError(`${displayPath(dir)}: no ${base}(.gz); pass --source DIR with the Fashion-MNIST files`);
  const raw = maybeGunzip(await fsp.readFile(file), file, 'replace it with the original file');
  if (!allowUnofficial && sha256Hex(raw) !== FASHION_MNIST_FILES[base].raw) {
    throw new UserError(`${displayPath(file)}: content differs from the official Fashion-MNIST release; use the official files or --allow-unofficial`);
  }
  return raw;
}

export async function makeSubset(o: MakeSubsetOptions = {}): Promise<MiniManifest> {
  const source = path.resolve(o.source ?? FASHION_MNIST_SYSTEM_DIR);
  const out = path.resolve(o.out ?? MINI_DIR);
  const seed = o.seed ?? 0;
  const perClass = { train: o.trainPerClass ?? 200, test: o.testPerClass ?? 50 };
  const manifest: MiniManifest = {
    name: 'fashion-mnist-mini',
    description: `Class-balanced subset of Fashion-MNIST: ${perClass.train} training and ${perClass.test} test images per class.`,
    source: {
      dataset: 'Fashion-MNIST',
      homepage: 'https://github.com/zalandoresearch/fashion-mnist',
      license: 'MIT',
      copyright: '2017 Zalando SE',
      rawSha256: {},
    },
    selection: {
      seed,
      method: 'per class, examples in file order permuted by Rng(deriveSeed(seed, SALT.subset, split, class)) (split 0=train, 1=test); first perClass kept; indices ascending',
    },
    splits: {} as MiniManifest['splits'],
    files: {},
  };
  const outputs: [string, Uint8Array][] = [];
  for (const [splitId, split] of (['train', 'test'] as const).entries()) {
    const f = fashionFiles(split);
    const imgRaw = await readRaw(source, f.images, !!o.allowUnofficial);
    const labRaw = await readRaw(source, f.labels, !!o.allowUnofficial);
    manifest.source.rawSha256[f.images] = sha256Hex(imgRaw);
    manifest.source.rawSha256[f.labels] = sha256Hex(labRaw);
    const img = parseIdx(imgRaw, 3, f.images, 'use the official file');
    const lab = parseIdx(labRaw, 1, f.labels, 'use the official file');
    const indices = selectBalanced(lab.data, 10, perClass[split], seed, splitId);
    const [, h, w] = img.dims as [number, number, number];
    const pix = new Uint8Array(indices.length * h * w);
    const labels = new Uint8Array(indices.length);
    indices.forEach((j, i) => {
      pix.set(img.data.subarray(j * h * w, (j + 1) * h * w), i * h * w);
      labels[i] = lab.data[j]!;
    });
    manifest.splits[split] = { n: indices.length, perClass: new Array<number>(10).fill(perClass[split]), indices };
    outputs.push([`${f.images}.gz`, gzipSync(encodeIdx([indices.length, h, w], pix), { level: 9 })]);
    outputs.push([`${f.labels}.gz`, gzipSync(encodeIdx([indices.length], labels), { level: 9 })]);
  }
  for (const [name, bytes] of outputs) {
    manifest.files[name] = { sha256: sha256Hex(bytes), bytes: bytes.length };
    writeFileAtomic(path.join(out, name), bytes);
  }
  // The manifest goes last: a loader only trusts files the manifest vouches for.
  writeFileAtomic(path.join(out, 'manifest.json'), `${compactNumberArrays(JSON.stringify(manifest, null, 2))}\n`);
  return manifest;
}

/** Keep long index arrays on one line so the manifest stays readable. */
function compactNumberArrays(json: string): string {
  return json.replace(/\[\s*(-?\d+(?:,\s*-?\d+)*)\s*\]/g, (_, body: string) => `[${body.split(/,\s*/).join(',')}]`);
}

function parseArgs(argv: string[]): MakeSubsetOptions {
  const o: MakeSubsetOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UserError(`${a} needs a value`);
      return v;
    };
    const int = (): number => {
      const v = Number(val());
      if (!Number.isInteger(v) || v < 0) throw new UserError(`${a} needs a whole number`);
      return v;
    };
    if (a === '--source') o.source = val();
    else if (a === '--out') o.out = val();
    else if (a === '--train-per-class') o.trainPerClass = int();
    else if (a === '--test-per-class') o.testPerClass = int();
    else if (a === '--seed') o.seed = int();
    else if (a === '--allow-unofficial') o.allowUnofficial = true;
    else throw new UserError(`unknown option ${a} (see the header of src/data/make-subset.ts)`);
  }
  return o;
}

async function main(): Promise<void> {
  try {
    const o = parseArgs(process.argv.slice(2));
    const m = await makeSubset(o);
    const total = Object.values(m.files).reduce((a, f) => a + f.bytes, 0);
    console.log(`wrote ${displayPath(path.resolve(o.out ?? MINI_DIR))}: train ${m.splits.train.n}, test ${m.splits.test.n} images, ${(total / 1e6).toFixed(2)} MB`);
  } catch (e) {
    if (isUserFacing(e)) {
      console.error(`error: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) void main();
