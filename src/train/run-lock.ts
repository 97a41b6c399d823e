// One writer per run folder: `train` holds `<run>/.lock` (created with O_EXCL, holding pid + host + start time) from
// before its first write until it returns, so a second `train --run-name X` or `--resume X` is refused instead of
// interleaving metrics and checkpoints. A lock left by a process that died (kill -9, power loss) is taken over when
// its pid is gone on this same host; a lock from another host cannot be checked and is reported with its path.
// A takeover is atomic: it holds a second O_EXCL file (`.lock.takeover`) while it checks the stale lock again and
// renames its own lock over it, so of two processes taking over the same stale lock at the same instant exactly one
// wins and the other finds a live lock (or the takeover in progress) and is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';
import { tempName } from '../util/atomic.js';

export const RUN_LOCK = '.lock';
/** Held (O_EXCL) by the one process taking over a stale lock, for the milliseconds that takes. */
export const RUN_LOCK_TAKEOVER = '.lock.takeover';
/** A torn lock (its writer killed between create and write) or a takeover file older than this is a dead process's. */
const TORN_MS = 10_000;

/** Test-only: called at the two moments of a takeover where a racing process matters, so a test can interleave a
 *  second taker there deterministically. */
export interface LockTakeoverHooks {
  /** The lock was judged stale; nothing taken yet. */
  judgedStale?: () => void;
  /** The takeover file is held; the stale lock is about to be replaced. */
  holdingTakeover?: () => void;
}

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

export interface RunLock {
  file: string;
  release(): void;
}

/** Whether process `pid` exists on this host. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readLock(file: string): LockInfo | undefined {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
    return Number.isInteger(info.pid) && typeof info.host === 'string' ? info : undefined;
  } catch {
    return undefined; // vanished, or torn by a kill between create and write
  }
}

/** Whether the lock file's content (`held`, undefined when unreadable or torn) belongs to a process that is gone. */
function isStale(held: LockInfo | undefined, st: fs.Stats, host: string): boolean {
  return held === undefined ? Date.now() - st.mtimeMs > TORN_MS : held.host === host && !pidAlive(held.pid);
}

function inUse(runDir: string, file: string, held: LockInfo | undefined): UserError {
  const who = held ? `gapcam pid ${held.pid} on ${held.host} (since ${held.startedAt})` : 'a gapcam process that is starting';
  return new UserError(`run folder ${runDir} is in use by ${who}: one training process per run (if that process is gone, remove ${file})`);
}

/** Replaces the stale lock `file` by `mine`, holding the takeover file: true when this process now holds the lock,
 *  false when the lock vanished meanwhile (try creating it again); throws when another process holds it or is
 *  taking it over right now. */
function takeOver(runDir: string, file: string, mine: LockInfo, hooks: LockTakeoverHooks): boolean {
  const guard = path.join(runDir, RUN_LOCK_TAKEOVER);
  let fd: number;
  try {
    fd = fs.openSync(guard, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const st = fs.statSync(guard, { throwIfNoEntry: false });
    // A takeover file this old was left by a process killed during its takeover: remove it and let the next
    // attempt take over (two racers would both need to arrive in the same instant after a crash inside one).
    if (!st || Date.now() - st.mtimeMs > TORN_MS) {
      fs.rmSync(guard, { force: true });
      return false;
    }
    throw new UserError(`run folder ${runDir} is being taken over by another gapcam process (its lock ${file} was left by a ` +
      `process that is gone): one training process per run`);
  }
  fs.closeSync(fd);
  try {
    hooks.holdingTakeover?.();
    // Checked again now that no other process can replace the lock: a racer may have taken it over already.
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) return false;
    const held = readLock(file);
    if (!isStale(held, st, mine.host)) throw inUse(runDir, file, held);
    // Renamed over the stale lock: `.lock` never disappears, so no process can create it meanwhile.
    const tmp = tempName(file);
    fs.writeFileSync(tmp, JSON.stringify(mine) + '\n', { flag: 'wx' });
    fs.renameSync(tmp, file);
    return true;
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

/** Takes the run folder's lock (creating the folder), or throws a one-line UserError naming the holder. Releasing
 *  removes the lock, and the folder too when this lock created it and nothing else was written (a run refused early). */
export function lockRun(runDir: string, hooks: LockTakeoverHooks = {}): RunLock {
  const created = fs.mkdirSync(runDir, { recursive: true }) !== undefined;
  const file = path.join(runDir, RUN_LOCK);
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, JSON.stringify(mine) + '\n');
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = readLock(file);
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (!st) continue; // released meanwhile
      // Stale: a dead pid on this host, or a torn lock file that stayed empty for a while.
      if (!isStale(held, st, mine.host)) throw inUse(runDir, file, held);
      hooks.judgedStale?.();
      if (!takeOver(runDir, file, mine, hooks)) continue;
    }
    let released = false;
    return {
      file,
      release: () => {
        if (released) return;
        released = true;
        if (readLock(file)?.pid === process.pid) fs.rmSync(file, { force: true });
        if (created && fs.readdirSync(runDir).length === 0) fs.rmdirSync(runDir);
      },
    };
  }
  throw new UserError(`run folder ${runDir}: cannot take the lock ${file} (another process keeps replacing it)`);
}
