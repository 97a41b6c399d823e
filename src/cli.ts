#!/usr/bin/env node
// The gapcam command line. Only this file calls process.exit.
//
// Usage errors (unknown command or flag, missing argument) are found by yargs' strict validation BEFORE any handler
// runs; they print one line naming the problem, with the closest valid command or option, and exit 2. User errors
// (UserError) print one line and exit 2; anything else is an internal error (exit 1). --verbose adds stack traces.
import yargs, { type Argv, type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { commands } from './commands/index.js';
import type { GapcamCommand } from './commands/common.js';
import { UserError } from './errors.js';
import { closest } from './util/did-you-mean.js';
import { userErrorFromFs } from './util/fs-errors.js';
import { projectRoot } from './paths.js';

/** A command-line usage error: one line, exit 2. */
class UsageError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Options every command accepts (typed in commands/common.ts as GlobalOptions). `--out` is not one: only the
 *  commands that write an output folder declare it (commands/common.ts withOutOption), so the others refuse it. */
const GLOBAL_OPTIONS: Record<string, Options> = {
  backend: { type: 'string', requiresArg: true, describe: 'engine: auto|tensorflow-gpu|tensorflow|wasm|cpu (env GAPCAM_BACKEND)', global: true },
  seed: { type: 'number', requiresArg: true, describe: 'random seed', global: true },
  'data-root': { type: 'string', requiresArg: true, describe: 'folder holding the datasets (default: datasets/)', global: true },
  verbose: { type: 'boolean', describe: 'print stack traces', global: true },
};

export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  const parser = yargs(argv)
    .scriptName('gapcam')
    .usage('$0 <command> [options]\n\nClass Activation Mapping: VGG-GAP surgery, training, localization, CAMs, GAP-feature transfer.')
    .options(GLOBAL_OPTIONS)
    .command(commands)
    .demandCommand(1, 'name a command')
    .middleware(rejectNaN)
    .strict()
    .strictCommands()
    .help()
    .alias('h', 'help')
    .version('version', 'show the gapcam version', packageVersion())
    .exitProcess(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    // yargs carries on into the handler when a custom fail callback returns, so it must throw.
    .fail((msg, err) => {
      // yargs' own parse errors (e.g. a flag missing its value) arrive as a YError; handler errors pass through.
      if (err && err.name !== 'YError') throw err;
      throw new UsageError(explainUsage(msg ?? err?.message ?? 'invalid command line', argv));
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    return reportError(err, verbose);
  }
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

/** gapcam's version, from its package.json. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

/** yargs turns `--seed abc` into NaN without complaint; no gapcam option takes NaN. */
function rejectNaN(args: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(args)) {
    const values = Array.isArray(value) ? value : [value];
    if (key !== '_' && !/[A-Z]/.test(key) && values.some((v) => typeof v === 'number' && Number.isNaN(v))) {
      throw new UsageError(`${flag(key)}: expected a number`);
    }
  }
}

function reportError(thrown: unknown, verbose: boolean): number {
  // A full disk, no permission, a read-only mount… on a user's path is the user's to fix: one line, exit 2.
  const err = userErrorFromFs(thrown) ?? thrown;
  if (err instanceof UserError) {
    process.stderr.write(`gapcam: ${oneLine(err.message)}\n`);
    const stack = err !== thrown && thrown instanceof Error ? thrown.stack : err.stack;
    if (verbose && stack) process.stderr.write(stack + '\n');
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`gapcam: internal error: ${oneLine(e.message)}${verbose ? '' : ' (--verbose for the stack trace)'}\n`);
  if (verbose && e.stack) process.stderr.write(e.stack + '\n');
  return 1;
}

function oneLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

// ---- usage messages with suggestions ----

function commandNames(cmd: GapcamCommand): string[] {
  const spec = cmd.command;
  const first = (Array.isArray(spec) ? spec : [spec ?? '']).map((s) => String(s).trim().split(/\s+/)[0]);
  const aliases = cmd.aliases === undefined ? [] : Array.isArray(cmd.aliases) ? cmd.aliases : [cmd.aliases];
  return [...first, ...aliases].filter((n) => n && n !== '$0' && n !== '*');
}

/** Runs a command's builder on a throw-away parser to learn its options and subcommands. */
function describeBuilder(cmd: GapcamCommand | undefined): { options: string[]; subcommands: string[] } {
  if (!cmd?.builder) return { options: [], subcommands: [] };
  if (typeof cmd.builder !== 'function') return { options: Object.keys(cmd.builder), subcommands: [] };
  try {
    const y = yargs([]);
    const built = ((cmd.builder as (y: Argv) => unknown)(y) ?? y) as any;
    const options = Object.keys(built.getOptions?.().key ?? {});
    const subcommands: string[] = built.getInternalMethods?.().getCommandInstance?.().getCommands?.() ?? [];
    return { options, subcommands };
  } catch {
    return { options: [], subcommands: [] };
  }
}

/** The command named on the command line (the first token that is a command name or alias). */
function activeCommand(argv: string[]): { cmd: GapcamCommand; name: string; index: number } | undefined {
  for (let i = 0; i < argv.length; i++) {
    const cmd = commands.find((c) => commandNames(c).includes(argv[i]));
    if (cmd) return { cmd, name: commandNames(cmd)[0], index: i };
  }
  return undefined;
}

const flag = (name: string) => (name.length === 1 ? `-${name}` : `--${name}`);

/** `--out` given to a command that writes no output folder: train and demo take `--checkpoints` for their run
 *  folders; the others write no files. */
function unknownOut(where: string, options: string[], argv: string[], active: ReturnType<typeof activeCommand>): string {
  if (options.includes('checkpoints') && !options.includes('out')) {
    return `Unknown option '--out' for '${where}'; did you mean '--checkpoints'? (the folder that holds the run folders; default checkpoints/)`;
  }
  const sub = active && describeBuilder(active.cmd).subcommands.includes(argv[active.index + 1]) ? ` ${argv[active.index + 1]}` : '';
  return `Unknown option '--out' for '${where}${sub}': it writes no output folder (${where}${sub} --help lists the options)`;
}

/** Turns a yargs validation message into gapcam's one-line form with a suggestion. */
function explainUsage(msg: string, argv: string[]): string {
  const active = activeCommand(argv);
  const where = active ? `gapcam ${active.name}` : 'gapcam';
  const unknownCommand = /^Unknown commands?: (.+)$/.exec(msg);
  if (unknownCommand) {
    const word = unknownCommand[1].split(', ')[0];
    const sub = describeBuilder(active?.cmd).subcommands;
    if (active && argv.indexOf(word) > active.index) {
      if (sub.length === 0) return `'${where}' takes no argument '${word}' (${where} --help)`;
      const guess = closest(word, sub);
      return `Unknown command '${active.name} ${word}'` + (guess ? `; did you mean '${active.name} ${guess}'?` : ` (${where} --help lists them)`);
    }
    const names = commands.map((c) => commandNames(c)[0]);
    const guess = closest(word, commands.flatMap(commandNames));
    return `Unknown command '${word}'` + (guess ? `; did you mean '${guess}'?` : ` (commands: ${names.join(', ')})`);
  }
  const unknownOption = /^Unknown arguments?: (.+)$/.exec(msg);
  if (unknownOption) {
    const known = [...Object.keys(GLOBAL_OPTIONS), 'help', ...describeBuilder(active?.cmd).options]
      .filter((k) => !/[A-Z]/.test(k) && k !== 'version');
    const words = unknownOption[1].split(', ');
    if (words.length === 1 && words[0] === 'out') return unknownOut(where, describeBuilder(active?.cmd).options, argv, active);
    const guesses = words.map((w) => [w, closest(w, known)] as const).filter(([, g]) => g !== undefined);
    const listed = words.map((w) => `'${flag(w)}'`).join(', ');
    const head = `Unknown option${words.length > 1 ? 's' : ''} ${listed} for '${where}'`;
    if (guesses.length === 0) return `${head} (${where} --help lists the options)`;
    if (words.length === 1) return `${head}; did you mean '${flag(guesses[0][1]!)}'?`;
    return `${head}; did you mean ${guesses.map(([w, g]) => `'${flag(g!)}' for '${flag(w)}'`).join(', ')}?`;
  }
  if (/^Not enough non-option arguments/.test(msg) && active) {
    const spec = [active.cmd.command].flat()[0] ?? active.name;
    return `'${where}' is missing an argument (usage: gapcam ${spec}; ${where} --help)`;
  }
  const missing = /^Missing required arguments?: (.+)$/.exec(msg);
  if (missing) {
    const names = missing[1].split(', ').map((n) => `'${flag(n)}'`);
    return `'${where}' needs option${names.length > 1 ? 's' : ''} ${names.join(', ')} (${where} --help)`;
  }
  const invalid = /^Invalid values:\s*Argument: ([\w-]+), Given: "([^"]*)", Choices: (.+)$/s.exec(msg);
  if (invalid) {
    const choices = [...invalid[3].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    const guess = closest(invalid[2], choices);
    return `${flag(invalid[1])}: expected one of ${choices.join(', ')}; got '${invalid[2]}'` + (guess ? `; did you mean '${guess}'?` : '');
  }
  if (/^Not enough arguments following: /.test(msg)) return `${flag(msg.replace(/^Not enough arguments following: /, ''))}: expected a value`;
  return `${oneLine(msg)} (${where} --help${msg.startsWith('name a command') ? ' lists them' : ''})`;
}

/** Resolves once everything written to `stream` so far has been handed to the OS (pipes are asynchronous in Node,
 *  and process.exit would drop what is still queued). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

/** True when this file is the program being run (node dist/src/cli.js, npx gapcam through its bin symlink, or
 *  node --import tsx src/cli.ts), false when it is imported (tests call main() directly). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(hideBin(process.argv)).then(async (code) => {
    await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
    process.exit(code);
  });
}
