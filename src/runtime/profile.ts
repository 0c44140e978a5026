// Summaries of ONNX Runtime's per-node profile (the JSON trace written when a session is created with
// profiling on): kernel time by op type and by phase. The phase comes from the node-name prefixes that
// graph generation puts on gradient ("bwd/") and optimizer ("upd/") nodes; every other node of a
// generated graph belongs to the forward pass, except the layout conversions ONNX Runtime inserts.

import { readFileSync } from 'node:fs';
import { NODE_PHASE } from '../ir/graph.js';

export type Phase = 'forward' | 'backward' | 'update' | 'layout';

interface TraceEvent { cat?: string; name?: string; dur?: number; args?: { op_name?: string } }

export interface OpTime { op: string; phase: Phase; ms: number; calls: number }

export interface ProfileSummary {
  /** Runs recorded in the trace (each `model_run` event). */
  runs: number;
  /** Mean wall time of one run, ms. */
  runMs: number;
  /** Kernel time per run by (phase, op type), largest first. */
  ops: OpTime[];
  /** Kernel time per run by phase. */
  phases: Record<Phase, number>;
}

/** The layout conversions around NCHWc convolutions (ONNX Runtime's own, and advrun's lowering in nchwc.ts). */
const LAYOUT_OPS = new Set(['ReorderInput', 'ReorderOutput']);

/** Layout conversions count as 'layout' wherever they are (forward or backward), so that phase is their whole cost. */
export function phaseOf(nodeName: string, op: string): Phase {
  if (LAYOUT_OPS.has(op)) return 'layout';
  if (nodeName.startsWith(`${NODE_PHASE.backward}/`)) return 'backward';
  if (nodeName.startsWith(`${NODE_PHASE.update}/`)) return 'update';
  return 'forward';
}

/**
 * ONNX Runtime's NCHWc layout pass replaces a Conv by one named after its output value ("<value>_nchwc");
 * `producers` (value name -> node name, from the graph that was run) recovers the original node's phase.
 */
export function originalNodeName(ortName: string, producers?: ReadonlyMap<string, string>): string {
  const m = /^(.*)_nchwc$/.exec(ortName);
  return (m && producers?.get(m[1]!)) ?? ortName;
}

/** Summarise a trace; `skipRuns` drops the first runs (warm-up: allocation, first-run kernels). */
export function summariseProfile(events: TraceEvent[], skipRuns = 0, producers?: ReadonlyMap<string, string>): ProfileSummary {
  // Events are in time order; a node event belongs to the run whose model_run ends after it.
  const runEnds: number[] = [];
  const runDurs: number[] = [];
  for (const e of events as (TraceEvent & { ts?: number })[]) {
    if (e.cat === 'Session' && e.name === 'model_run') { runEnds.push((e.ts ?? 0) + (e.dur ?? 0)); runDurs.push(e.dur ?? 0); }
  }
  const firstCounted = skipRuns > 0 && runEnds.length > skipRuns ? runEnds[skipRuns - 1]! : -Infinity;
  const counted = Math.max(1, runEnds.length - (skipRuns < runEnds.length ? skipRuns : 0));
  const byKey = new Map<string, OpTime>();
  for (const e of events as (TraceEvent & { ts?: number })[]) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || (e.ts ?? 0) < firstCounted) continue;
    const op = e.args?.op_name ?? '?';
    const phase = phaseOf(originalNodeName(e.name.slice(0, -'_kernel_time'.length), producers), op);
    const key = `${phase}\u0000${op}`;
    const t = byKey.get(key) ?? { op, phase, ms: 0, calls: 0 };
    t.ms += (e.dur ?? 0) / 1000;
    t.calls++;
    byKey.set(key, t);
  }
  const ops = [...byKey.values()].map((t) => ({ ...t, ms: t.ms / counted, calls: t.calls / counted })).sort((a, b) => b.ms - a.ms);
  const phases: Record<Phase, number> = { forward: 0, backward: 0, update: 0, layout: 0 };
  for (const t of ops) phases[t.phase] += t.ms;
  const kept = runDurs.slice(runDurs.length > skipRuns ? skipRuns : 0);
  const runMs = kept.reduce((a, b) => a + b, 0) / Math.max(1, kept.length) / 1000;
  return { runs: kept.length, runMs, ops, phases };
}

export function readProfile(path: string, skipRuns = 0, producers?: ReadonlyMap<string, string>): ProfileSummary {
  return summariseProfile(JSON.parse(readFileSync(path, 'utf8')) as TraceEvent[], skipRuns, producers);
}

/** Value name -> name of the node producing it, for originalNodeName. */
export function producerNames(nodes: readonly { name: string; outputs: readonly string[] }[]): Map<string, string> {
  return new Map(nodes.flatMap((n) => n.outputs.map((o) => [o, n.name] as [string, string])));
}

/** A plain-text table of a summary: the phases, then the op types that make up `top` of the time. */
export function formatProfile(label: string, s: ProfileSummary, top = 12): string {
  const kernel = s.ops.reduce((a, t) => a + t.ms, 0);
  const pct = (ms: number) => `${((100 * ms) / Math.max(kernel, 1e-9)).toFixed(1).padStart(5)} %`;
  const lines = [`${label}: ${s.runMs.toFixed(1)} ms per run (${s.runs} runs), kernels ${kernel.toFixed(1)} ms`];
  lines.push('  ' + (Object.entries(s.phases) as [Phase, number][]).filter(([, ms]) => ms > 0).map(([p, ms]) => `${p} ${ms.toFixed(1)} ms (${pct(ms).trim()})`).join(', '));
  for (const t of s.ops.slice(0, top)) lines.push(`  ${t.phase.padEnd(8)} ${t.op.padEnd(22)} ${t.ms.toFixed(2).padStart(9)} ms ${pct(t.ms)}  ${t.calls.toFixed(0).padStart(5)} calls`);
  return lines.join('\n');
}
