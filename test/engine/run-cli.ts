// Runs the gapcam CLI from source in a child process, as a user would (node --import tsx src/cli.ts …).
import { spawnSync } from 'node:child_process';
import { projectRoot } from '../../src/paths.js';

export interface CliResult { code: number | null; stdout: string; stderr: string }

export function runCli(args: string[], env: Record<string, string | undefined> = {}): CliResult {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, GAPCAM_BACKEND: undefined, ...env };
  for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k];
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: projectRoot, env: childEnv, encoding: 'utf8', timeout: 90_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr without TensorFlow's own start-up banner (absl/oneDNN lines printed by libtensorflow itself). */
export function gapcamStderr(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' &&
    !/^WARNING: All log messages before absl::InitializeLog\(\)/.test(l) && !/^[IWE]\d{4} .*\] /.test(l));
}

/** Runs the CLI's main() in this process (no process.exit), capturing what it writes. */
export async function runMain(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const { main } = await import('../../src/cli.js');
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries({ GAPCAM_BACKEND: undefined, ...env })) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const out = { stdout: '', stderr: '' };
  const capture = (key: 'stdout' | 'stderr') => ((chunk: unknown, ...rest: unknown[]) => {
    out[key] += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    const done = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    done?.();
    return true;
  }) as typeof process.stdout.write;
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  const exitCode = process.exitCode;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  let code: number;
  try {
    code = await main(args);
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
    process.exitCode = exitCode;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  return { code, ...out };
}
