// What the GPU engine needs, and what this machine has. @tensorflow/tfjs-node-gpu 4.22 downloads libtensorflow 2.9.1
// built against CUDA 11.2 and cuDNN 8.1; TensorFlow opens the CUDA libraries itself when it starts, and when one is
// missing it logs "Could not load dynamic library 'libcudart.so.11.0'" and goes on without a GPU (on a CUDA 12
// machine this is what happens: tfjs issues #8362, #8505, #8187). gapcam hides TensorFlow's log (TF_CPP_MIN_LOG_LEVEL=2)
// and the log goes straight to file descriptor 2, so the probe loads the GPU binding in a child process with the log
// on and reads it: the GPUs TensorFlow created devices for, or the libraries it could not open, by name.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

export const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';
/** One line: what the GPU engine needs. Untested in this project's CI (no GPU there). */
export const GPU_ENGINE_NEEDS = `${GPU_PACKAGE} 4.22 runs libtensorflow 2.9.1 for CUDA 11.2 + cuDNN 8.1 (libcudart.so.11.0, ` +
  'libcublas.so.11, libcudnn.so.8 on the library path); CUDA 12 alone is not enough. Untested in gapcam\'s CI (no GPU there)';

export interface GpuProbe {
  installed: boolean;
  /** GPU names TensorFlow created devices for. */
  gpus: string[];
  /** Libraries TensorFlow (or the binding's loader) could not open. */
  missingLibraries: string[];
  /** Why the binding did not load at all, when it did not. */
  loadError?: string;
}

/** The GPUs and the missing libraries named in TensorFlow's start-up log (TF 2.9 wording) or a dlopen error. */
export function parseGpuLog(text: string): { gpus: string[]; missingLibraries: string[] } {
  const gpus = new Set<string>();
  const missing = new Set<string>();
  for (const m of text.matchAll(/Created device \/job:[^\n]*?device:GPU:\d+[^\n]*?name: ([^,\n]+)/g)) gpus.add(m[1].trim());
  for (const m of text.matchAll(/Could not load dynamic library '([^']+)'/g)) missing.add(m[1]);
  for (const m of text.matchAll(/(lib[\w.+-]+\.so[\w.]*): cannot open shared object file/g)) missing.add(m[1]);
  return { gpus: [...gpus], missingLibraries: [...missing] };
}

export function gpuPackageInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve(GPU_PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** Loads the GPU binding in a child process with TensorFlow's log on, and reads what it says. */
export function probeGpu(timeoutMs = 120_000): GpuProbe {
  if (!gpuPackageInstalled()) return { installed: false, gpus: [], missingLibraries: [] };
  const script = `const b = require(${JSON.stringify(GPU_PACKAGE)}); const be = b.backend ? b.backend() : undefined;
    console.log('gpu-in-use=' + !!(be && be.binding && be.binding.isUsingGpuDevice && be.binding.isUsingGpuDevice()));`;
  const r = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0' },
  });
  const parsed = parseGpuLog(`${r.stdout}\n${r.stderr}`);
  const loaded = /gpu-in-use=/.test(r.stdout);
  const lastError = r.stderr.split('\n').find((l) => /Error:/.test(l))?.trim();
  return { installed: true, ...parsed, ...(loaded ? {} : { loadError: lastError ?? r.error?.message ?? `exit code ${r.status}` }) };
}

/** Lines for `gapcam engine`: the GPU seen, or what is missing, and what the engine needs. */
export function describeGpuProbe(p: GpuProbe): string[] {
  if (!p.installed) return [`  GPU:         none (${GPU_PACKAGE} is not installed)`, `  GPU needs:   ${GPU_ENGINE_NEEDS}`];
  if (p.gpus.length) return [`  GPU:         ${p.gpus.join('; ')}`];
  const why = p.missingLibraries.length ? `missing ${p.missingLibraries.join(', ')}` : p.loadError ? `the binding did not load: ${p.loadError}` : 'TensorFlow created no GPU device';
  return [`  GPU:         none (${why})`, `  GPU needs:   ${GPU_ENGINE_NEEDS}`];
}
