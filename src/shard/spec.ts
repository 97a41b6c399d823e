// Which shard of a sharded run this process is: from --shard i/n, or from the environment a cluster scheduler sets
// (the flag wins). Parsed here once, typed, for every command that shards (features, cam, evaluate).
//
//   --shard i/n                     0-based index i of n shards (--shard off: not sharded, whatever the env says)
//   GAPCAM_SHARD=i/n                the same, for job templates that set environment variables only
//   JOB_COMPLETION_INDEX            Kubernetes Indexed Job; the count from --shard-count or GAPCAM_SHARD_COUNT
//                                   (a Job's pods are not told `completions`)
//   SLURM_ARRAY_TASK_ID             Slurm job array: index = ID − SLURM_ARRAY_TASK_MIN, count = SLURM_ARRAY_TASK_COUNT
//                                   (or MAX − MIN + 1); --shard-count / GAPCAM_SHARD_COUNT may give the count instead
//
// The partition is contiguous ranges of the dataset-order list (the selected split, after --limit): shard i of n
// takes positions [⌊i·N/n⌋, ⌊(i+1)·N/n⌋). Dataset order is fixed by the adapters (sorted, never file-system order),
// so every machine computes the same ranges from N, i and n alone, and the merge is a concatenation in shard order.
import { UserError } from '../errors.js';

/** Where the shard came from (named on the engine line, so a scheduler's index picked up silently is visible). */
export type ShardSource = '--shard' | 'GAPCAM_SHARD' | 'JOB_COMPLETION_INDEX' | 'SLURM_ARRAY_TASK_ID';

export interface ShardSpec {
  /** 0-based. */
  index: number;
  count: number;
  source: ShardSource;
}

export interface ShardArgs {
  /** `i/n` or `off`. */
  shard?: string;
  shardCount?: number;
}

type Env = Record<string, string | undefined>;

function integer(text: string | undefined, what: string, min: number): number {
  const v = text === undefined ? NaN : Number(text.trim());
  if (!Number.isInteger(v) || v < min || !/^\s*\d+\s*$/.test(text ?? '')) throw new UserError(`${what}: expected an integer ≥ ${min}, found '${text ?? ''}'`);
  return v;
}

function checked(index: number, count: number, source: ShardSource, what: string): ShardSpec {
  if (index >= count) throw new UserError(`${what}: shard index ${index} is out of range for ${count} shard${count === 1 ? '' : 's'} (indices are 0-based: 0..${count - 1})`);
  return { index, count, source };
}

/** Parses `i/n` (0-based i). */
export function parseShardText(text: string, what: string, source: ShardSource): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new UserError(`${what}: expected i/n (0-based shard index i of n shards, e.g. 0/4), found '${text}'`);
  return checked(Number(m[1]), integer(m[2], `${what} (shard count)`, 1), source, what);
}

/** The count given by --shard-count or GAPCAM_SHARD_COUNT (flag first). */
function givenCount(args: ShardArgs, env: Env): { count: number; what: string } | undefined {
  if (args.shardCount !== undefined) {
    if (!Number.isInteger(args.shardCount) || args.shardCount < 1) throw new UserError(`--shard-count: expected an integer ≥ 1, found ${args.shardCount}`);
    return { count: args.shardCount, what: '--shard-count' };
  }
  if (env.GAPCAM_SHARD_COUNT !== undefined && env.GAPCAM_SHARD_COUNT !== '') {
    return { count: integer(env.GAPCAM_SHARD_COUNT, 'GAPCAM_SHARD_COUNT', 1), what: 'GAPCAM_SHARD_COUNT' };
  }
  return undefined;
}

