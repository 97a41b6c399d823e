// Where a worker other than the chief writes its copy of the run (the trainer writes checkpoints and metrics on
// every worker; only the chief's are kept): a temporary folder it removes when training ends. A worker killed with
// SIGKILL (or a lost node coming back) cannot remove it, so every worker first removes such leftovers of earlier
// runs on this host — only folders gapcam made, recognised by their name and the marker file inside, whose owner
// process is gone — as the run lock takes over a dead process's lock (src/train/run-lock.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from '../train/run-lock.js';

const NAME = /^gapcam-worker\d+-/;
/** Written first into every worker folder: who owns it. */
export const WORKER_DIR_MARKER = '.gapcam-worker.json';

interface Owner {
  pid: number;
  host: string;
  startedAt: string;
}

/** A fresh temporary folder for worker `rank` (in `tmp`, default the OS's), after removing stale ones. */
export function createWorkerDir(rank: number, tmp = os.tmpdir()): string {
  removeStaleWorkerDirs(tmp);
  const dir = fs.mkdtempSync(path.join(tmp, `gapcam-worker${rank}-`));
  const owner: Owner = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() };
  fs.writeFileSync(path.join(dir, WORKER_DIR_MARKER), JSON.stringify(owner) + '\n');
  return dir;
}

/** Removes the worker folders in `tmp` left by dead gapcam processes of this user on this host; returns them. A
 *  folder without a readable marker (not gapcam's, or its owner killed before writing it) is left alone. */
export function removeStaleWorkerDirs(tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!NAME.test(name)) continue;
    const dir = path.join(tmp, name);
    try {
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      const owner = JSON.parse(fs.readFileSync(path.join(dir, WORKER_DIR_MARKER), 'utf8')) as Partial<Owner>;
      if (owner.host !== os.hostname() || !Number.isInteger(owner.pid) || pidAlive(owner.pid!)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      continue; // no marker, unreadable, or removed meanwhile by another worker
    }
  }
  return removed;
}
