// A full JavaScript garbage collection on demand, for the moments when gapcam knows a lot of JS memory just died.
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | null | undefined;

/** Runs V8's full garbage collection now (a no-op where V8 refuses the flag). Why: tfjs keeps a tensor's initial
 *  values (a JS typed array) until the native engine has its own copy, then leaves them to the collector, which may
 *  not run for a long time. After a model is built or loaded that garbage is as large as the weights (~80 MB for
 *  VGG16-GAP) and would sit under the first batch's activations at the process's peak memory. */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
