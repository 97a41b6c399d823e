// The command line: strict validation before any handler runs, one-line errors with suggestions, exit codes.
// A few cases run the real program in a child process (node --import tsx src/cli.ts …, which costs a few seconds of
// CPU each); the rest call the same main() in-process.
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { runCli, runMain, type CliResult } from './run-cli.js';

function expectUsageError(r: CliResult, pattern: RegExp): void {
  expect(r.code, `exit code (stderr: ${r.stderr})`).to.equal(2);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, 'stderr lines').to.have.length(1);
  expect(lines[0]).to.match(/^gapcam: /);
  expect(lines[0]).to.match(pattern);
  expect(r.stdout, 'no handler output').to.equal('');
}

describe('engine: the gapcam command line', function () {
  before(useEngine);

  it('--help lists the commands and exits 0', () => {
    const r = runCli(['--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/gapcam engine/);
    expect(r.stdout).to.match(/--backend/);
    expect(r.stderr).to.equal('');
  });

  it('command --help shows its examples', async () => {
    const r = await runMain(['engine', '--help']);
    expect(r.code).to.equal(0);
    expect(r.stdout).to.match(/Examples:/);
    expect(r.stdout).to.match(/gapcam engine --backend wasm/);
  });

  it('an unknown flag fails before the handler runs: one line, exit 2', () => {
    // The engine handler would print the engine report to stdout; nothing may appear.
    expectUsageError(runCli(['engine', '--bogus']), /Unknown option '--bogus' for 'gapcam engine'/);
  });

  it('an unknown command gets the closest valid one', async () => {
    expectUsageError(runCli(['engin']), /^gapcam: Unknown command 'engin'; did you mean 'engine'\?$/);
    expectUsageError(await runMain(['--backend', 'cpu', 'engni']), /Unknown command 'engni'; did you mean 'engine'\?$/);
    expectUsageError(await runMain(['xyzzy']), /Unknown command 'xyzzy' \(commands: .*engine/);
  });

  it('a mistyped flag gets the closest valid one', async () => {
    expectUsageError(await runMain(['engine', '--jsn']), /Unknown option '--jsn' for 'gapcam engine'; did you mean '--json'\?$/);
    expectUsageError(await runMain(['engine', '--verbos', '--bogus']), /did you mean '--verbose' for '--verbos'\?$/);
  });

  it('no command, a stray argument, a missing value and a non-number are one-line usage errors', async () => {
    expectUsageError(await runMain([]), /name a command/);
    expectUsageError(await runMain(['engine', 'extra']), /'gapcam engine' takes no argument 'extra'/);
    expectUsageError(await runMain(['engine', '--data-root']), /--data-root: expected a value/);
    expectUsageError(await runMain(['evaluate', 'run', '--out']), /--out: expected a value/);
    expectUsageError(await runMain(['--seed', 'abc', 'engine']), /--seed: expected a number/);
  });

  it('a bad --backend value is a one-line user error', async () => {
    expectUsageError(await runMain(['engine', '--backend', 'gpu']), /--backend: expected one of auto, tensorflow-gpu, tensorflow, wasm, cpu; got 'gpu'/);
    expectUsageError(await runMain(['engine'], { GAPCAM_BACKEND: 'tpu' }), /got 'tpu'/);
  });

  it('the handler runs when the command line is valid', async () => {
    const r = await runMain(['engine', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).name).to.equal('tensorflow');
  });

  it('--verbose adds the stack trace', async () => {
    const r = await runMain(['engine', '--backend', 'gpu', '--verbose']);
    expect(r.code).to.equal(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).to.match(/^gapcam: --backend: expected one of/);
    expect(lines.length).to.be.greaterThan(2);
    expect(r.stderr).to.match(/\n\s+at .*engine\.ts/);
  });
});
