import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import type { EngineInfo } from '../engine.js';
import { describeShard, resolveShard, type ShardArgs, type ShardSpec } from '../shard/spec.js';
import fs from 'node:fs';
import { defaultDataRoot, defaultCheckpointRoot } from '../paths.js';
import { UserError } from '../errors.js';
import type { ClusterSpec } from '../distributed/cluster.js';

/** Options every command accepts (declared once in cli.ts). */
export interface GlobalOptions {
  backend?: string;
  seed?: number;
  dataRoot?: string;
  verbose?: boolean;
}

/** The output folder of a command that writes one. */
export interface OutOption {
  out?: string;
}

/** `--out`, declared only by the commands that write an output folder (any other refuses it as an unknown option),
 *  with what that command writes there. */
export function withOutOption<T>(y: Argv<T>, describe: string, demand = false): Argv<T & OutOption> {
  return y.option('out', { type: 'string', requiresArg: true, describe, ...(demand ? { demandOption: true } : {}) }) as Argv<T & OutOption>;
}

export type Args<T> = ArgumentsCamelCase<T & GlobalOptions>;

/** A command module; handlers parse, call one service and print a summary. */
export type GapcamCommand = CommandModule<GlobalOptions, any>;

// Command modules are imported for every gapcam call (even --help), so they import nothing heavy at load time:
// builders use static values (./choices.ts), and handlers `await import()` their service, which loads TensorFlow.js,
// sharp, h5wasm… only when the command really runs.

/** Starts the engine for a command and prints the one-line engine summary to stderr (naming the shard or the
 *  training cluster, if any). */
export async function startCommandEngine(args: GlobalOptions, shard?: ShardSpec, cluster?: ClusterSpec): Promise<EngineInfo> {
  const { describeEngine, parseEngineRequest, startEngine } = await import('../engine.js');
  const info = await startEngine(parseEngineRequest(args.backend));
  // A worker of a training cluster joins it now, before any tensor exists (src/distributed/collective.ts).
  if (cluster) await (await import('../distributed/collective.js')).joinCluster(cluster);
  process.stderr.write(describeEngine(info, args.verbose) + (shard ? ` — ${describeShard(shard)}` : '') + '\n');
  return info;
}

/** --shard and --shard-count, for the commands that run over a dataset in shards (features, cam, evaluate). */
export function withShardOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('shard', { type: 'string', requiresArg: true, describe: "i/n: run only shard i (0-based) of n and write its part to <out>/shard-i-of-n/ ('gapcam merge' joins them); 'off' ignores the scheduler's env. Default: GAPCAM_SHARD, a Kubernetes Indexed Job's JOB_COMPLETION_INDEX or a Slurm array's SLURM_ARRAY_TASK_ID" })
    .option('shard-count', { type: 'number', requiresArg: true, describe: 'number of shards when the scheduler gives only the index (JOB_COMPLETION_INDEX); env GAPCAM_SHARD_COUNT' }) as Argv<T>;
}

/** The shard this process runs (flag first, then the scheduler's environment), or undefined. */
export function shardOf(args: ShardArgs): ShardSpec | undefined {
  return resolveShard(args, process.env);
}

export function dataRootOf(args: GlobalOptions): string {
  return args.dataRoot ?? process.env.GAPCAM_DATA_ROOT ?? defaultDataRoot();
}

/** Where train and demo put run folders: `--checkpoints` (as `model` names it), else checkpoints/. (`--out`, an
 *  output folder elsewhere, is not an option of these two: cli.ts points its users to --checkpoints.) */
export function checkpointRootOf(args: GlobalOptions & { checkpoints?: string }): string {
  return args.checkpoints ?? defaultCheckpointRoot();
}

/** Before the engine starts: throws the model loader's own one-line UserError when `ref` names no model (no folder,
 *  checkpoint run, run name, URL, .h5 file or backbone), so a typo fails at once without loading TensorFlow. */
export async function checkModelRef(ref: string, checkpointRoot?: string): Promise<void> {
  const [io, { isUrl }, { isBackboneName }] = await Promise.all([import('../models/refs.js'), import('../models/layers-io.js'), import('../models/registry.js')]);
  if (isUrl(ref) || isBackboneName(ref) || (/\.(h5|hdf5|keras)$/i.test(ref) && fs.existsSync(ref))) return;
  if (io.resolveModelFolder(ref, checkpointRoot)) return;
  // None of loadModelRef's cases applies, so it builds nothing and throws its message naming what was tried.
  await io.loadModelRef(ref, { checkpointRoot });
}

/** `--input-size 224` or `224x160` (height × width) → [h, w]. */
export function parseInputSize(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)(?:[x×,](\d+))?$/.exec(String(text).trim());
  if (!m) throw new UserError(`--input-size: expected a size like 224 or 224x160 (height x width); got '${text}'`);
  const h = Number(m[1]);
  const w = Number(m[2] ?? m[1]);
  if (h < 1 || w < 1) throw new UserError(`--input-size: sizes must be positive; got '${text}'`);
  return [h, w];
}
