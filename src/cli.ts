#!/usr/bin/env node
// The gapcam command line. Only this file calls process.exit.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { UserError } from './errors.js';

export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  let usageFailure: string | undefined;
  const parser = yargs(argv)
    .scriptName('gapcam')
    .usage('$0 <command> [options]\n\nClass Activation Mapping: VGG-GAP surgery, training, localization, CAMs, GAP-feature transfer.')
    .option('backend', { type: 'string', describe: 'engine: auto|tensorflow-gpu|tensorflow|wasm|cpu (env GAPCAM_BACKEND)', global: true })
    .option('seed', { type: 'number', describe: 'random seed', global: true })
    .option('data-root', { type: 'string', describe: 'folder holding the datasets (default: datasets/)', global: true })
    .option('out', { type: 'string', describe: 'output folder', global: true })
    .option('verbose', { type: 'boolean', describe: 'print stack traces', global: true })
    .command(commands)
    .demandCommand(1, 'name a command (gapcam --help lists them)')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      if (err) throw err;
      usageFailure = msg;
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    return reportError(err, verbose);
  }
  if (usageFailure) {
    process.stderr.write(`gapcam: ${usageFailure.split('\n').join(' ')}\n`);
    return 2;
  }
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

function reportError(err: unknown, verbose: boolean): number {
  if (err instanceof UserError) {
    process.stderr.write(`gapcam: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`gapcam: internal error: ${e.message.split('\n')[0]}${verbose ? '' : ' (--verbose for the stack trace)'}\n`);
  if (verbose && e.stack) process.stderr.write(e.stack + '\n');
  return 1;
}

main(hideBin(process.argv)).then((code) => process.exit(code));
