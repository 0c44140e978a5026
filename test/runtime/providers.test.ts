// Execution-provider resolution: probes run once per provider and process; --ep auto says once what it chose.
// And what counts as CI (no progress, no notes).
import { afterEach, describe, expect, test } from 'vitest';
import { providerWorks, resolveProvider } from '../../src/runtime/session.js';
import { inCi } from '../../src/util/ci.js';

describe('execution providers', () => {
  test('a provider is probed once: the same answer object comes back', async () => {
    const first = providerWorks('cuda');
    expect(providerWorks('cuda')).toBe(first);
    expect((await first).ok).toBeTypeOf('boolean');
  });

  test('--ep auto resolves once and reports its choice once', async () => {
    const said: string[] = [];
    const a = await resolveProvider('auto', (m) => said.push(m));
    const b = await resolveProvider('auto', (m) => said.push(m));
    expect(b).toBe(a);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^--ep auto: (using (cuda|webgpu)|no GPU provider is available, using cpu)$/);
  });
});

describe('CI detection', () => {
  const saved = process.env.CI;
  afterEach(() => { if (saved === undefined) delete process.env.CI; else process.env.CI = saved; });
  test('CI=true (or 1, or any value) is CI; unset, empty, 0 and false are not', () => {
    for (const v of ['true', '1', 'yes', 'github']) { process.env.CI = v; expect(inCi(), v).toBe(true); }
    for (const v of ['', '0', 'false', 'FALSE']) { process.env.CI = v; expect(inCi(), v).toBe(false); }
    delete process.env.CI;
    expect(inCi()).toBe(false);
  });
});
