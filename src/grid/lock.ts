// One lock per run, so two schedulers (two `grid run`s, or Slurm array tasks on several nodes of a
// shared filesystem) never run the same run at once. The lock is a file created with O_EXCL
// holding the owner's pid, hostname and start time, plus the pid of the child doing the work.
//
// A lock is stale when (same host) neither the owner nor its child is alive, or (any host) its
// heartbeat, the file's mtime refreshed while the owner lives, is older than STALE_MS. A stale
// lock is broken under a second O_EXCL "break" lock so two breakers cannot both win.

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { writeFileAtomic } from '../util/fs.js';

export const STALE_MS = Number(process.env.ADVRUN_LOCK_STALE_MS ?? 120_000);
const HEARTBEAT_MS = Math.max(1000, Math.min(15_000, STALE_MS / 4));

export interface LockInfo {
  token: string;
  pid: number;
  hostname: string;
  started: string;
  /** The process doing the work (train or eval), which can outlive a killed owner. */
  child_pid: number | null;
  stage: string | null;
}

export function readLock(path: string): LockInfo | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
  } catch {
    return null; // absent, or caught between create and first write
  }
}

function alive(pid: number | null | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Whether the lock at path is held by a live owner (false when absent or stale). */
export function lockHeld(path: string): boolean {
  if (!existsSync(path)) return false;
  return !isStale(path, readLock(path));
}

function isStale(path: string, info: LockInfo | null): boolean {
  if (ageMs(path) > STALE_MS) return true;
  if (!info) return false; // being written right now: give it the benefit of the doubt
  if (info.hostname !== hostname()) return false;
  return !alive(info.pid) && !alive(info.child_pid);
}

export class RunLock {
  private timer: NodeJS.Timeout;

  private constructor(readonly path: string, private info: LockInfo) {
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Take the lock, breaking it if stale; null when another live owner holds it. */
  static tryAcquire(path: string): RunLock | null {
    const info: LockInfo = { token: randomBytes(8).toString('hex'), pid: process.pid, hostname: hostname(), started: new Date().toISOString(), child_pid: null, stage: null };
    for (let attempt = 0; attempt < 2; attempt++) {
      if (createExclusive(path, JSON.stringify(info))) return new RunLock(path, info);
      if (!breakIfStale(path)) return null;
    }
    return null;
  }

  /** Record the child process now doing the work (so a killed owner's child still counts as alive). */
  setChild(pid: number | null, stage: string | null): void {
    this.info = { ...this.info, child_pid: pid, stage };
    if (this.owned()) writeFileAtomic(this.path, JSON.stringify(this.info));
  }

  release(): void {
    clearInterval(this.timer);
    if (this.owned()) rmSync(this.path, { force: true });
  }

  private owned(): boolean {
    return readLock(this.path)?.token === this.info.token;
  }

  private beat(): void {
    try {
      const now = new Date();
      if (this.owned()) utimesSync(this.path, now, now);
    } catch {
      // the directory may be gone (test clean-up); nothing to refresh
    }
  }
}

function createExclusive(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Remove a stale lock; true if the lock is now gone (broken here, or released meanwhile). */
function breakIfStale(path: string): boolean {
  const breaker = `${path}.break`;
  if (ageMs(breaker) > 30_000) rmSync(breaker, { force: true }); // a breaker that died mid-break
  if (!createExclusive(breaker, String(process.pid))) return false;
  try {
    if (!existsSync(path)) return true;
    const info = readLock(path);
    if (!isStale(path, info)) return false;
    // Moved aside rather than deleted, so what the dead owner left can still be inspected.
    renameSync(path, `${path}.stale-${Date.now()}`);
    return true;
  } finally {
    rmSync(breaker, { force: true });
  }
}
