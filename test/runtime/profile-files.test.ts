// endProfiling finds its own session's trace even when another session's label extends it
// (attack_dlr and attack_dlr_targeted profile into the same directory).
import { mkdtempSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tmpdir } from 'node:os';
import { expect, test } from 'vitest';
import { newGraph } from '../../src/ir/builder.js';
import { makeTensor } from '../../src/ir/tensor.js';
import { CompiledGraph } from '../../src/runtime/session.js';

test('a trace is matched by label plus timestamp, not by prefix', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'advrun-prof-'));
  const open = async (label: string) => {
    const { graph, b } = newGraph(label);
    graph.markOutput(b.relu(graph.addInput('x', 'float32', [2])));
    const s = await CompiledGraph.create(graph, { label, profileDir: dir, threads: 1 });
    await s.runTensors({ x: makeTensor('float32', [2], [1, -1]) });
    return s;
  };
  const short = await open('attack_dlr');
  const long = await open('attack_dlr_targeted');
  const longTrace = long.endProfiling(dir);
  expect(basename(short.endProfiling(dir))).toMatch(/^attack_dlr_\d{4}-/);
  expect(basename(longTrace)).toMatch(/^attack_dlr_targeted_\d{4}-/);
  await short.release();
  await long.release();
});
