// Routes tfjs' own convolution kernels on the native engine to TensorFlow's oneDNN kernels called by name (installed
// at every native engine start), so that every tfjs code path (tfjs-layers predict/apply, tf.grad, CAM, features)
// gets the fused conv + bias + ReLU, and keeps oneDNN speed when TensorFlow's automatic oneDNN rewrite is switched
// off with TF_ENABLE_ONEDNN_OPTS=0.
//
// Why switch it off: with the rewrite on, TensorFlow allocates tensors from a oneDNN BFC pool that never returns
// memory to the system, so a process's resident memory stays at its highest point plus fragmentation (VGG16-GAP
// training: ~1.65-1.8 GiB resident for ~0.68 GiB of live tensors). With it off, tensors come from malloc and large
// ones go back to the system when freed (with MALLOC_MMAP_THRESHOLD_ fixed: ~1.3 GiB). The oneDNN kernels are
// still there and are called directly (src/perf/native.ts); see tunedEngineEnv and bench/PERFORMANCE.md.
import * as tf from '@tensorflow/tfjs';
import * as k from './native.js';

let installed: string[] | undefined;
const originals = new Map<string, tf.KernelConfig>();

type KernelFunc = tf.KernelConfig['kernelFunc'];

function override(name: string, make: (original: KernelFunc) => KernelFunc): boolean {
  const original = tf.getKernel(name, 'tensorflow');
  if (!original) return false;
  originals.set(name, original);
  const kernelFunc = make(original.kernelFunc);
  tf.unregisterKernel(name, 'tensorflow');
  tf.registerKernel({ ...original, kernelFunc });
  return true;
}

/** Puts tfjs-node's own kernels back (tests). */
export function uninstallOneDnnKernels(): void {
  for (const [name, config] of originals) {
    tf.unregisterKernel(name, 'tensorflow');
    tf.registerKernel(config);
  }
  originals.clear();
  installed = undefined;
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: string | number;
  dataFormat?: string;
  dilations?: number | [number, number];
  dimRoundingMode?: string;
  activation?: string;
  inputShape?: number[];
  filterShape?: number[];
}

function plainSpec(a: ConvAttrs): k.Conv2DSpec | undefined {
  const dil = a.dilations ?? 1;
  const dOk = typeof dil === 'number' ? dil === 1 : dil[0] === 1 && dil[1] === 1;
  if (!dOk || (a.dataFormat && a.dataFormat !== 'NHWC' && a.dataFormat !== 'channelsLast') || a.dimRoundingMode) return undefined;
  if (a.pad !== 'same' && a.pad !== 'valid') return undefined;
  const s = typeof a.strides === 'number' ? [a.strides, a.strides] as [number, number] : a.strides;
  return { strides: s, pad: a.pad };
}

/**
 * Installs the overrides on the `tensorflow` backend (once; a no-op on other engines or when the oneDNN kernels
 * do not pass their probe). Cases the direct kernels do not cover (dilation, explicit padding, NCHW, PReLU…)
 * go to tfjs-node's own kernel. Returns the kernel names overridden.
 */
export function installOneDnnKernels(): string[] {
  if (installed) return installed;
  if (!k.nativeBackend() || !k.oneDnnConvAvailable()) return (installed = []);
  const done: string[] = [];
  const args = (a: unknown) => a as { inputs: Record<string, tf.Tensor>; attrs: ConvAttrs };
  if (override('Conv2D', (orig) => (a) => {
    const { inputs, attrs } = args(a);
    const spec = plainSpec(attrs);
    return spec ? k.conv2d(inputs.x as tf.Tensor4D, inputs.filter as tf.Tensor4D, spec) : orig(a);
  })) done.push('Conv2D');
  if (override('FusedConv2D', (orig) => (a) => {
    const { inputs, attrs } = args(a);
    const spec = plainSpec(attrs);
    const act = attrs.activation ?? 'linear';
    if (!spec || (act !== 'relu' && act !== 'linear') || inputs.preluActivationWeights) return orig(a);
    const bias = inputs.bias as tf.Tensor | undefined;
    if (bias && bias.rank !== 1) return orig(a);
    return k.convBiasAct(inputs.x as tf.Tensor4D, inputs.filter as tf.Tensor4D, bias as tf.Tensor1D | undefined, spec, act);
  })) done.push('FusedConv2D');
  if (override('Conv2DBackpropInput', (orig) => (a) => {
    const { inputs, attrs } = args(a);
    const spec = plainSpec(attrs);
    return spec && attrs.inputShape ? k.conv2dBackpropInput(inputs.dy as tf.Tensor4D, inputs.filter as tf.Tensor4D, attrs.inputShape, spec) : orig(a);
  })) done.push('Conv2DBackpropInput');
  if (override('Conv2DBackpropFilter', (orig) => (a) => {
    const { inputs, attrs } = args(a);
    const spec = plainSpec(attrs);
    return spec && attrs.filterShape ? k.conv2dBackpropFilter(inputs.x as tf.Tensor4D, inputs.dy as tf.Tensor4D, attrs.filterShape, spec) : orig(a);
  })) done.push('Conv2DBackpropFilter');
  return (installed = done);
}

/** The process environment gapcam's native engine runs best with (see the file header and bench/PERFORMANCE.md):
 *  TensorFlow's oneDNN rewrite off (its BFC pool keeps peak memory resident; installOneDnnKernels keeps the oneDNN
 *  speed), and a fixed malloc mmap threshold so that freed tensors of 4 MiB and more go back to the system. The
 *  malloc settings must be in the environment when the process starts (glibc reads them once), so a launcher sets
 *  them: `{ ...process.env, ...tunedEngineEnv() }` for a child process or a re-exec. */
export function tunedEngineEnv(): Record<string, string> {
  return { TF_ENABLE_ONEDNN_OPTS: '0', MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_ARENA_MAX: '2' };
}
