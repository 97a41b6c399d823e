// Runs the real CLI (src/cli.ts) in a child process: exit code, stdout and stderr.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../src/paths.js';

export function main(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'cli.ts'), ...args], { cwd: projectRoot, env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
