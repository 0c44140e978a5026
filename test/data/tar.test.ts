import { describe, expect, test } from 'vitest';
import { readTar } from '../../src/data/tar.js';
import { makeTar } from './helpers.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('minimal tar reader', () => {
  test('reads regular files, directories, GNU long names and pax paths', () => {
    const long = `${'d'.repeat(120)}/file.bin`;
    const tar = makeTar([
      { name: 'top/', type: '5' },
      { name: 'top/a.txt', data: Buffer.from('hello') },
      { name: '././@LongLink', type: 'L', data: Buffer.from(`${long}\0`) },
      { name: 'truncated-name', data: Buffer.from('x'.repeat(700)) },
      { name: 'PaxHeader', type: 'x', data: Buffer.from('30 path=top/from-pax-header\n') },
      { name: 'short', data: Buffer.from('pax') },
    ]);
    const entries = [...readTar(tar)];
    expect(entries.map((e) => [e.name, e.type])).toEqual([
      ['top/', '5'],
      ['top/a.txt', '0'],
      [long, '0'],
      ['top/from-pax-header', '0'],
    ]);
    expect(text(entries[1]!.data)).toBe('hello');
    expect(entries[2]!.data.length).toBe(700);
    expect(text(entries[3]!.data)).toBe('pax');
  });

  test('corrupt header and truncated archive are detected', () => {
    const tar = makeTar([{ name: 'a', data: Buffer.from('12345') }]);
    const bad = Uint8Array.from(tar);
    bad[3] = 'z'.charCodeAt(0);
    expect(() => [...readTar(bad)]).toThrow(/bad tar header checksum at byte 0/);
    expect(() => [...readTar(tar.subarray(0, 512))]).toThrow(/runs past the end/);
    expect(() => [...readTar(tar.subarray(0, 1024))]).toThrow(/without an end-of-archive marker/);
  });
});