/** This process's shard, or undefined when the run is not sharded. */
export function resolveShard(args: ShardArgs, env: Env = process.env): ShardSpec | undefined {
  if (args.shard !== undefined) {
    if (args.shard.trim().toLowerCase() === 'off') return undefined;
    if (args.shardCount !== undefined) throw new UserError(`--shard-count: not with --shard ${args.shard} (it already names the count)`);
    return parseShardText(args.shard, '--shard', '--shard');
  }
  if (env.GAPCAM_SHARD) return parseShardText(env.GAPCAM_SHARD, 'GAPCAM_SHARD', 'GAPCAM_SHARD');
  const count = givenCount(args, env);
  if (env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== '') {
    const index = integer(env.JOB_COMPLETION_INDEX, 'JOB_COMPLETION_INDEX', 0);
    if (!count) {
      throw new UserError(`JOB_COMPLETION_INDEX=${index} (a Kubernetes Indexed Job) gives the shard index but not the count: set GAPCAM_SHARD_COUNT to the Job's completions, or pass --shard-count (or --shard off)`);
    }
    return checked(index, count.count, 'JOB_COMPLETION_INDEX', `JOB_COMPLETION_INDEX with ${count.what}`);
  }
  if (env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_ID !== '') {
    const id = integer(env.SLURM_ARRAY_TASK_ID, 'SLURM_ARRAY_TASK_ID', 0);
    const min = env.SLURM_ARRAY_TASK_MIN ? integer(env.SLURM_ARRAY_TASK_MIN, 'SLURM_ARRAY_TASK_MIN', 0) : 0;
    const max = env.SLURM_ARRAY_TASK_MAX ? integer(env.SLURM_ARRAY_TASK_MAX, 'SLURM_ARRAY_TASK_MAX', 0) : undefined;
    const slurmCount = env.SLURM_ARRAY_TASK_COUNT ? integer(env.SLURM_ARRAY_TASK_COUNT, 'SLURM_ARRAY_TASK_COUNT', 1) : undefined;
    // An array with a step or a list (--array=0-10:2, --array=1,5,9) has ids that are not 0..n−1 after MIN.
    if (max !== undefined && slurmCount !== undefined && max - min + 1 !== slurmCount) {
      throw new UserError(`Slurm array ${min}-${max} has ${slurmCount} tasks (a step or a list): shard indices would have gaps; use a plain range (--array=0-${slurmCount - 1}) or pass --shard i/n`);
    }
    const n = count?.count ?? slurmCount ?? (max !== undefined ? max - min + 1 : undefined);
    if (n === undefined) throw new UserError(`SLURM_ARRAY_TASK_ID=${id} without SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX: set GAPCAM_SHARD_COUNT or pass --shard-count`);
    if (id < min) throw new UserError(`SLURM_ARRAY_TASK_ID=${id} is below SLURM_ARRAY_TASK_MIN=${min}`);
    return checked(id - min, n, 'SLURM_ARRAY_TASK_ID', `SLURM_ARRAY_TASK_ID=${id}${min ? ` (MIN ${min})` : ''}`);
  }
  if (count) throw new UserError(`${count.what}=${count.count} without a shard index: pass --shard i/n, or run under a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or a Slurm array (SLURM_ARRAY_TASK_ID)`);
  return undefined;
}

/** "shard 1 of 4 (from SLURM_ARRAY_TASK_ID)": for the engine line. */
export function describeShard(spec: ShardSpec): string {
  return `shard ${spec.index} of ${spec.count} (0-based, from ${spec.source})`;
}

/** The dataset-order positions [start, end) of shard `index` of `count` over `total` items. */
export function shardRange(total: number, spec: Pick<ShardSpec, 'index' | 'count'>): { start: number; end: number } {
  return { start: Math.floor((spec.index * total) / spec.count), end: Math.floor(((spec.index + 1) * total) / spec.count) };
}

/** The items of a shard (all of them when not sharded). */
export function shardItems<T>(items: readonly T[], spec: ShardSpec | undefined): T[] {
  if (!spec) return items.slice();
  const { start, end } = shardRange(items.length, spec);
  return items.slice(start, end);
}

/** Folder name of a shard's part: shard-03-of-12 (zero-padded so that names sort in shard order). */
export function partFolderName(spec: Pick<ShardSpec, 'index' | 'count'>): string {
  const width = String(spec.count - 1).length;
  return `shard-${String(spec.index).padStart(width, '0')}-of-${spec.count}`;
}

export const PART_FOLDER_PATTERN = /^shard-(\d+)-of-(\d+)$/;
