// Helpers for multi-process tests: free loopback ports, and child processes that are always stopped.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { localTfjsNodeDir } from '../../src/engine.js';
import { projectRoot } from '../../src/paths.js';
import { UserError } from '../../src/errors.js';

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

/** How closely N workers must reproduce one process (summation order is the only difference). */
export const LOSS_RTOL = 1e-5;
export const WEIGHT_ATOL = 1e-4;

/** Per-step losses agree to LOSS_RTOL relative. */
export function expectLossesClose(actual: number[], expected: number[], what: string): void {
  expect(actual.length, what).to.equal(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]), `${what}: step ${i + 1} loss ${actual[i]} vs ${expected[i]}`).to.be.below(LOSS_RTOL);
  }
}

/** max |a − b| / max(1, |b|): absolute for weights up to 1, relative for larger ones (BatchNorm moving variances). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return m;
}

/** The child exited 0 (else its stderr's tail in the message). */
export function ok(d: Finished, what: string): Finished {
  expect(d.code, `${what} exited with ${d.code ?? d.signal}:\n${d.stderr.slice(-2000)}`).to.equal(0);
  return d;
}

/** `n` worker addresses on free loopback ports, as --workers takes them. */
export async function workerAddresses(n: number): Promise<string> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`).join(',');
}

/** A worker script's failure path: a UserError becomes one line on stderr and its exit code, as in the CLI; anything
 *  else is rethrown. */
export function exitOnUserError(err: unknown): never {
  if (err instanceof UserError) {
    process.stderr.write(`gapcam: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  throw err;
}
