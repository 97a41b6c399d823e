// A full JavaScript garbage collection on demand, for the moments when gapcam knows a lot of JS memory just died.
// No static `node:` imports: the CAM code that uses src/perf is also bundled for the browser (src/web), where
// these helpers do nothing.

/** A Node built-in module, or undefined outside Node (the browser page). */
export function nodeBuiltin<T>(name: string): T | undefined {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return p?.getBuiltinModule?.(name) as T | undefined;
}

let gc: (() => void) | null | undefined;

/** Runs V8's full garbage collection now (a no-op where V8 refuses the flag, or outside Node). Why: tfjs keeps a
 *  tensor's initial values (a JS typed array) until the native engine has its own copy, then leaves them to the
 *  collector, which may not run for a long time. After a model is built or loaded that garbage is as large as the
 *  weights (~80 MB for VGG16-GAP) and would sit under the first batch's activations at the process's peak memory. */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      const v8 = nodeBuiltin<typeof import('node:v8')>('node:v8');
      const vm = nodeBuiltin<typeof import('node:vm')>('node:vm');
      if (v8 && vm) {
        v8.setFlagsFromString('--expose-gc');
        gc = vm.runInNewContext('gc') as () => void;
      } else {
        gc = null;
      }
    } catch {
      gc = null;
    }
  }
  gc?.();
}
