// Helpers for multi-process tests: free loopback ports, and child processes that are always stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { localTfjsNodeDir } from '../../src/engine.js';
import { projectRoot } from '../../src/paths.js';

/** `n` distinct ports that were free on 127.0.0.1 a moment ago. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface Finished { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

export interface Started { child: ChildProcess; done: Promise<Finished> }

/** Starts `node --import tsx <args>` in the project root; killed with SIGKILL after `limitMs` (never left running). */
export function startNode(args: string[], env: Record<string, string> = {}, limitMs = 120_000): Started {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: projectRoot, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const done = new Promise<Finished>((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer);
    resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
  }));
  return { child, done };
}

/** Whether the engine build has gapcam's collective-ops patch (an .engine built before it needs
 *  `node scripts/setup-engine.mjs`, which rebuilds it); tests that need it are skipped, saying so, otherwise. */
export function collectivesBuilt(): boolean {
  try {
    return JSON.parse(fs.readFileSync(path.join(localTfjsNodeDir, 'gapcam-patch.json'), 'utf8')).patch >= 1;
  } catch {
    return false;
  }
}

export function skipWithoutCollectives(ctx: Mocha.Context): void {
  if (collectivesBuilt()) return;
  console.log('    (skipped: .engine/tfjs-node lacks the collective-ops patch; run `node scripts/setup-engine.mjs`)');
  ctx.skip();
}
