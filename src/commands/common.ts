import type { ArgumentsCamelCase, CommandModule } from 'yargs';
import type { EngineInfo } from '../engine.js';
import fs from 'node:fs';
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

/** Before the engine starts: throws the model loader's own one-line UserError when `ref` names no model (no folder,
 *  checkpoint run, run name, URL, .h5 file or backbone), so a typo fails at once without loading TensorFlow. */
export async function checkModelRef(ref: string, checkpointRoot?: string): Promise<void> {
  const [io, { isUrl }, { isBackboneName }] = await Promise.all([import('../models/refs.js'), import('../models/layers-io.js'), import('../models/registry.js')]);
  if (isUrl(ref) || isBackboneName(ref) || (/\.(h5|hdf5)$/i.test(ref) && fs.existsSync(ref))) return;
  if (io.resolveModelFolder(ref, checkpointRoot)) return;
  // None of loadModelRef's cases applies, so it builds nothing and throws its message naming what was tried.
  await io.loadModelRef(ref, { checkpointRoot });
}
