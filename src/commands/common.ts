import type { ArgumentsCamelCase, CommandModule } from 'yargs';
import { describeEngine, parseEngineRequest, startEngine, type EngineInfo } from '../engine.js';
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

/** Starts the engine for a command and prints the one-line engine summary to stderr. */
export async function startCommandEngine(args: GlobalOptions): Promise<EngineInfo> {
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
