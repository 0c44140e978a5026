// Reading images from any dataset, in memory or streamed (large image folders, see folder.ts): every
// consumer that needs pixels goes through these, so streamed datasets work wherever in-memory ones do.

import type { Dataset } from './types.js';

/** The images at dataset positions `indices`, NCHW, in that order. */
export async function readExamples(ds: Dataset, indices: ArrayLike<number>): Promise<Float32Array> {
  if (ds.stream) return ds.stream.read(indices);
  const per = ds.channels * ds.height * ds.width;
  const x = new Float32Array(indices.length * per);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]!;
    x.set(ds.images.subarray(j * per, (j + 1) * per), i * per);
  }
  return x;
}

/** Images start..start+count-1 (a view for in-memory datasets). */
export async function readRange(ds: Dataset, start: number, count: number): Promise<Float32Array> {
  if (ds.stream) return ds.stream.read(Array.from({ length: count }, (_, i) => start + i));
  const per = ds.channels * ds.height * ds.width;
  return ds.images.subarray(start * per, (start + count) * per);
}

/** An in-memory copy of a (small) streamed dataset, for code that works on whole arrays; others unchanged. */
export async function materialize(ds: Dataset): Promise<Dataset> {
  if (!ds.stream) return ds;
  const { stream: _stream, ...rest } = ds;
  return { ...rest, images: await readRange(ds, 0, ds.n) };
}
