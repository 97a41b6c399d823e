// Picks and starts the tfjs backend once per process: tfjs-node-gpu > tfjs-node > wasm > cpu.
// tf.setBackend() returns false (it does not throw) when a backend cannot start, after which tfjs quietly keeps
// running on `cpu`; every start here is therefore checked, and an engine asked for by name never falls back.
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { projectRoot } from './paths.js';
import { UserError } from './errors.js';

export const ENGINE_NAMES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
export type EngineRequest = EngineName | 'auto';

export interface EngineInfo {
  name: EngineName;
  tfjsVersion: string;
  /** TensorFlow runtime version for the native engines. */
  tensorflowVersion?: string;
  threads: number;
  /** Where the native binding was loaded from (npm package or the from-source build). */
  source?: string;
  /** Why each engine better than the one running is not in use. */
  notUsed: Partial<Record<EngineName, string>>;
  /** Set when this process joined a training cluster (src/distributed). */
  distributed?: { task: number; workers: number; protocol: 'grpc' };
  /** MiB of TensorFlow's start-up pages handed back to the system at start (see releaseLibraryPages). */
  releasedLibraryMiB?: number;
}

const require = createRequire(import.meta.url);
// TensorFlow's C++ logging (oneDNN and CPU-feature banners) would otherwise precede every command's output.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
// Two lines still reach stderr when the native engine loads, and they stay on purpose:
//   WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
//   I0000 … port.cc:153] oneDNN custom operations are on. …
// TensorFlow 2.21 logs them from a static initializer of libtensorflow (during dlopen of the binding, before its
// logging reads TF_CPP_MIN_LOG_LEVEL; absl has no environment switch), straight to file descriptor 2. What would hide
// them, and why it is not done:
// - TF_ENABLE_ONEDNN_OPTS=0: turns oneDNN off, i.e. slower convolutions; speed matters more than two lines.
// - Swapping fd 2 around the dlopen: Node has no dup2; closing fd 2 and re-opening /proc/self/fd/N races with
//   libuv's thread pool and breaks libuv's epoll registration of a piped stderr, and fails for sockets.
// - Re-running the CLI as a child with stderr piped through a line filter: the child's stderr is then a pipe, not
//   the terminal, so progress bars and \r-refreshed lines (which need a TTY's cursor control and column count)
//   would stop working or need a pseudo-terminal (a native package); the parent would also have to forward
//   signals and exit codes (Ctrl-C = 130) and leave no orphan behind if it is killed. Not robust enough for two
//   informational lines. Tests filter them (test/engine/run-cli.ts gapcamStderr).
/** The from-source build made by scripts/setup-engine.mjs when npm could not install tfjs-node. */
export const localTfjsNodeDir = path.join(projectRoot, '.engine', 'tfjs-node');

let current: EngineInfo | undefined;

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

function isInstalled(spec: string): boolean {
  try {
    require.resolve(spec);
    return true;
  } catch {
    return false;
  }
}

async function activate(name: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (err) {
    throw new Error(`backend '${name}' failed to initialise: ${firstLine(err)}`);
  }
  if (!ok || tf.getBackend() !== name) throw new Error(`tf.setBackend('${name}') returned false`);
  await tf.ready();
}

/** Hands TensorFlow's start-up pages back to the system. Loading libtensorflow runs its op and kernel
 *  registrations, which touch ~250 MB of its read-only code and data that the process never reads again; they stay
 *  resident until the kernel needs the memory. gapcam's engine build (scripts/setup-engine.mjs, patch 2) pages them
 *  out at once (MADV_PAGEOUT on clean file pages; what is used again is read back from the file), so every command
 *  starts ~250 MB lighter. Returns the MiB advised, or undefined where the binding lacks it, it is off
 *  (GAPCAM_RELEASE_LIBRARY_PAGES=0) or the system does not support it. */
function releaseLibraryPages(): number | undefined {
  if (process.env.GAPCAM_RELEASE_LIBRARY_PAGES === '0') return undefined;
  const binding = (tf.backend() as unknown as { binding?: { releaseLibraryPages?: () => number } }).binding;
  const advised = binding?.releaseLibraryPages?.();
  return advised !== undefined && advised >= 0 ? advised / 2 ** 20 : undefined;
}

type Starter = () => Promise<Omit<EngineInfo, 'notUsed' | 'tfjsVersion'>>;

function nativeVersion(): string | undefined {
  const backend = tf.backend() as any;
  return backend?.binding?.TF_Version as string | undefined;
}

