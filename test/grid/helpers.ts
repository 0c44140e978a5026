// Shared by the grid tests: the built CLI (rebuilt when src/ is newer), tiny specs, temp dirs.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

const newest = (paths: string[]) => Math.max(...paths.map((p) => statSync(p).mtimeMs));

/**
 * The tests run the real CLI: build dist/ when it is missing or older than the grid's sources.
 * (vitest's global setup builds everything first; checking only the grid's own files here avoids
 * rebuilding dist/ under the other test files' running processes when unrelated sources change.)
 */
export function ensureBuilt(): void {
  const grid = join(ROOT, 'src', 'grid');
  const sources = [...readdirSync(grid).map((f) => join(grid, f)), join(ROOT, 'src', 'cli', 'grid.ts'), join(ROOT, 'src', 'cli', 'main.ts')];
  const built = ['scheduler.js', 'table.js', 'spec.js'].map((f) => join(ROOT, 'dist', 'grid', f));
  if (existsSync(CLI) && built.every(existsSync) && Math.min(...built.map((p) => statSync(p).mtimeMs)) >= newest(sources)) return;
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

const temps: string[] = [];
export function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `advrun-grid-${tag}-`));
  temps.push(d);
  return d;
}
/** For afterAll: remove the directories this test file made. */
export function removeTempDirs(): void {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
}

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
