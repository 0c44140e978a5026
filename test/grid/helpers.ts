// Shared by the grid tests: the built CLI (rebuilt when src/ is newer), tiny specs, temp dirs.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

function newestTs(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newestTs(p) : name.endsWith('.ts') ? s.mtimeMs : 0);
  }
  return t;
}

/** The tests run the real CLI: build dist/ first when it is missing or older than src/. */
export function ensureBuilt(): void {
  const built = join(ROOT, 'dist', 'grid', 'scheduler.js');
  if (existsSync(CLI) && existsSync(built) && statSync(built).mtimeMs >= newestTs(join(ROOT, 'src'))) return;
  execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'ignore' });
}

export interface CliResult { code: number; stdout: string; stderr: string }

export function runCli(args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function startCli(args: string[]): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return { child, done };
}

export const tempDir = (tag: string) => mkdtempSync(join(tmpdir(), `advrun-grid-${tag}-`));

/** Tiny runs: seconds each (fashion-mnist-mini is shipped). */
export const TINY_BASE = {
  dataset: 'fashion-mnist-mini', arch: 'small-cnn', width: 4, limit: 256, epochs: 1, steps: 1, 'val-limit': 50, 'val-steps': 2,
};
export const TINY_EVAL = { attack: 'pgd', eps: 0.1, steps: 2, limit: 50 };

export function writeSpec(dir: string, spec: object, name = 'spec.json'): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(spec, null, 2));
  return p;
}

export const readJsonFile = <T = any>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