const starters: Record<EngineName, Starter> = {
  'tensorflow-gpu': async () => {
    if (!isInstalled('@tensorflow/tfjs-node-gpu')) {
      throw new Error('@tensorflow/tfjs-node-gpu is not installed (its install needs to download libtensorflow with CUDA)');
    }
    require('@tensorflow/tfjs-node-gpu');
    await activate('tensorflow');
    const binding = (tf.backend() as any).binding;
    if (typeof binding?.isUsingGpuDevice === 'function' && !binding.isUsingGpuDevice()) {
      throw new Error('tfjs-node-gpu loaded but TensorFlow sees no GPU');
    }
    return { name: 'tensorflow-gpu', tensorflowVersion: nativeVersion(), threads: os.cpus().length, source: '@tensorflow/tfjs-node-gpu' };
  },
  tensorflow: async () => {
    // npm's own tfjs-node first (users who can download libtensorflow), then the from-source build; a package that
    // is installed but whose binding does not load (e.g. a failed download left it half-installed) falls through.
    const candidates: Array<[string, string]> = [];
    if (isInstalled('@tensorflow/tfjs-node')) candidates.push(['@tensorflow/tfjs-node', '@tensorflow/tfjs-node']);
    if (fs.existsSync(path.join(localTfjsNodeDir, 'package.json'))) {
      candidates.push([localTfjsNodeDir, '.engine/tfjs-node (built from source against tensorflow-cpu)']);
    }
    if (candidates.length === 0) {
      throw new Error('@tensorflow/tfjs-node is not installed and no from-source build exists (run `node scripts/setup-engine.mjs`)');
    }
    let source: string | undefined;
    const failures: string[] = [];
    for (const [spec, label] of candidates) {
      try {
        require(spec);
        source = label;
        break;
      } catch (err) {
        failures.push(`${label}: ${firstLine(err)}`);
      }
    }
    if (!source) throw new Error(failures.join('; '));
    await activate('tensorflow');
    // tfjs' own conv kernels go to oneDNN by name (src/perf/kernels.ts): tfjs-layers' fused conv + bias + ReLU then
    // runs as one primitive instead of three ops (VGG16-GAP model.predict: 8.45 vs 8.0 images/s, peak 686 vs 886 MiB),
    // and with TensorFlow's oneDNN rewrite off (TF_ENABLE_ONEDNN_OPTS=0) the convolutions keep oneDNN's speed.
    const { installOneDnnKernels } = await import('./perf/kernels.js');
    installOneDnnKernels();
    const threads = Number(process.env.TF_NUM_INTRAOP_THREADS) || os.cpus().length;
    return { name: 'tensorflow', tensorflowVersion: nativeVersion(), threads, source, releasedLibraryMiB: releaseLibraryPages() };
  },
  wasm: async () => {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const { registerWasmTrainingKernels } = await import('./engine/wasm-kernels.js');
    registerWasmTrainingKernels();
    await activate('wasm');
    void wasm;
    return { name: 'wasm', threads: 1, source: '@tensorflow/tfjs-backend-wasm (single thread in Node)' };
  },
  cpu: async () => {
    await activate('cpu');
    return { name: 'cpu', threads: 1, source: '@tensorflow/tfjs-backend-cpu (pure JavaScript)' };
  },
};

/** Starts the requested engine (once per process). `auto` takes the best that starts and records why each better
 *  one did not; a named engine that cannot start is a UserError. */
export async function startEngine(request: EngineRequest = 'auto'): Promise<EngineInfo> {
  if (current) {
    if (request !== 'auto' && request !== current.name) {
      throw new UserError(`engine: '${current.name}' is already running in this process; cannot switch to '${request}'`);
    }
    return current;
  }
  const order: EngineName[] = request === 'auto' ? [...ENGINE_NAMES] : [request];
  const notUsed: Partial<Record<EngineName, string>> = {};
  for (const name of order) {
    try {
      const started = await starters[name]();
      current = { ...started, tfjsVersion: tf.version_core, notUsed };
      return current;
    } catch (err) {
      notUsed[name] = firstLine(err);
      if (request !== 'auto') {
        throw new UserError(`--backend ${name}: cannot start: ${notUsed[name]}`);
      }
    }
  }
  throw new Error('no tfjs engine could start: ' + JSON.stringify(notUsed));
}

/** The running engine, or `request` (default auto) started now: library entry points call this, so that a program
 *  that never called startEngine() runs on native TensorFlow rather than on tfjs' silent pure-JS default. */
export async function ensureEngine(request: EngineRequest = 'auto'): Promise<EngineInfo> {
  return current ?? startEngine(request);
}

export function currentEngine(): EngineInfo | undefined {
  return current;
}

/** One line for the start of every command; `verbose` adds why each better engine is not used (long: it names
 *  missing packages and libraries, which `gapcam engine` lists line by line). */
export function describeEngine(info: EngineInfo, verbose = false): string {
  const tfv = info.tensorflowVersion ? `, TensorFlow ${info.tensorflowVersion}` : '';
  const skipped = Object.entries(info.notUsed).map(([n, why]) => `${n}: ${why}`);
  const dist = info.distributed ? `, distributed: worker ${info.distributed.task} of ${info.distributed.workers} (${info.distributed.protocol})` : '';
  return `engine ${info.name} (tfjs ${info.tfjsVersion}${tfv}, ${info.threads} thread${info.threads === 1 ? '' : 's'}${dist})` +
    (verbose && skipped.length ? ` — not used: ${skipped.join('; ')}` : '');
}

/** Parses --backend / GAPCAM_BACKEND. */
export function parseEngineRequest(value: string | undefined): EngineRequest {
  const v = value ?? process.env.GAPCAM_BACKEND ?? 'auto';
  if (v === 'auto' || (ENGINE_NAMES as readonly string[]).includes(v)) return v as EngineRequest;
  throw new UserError(`--backend: expected one of auto, ${ENGINE_NAMES.join(', ')}; got '${v}'`);
}
