// A non-chief worker's temporary run folder: marked with its owner, and removed by the next worker on this host
// once that owner is dead (a SIGKILLed worker cannot remove its own) — nothing else in the temp folder is touched.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeTempDir } from '../helpers.js';
import { createWorkerDir, removeStaleWorkerDirs, WORKER_DIR_MARKER } from '../../src/distributed/worker-dir.js';

/** The pid of a process that has just exited (the kernel does not hand it out again at once). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('distributed: worker temporary folders', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = makeTempDir('gapcam-wdir-');
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const folder = (name: string, owner?: object | string) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(path.join(dir, 'last'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'last', 'model.json'), '{}');
    if (owner !== undefined) fs.writeFileSync(path.join(dir, WORKER_DIR_MARKER), typeof owner === 'string' ? owner : JSON.stringify(owner));
    return dir;
  };

  it('a new worker folder carries its owner; the stale ones of dead gapcam workers on this host are removed, nothing else', () => {
    const host = os.hostname();
    const dead = deadPid();
    const killed = folder('gapcam-worker1-aB3xQz', { pid: dead, host, startedAt: '2026-01-01T00:00:00Z' });
    const killed2 = folder('gapcam-worker3-Zz0000', { pid: dead, host, startedAt: '2026-01-01T00:00:00Z' });
    const kept = [
      folder('gapcam-worker1-live00', { pid: process.pid, host, startedAt: '' }), // its owner runs
      folder('gapcam-worker2-other0', { pid: dead, host: `${host}-elsewhere`, startedAt: '' }), // another host's pid cannot be checked
      folder('gapcam-worker1-nomark'), // no marker: not known to be gapcam's
      folder('gapcam-worker1-torn00', '{"pid":'), // marker torn by a kill while it was written
      folder('gapcam-workerX-abcdef', { pid: dead, host, startedAt: '' }), // not a name gapcam makes
      folder('my-gapcam-worker1-abc', { pid: dead, host, startedAt: '' }),
    ];
    const file = path.join(tmp, 'gapcam-worker1-file00');
    fs.writeFileSync(file, 'a file, not a folder');

    const mine = createWorkerDir(1, tmp);
    expect(path.basename(mine)).to.match(/^gapcam-worker1-/);
    const owner = JSON.parse(fs.readFileSync(path.join(mine, WORKER_DIR_MARKER), 'utf8'));
    expect(owner).to.include({ pid: process.pid, host });
    for (const d of [killed, killed2]) expect(fs.existsSync(d), d).to.equal(false);
    for (const d of [...kept, file, mine]) expect(fs.existsSync(d), d).to.equal(true);
    expect(removeStaleWorkerDirs(tmp), 'nothing more to remove').to.deep.equal([]);
  });

  it('a temp folder that cannot be listed is no error', () => {
    expect(removeStaleWorkerDirs(path.join(tmp, 'missing'))).to.deep.equal([]);
  });
});
