import type { ArgumentsCamelCase, CommandModule } from 'yargs';
import type { EngineInfo } from '../engine.js';
import { defaultDataRoot, defaultCheckpointRoot } from '../paths.js';

/** Options every command accepts (declared once in cli.ts). */
export interface GlobalOptions {
  backend?: string;
  seed?: number;
  dataRoot?: string;
  out?: string;
  verbose?: boolean;
}

export type Args<T> = ArgumentsCamelCase<T & GlobalOptions>;

/** A command module; handlers parse, call one service and print a summary. */
export type GapcamCommand = CommandModule<GlobalOptions, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

// Command modules are imported for every gapcam call (even --help), so they import nothing heavy at load time:
// builders use static values (./choices.ts), and handlers `await import()` their service, which loads TensorFlow.js,
// sharp, h5wasm… only when the command really runs.

/** Starts the engine for a command and prints the one-line engine summary to stderr. */
export async function startCommandEngine(args: GlobalOptions): Promise<EngineInfo> {
  const { describeEngine, parseEngineRequest, startEngine } = await import('../engine.js');
  const info = await startEngine(parseEngineRequest(args.backend));
  process.stderr.write(describeEngine(info) + '\n');
  return info;
}

export function dataRootOf(args: GlobalOptions): string {
  return args.dataRoot ?? process.env.GAPCAM_DATA_ROOT ?? defaultDataRoot;
}

export function checkpointRootOf(args: GlobalOptions): string {
  return args.out ?? defaultCheckpointRoot;
}
