// One writer per run folder: `train` holds `<run>/.lock` (created with O_EXCL, holding pid + host + start time) from
// before its first write until it returns, so a second `train --run-name X` or `--resume X` is refused instead of
// interleaving metrics and checkpoints. A lock left by a process that died (kill -9, power loss) is taken over when
// its pid is gone on this same host; a lock from another host cannot be checked and is reported with its path.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';

export const RUN_LOCK = '.lock';

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

/** Takes the run folder's lock (creating the folder), or throws a one-line UserError naming the holder. Releasing
 *  removes the lock, and the folder too when this lock created it and nothing else was written (a run refused early). */
export function lockRun(runDir: string): RunLock {
  const created = fs.mkdirSync(runDir, { recursive: true }) !== undefined;
  const file = path.join(runDir, RUN_LOCK);
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const held = readLock(file);
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (!st) continue; // released meanwhile
      // Stale: a dead pid on this host, or a torn lock file (its writer killed between create and write) that
      // stayed empty for a while. (Two processes taking over the same stale lock at the same instant could both
      // win; that needs two launches racing against a dead run, and is not guarded against.)
      const stale = held === undefined ? Date.now() - st.mtimeMs > 10_000 : held.host === mine.host && !pidAlive(held.pid);
      if (!stale) {
        const who = held ? `gapcam pid ${held.pid} on ${held.host} (since ${held.startedAt})` : 'a gapcam process that is starting';
        throw new UserError(`run folder ${runDir} is in use by ${who}: one training process per run ` +
          `(if that process is gone, remove ${file})`);
      }
      fs.rmSync(file, { force: true });
      continue;
    }
    fs.writeSync(fd, JSON.stringify(mine) + '\n');
    fs.closeSync(fd);
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
