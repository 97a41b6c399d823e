// Which cluster this process belongs to: TensorFlow's TF_CONFIG convention (set by Kubeflow's TFJob, Vertex AI and
// most launchers) or gapcam's --workers host:port,… --task-index i (the flags win). Plain data, no engine needed,
// so a bad cluster spec is one line before TensorFlow loads.
import { UserError } from '../errors.js';

export interface ClusterSpec {
  /** host:port of every worker, in task order; task 0 is the chief. */
  workers: string[];
  /** This process's task index. */
  task: number;
  /** Where the spec came from, for messages. */
  source: 'TF_CONFIG' | '--workers';
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

function checkWorkers(workers: unknown, where: string): string[] {
  if (!Array.isArray(workers) || workers.length === 0 || !workers.every((w) => typeof w === 'string')) {
    throw new UserError(`${where}: expected a list of host:port strings; got ${JSON.stringify(workers)}`);
  }
  for (const w of workers as string[]) {
    const m = HOST_PORT.exec(w);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw new UserError(`${where}: expected host:port; got '${w}'`);
  }
  const dup = (workers as string[]).find((w, i) => workers.indexOf(w) !== i);
  if (dup) throw new UserError(`${where}: '${dup}' is listed twice (each worker needs its own address)`);
  return workers as string[];
}

function checkTask(task: unknown, n: number, where: string): number {
  if (typeof task !== 'number' || !Number.isInteger(task) || task < 0 || task >= n) {
    throw new UserError(`${where}: expected a task index from 0 to ${n - 1} (${n} worker${n === 1 ? '' : 's'}); got ${JSON.stringify(task)}`);
  }
  return task;
}

/** The cluster from --workers/--task-index, else TF_CONFIG, else undefined (single process). */
export function resolveCluster(flags: { workers?: string; taskIndex?: number }, env: NodeJS.ProcessEnv = process.env): ClusterSpec | undefined {
  if (flags.workers !== undefined) {
    const workers = checkWorkers(String(flags.workers).split(',').map((s) => s.trim()).filter(Boolean), '--workers');
    if (flags.taskIndex === undefined) throw new UserError('--workers: also give --task-index (this process\'s position in the list, 0 = chief)');
    return { workers, task: checkTask(flags.taskIndex, workers.length, '--task-index'), source: '--workers' };
  }
  if (flags.taskIndex !== undefined) throw new UserError('--task-index: also give --workers host:port,… (or set TF_CONFIG)');
  const text = env.TF_CONFIG;
  if (text === undefined || text.trim() === '') return undefined;
  let config: { cluster?: Record<string, unknown>; task?: { type?: unknown; index?: unknown } };
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new UserError(`TF_CONFIG: expected JSON like {"cluster":{"worker":["host:port",…]},"task":{"type":"worker","index":0}}; ${(err as Error).message}`);
  }
  const jobs = Object.keys(config?.cluster ?? {});
  const others = jobs.filter((j) => j !== 'worker');
  if (others.length) {
    throw new UserError(`TF_CONFIG: gapcam trains with workers only (synchronous all-reduce, task 0 is the chief); the cluster also has ${others.map((j) => `'${j}'`).join(', ')}`);
  }
  const workers = checkWorkers(config?.cluster?.worker, 'TF_CONFIG cluster.worker');
  if (config?.task?.type !== 'worker') throw new UserError(`TF_CONFIG task.type: expected "worker"; got ${JSON.stringify(config?.task?.type)}`);
  return { workers, task: checkTask(config.task.index, workers.length, 'TF_CONFIG task.index'), source: 'TF_CONFIG' };
}

/** TensorFlow's name for task `i`'s devices. */
export function taskName(i: number): string {
  return `/job:worker/replica:0/task:${i}`;
}
