// The GPU engine stated honestly: what TensorFlow's start-up log says about the GPU (TensorFlow 2.9's wording, the
// libtensorflow tfjs-node-gpu 4.22 downloads) turned into one line naming the GPU or the missing libraries.
import { expect } from 'chai';
import { describeGpuProbe, gpuPackageInstalled, parseGpuLog, probeGpu, GPU_ENGINE_NEEDS } from '../../src/engine/gpu-probe.js';
import { describeEngine, type EngineInfo } from '../../src/engine.js';

// Lines as TensorFlow 2.9 prints them (dso_loader.cc / gpu_device.cc), from a CUDA 12 machine and a CUDA 11.2 one.
const CUDA12_LOG = `2024-05-02 10:11:12.345678: W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libcudart.so.11.0'; dlerror: libcudart.so.11.0: cannot open shared object file: No such file or directory
2024-05-02 10:11:12.400000: W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libcublas.so.11'; dlerror: libcublas.so.11: cannot open shared object file: No such file or directory
2024-05-02 10:11:12.500000: W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open shared object file: No such file or directory
2024-05-02 10:11:12.600000: W tensorflow/core/common_runtime/gpu/gpu_device.cc:1850] Cannot dlopen some GPU libraries. Please make sure the missing libraries mentioned above are installed properly if you would like to use GPU.`;
const CUDA11_LOG = `2024-05-02 10:11:13.000000: I tensorflow/core/common_runtime/gpu/gpu_device.cc:1532] Created device /job:localhost/replica:0/task:0/device:GPU:0 with 22302 MB memory:  -> device: 0, name: NVIDIA GeForce RTX 3090, pci bus id: 0000:01:00.0, compute capability: 8.6`;

describe('engine: the GPU probe', function () {
  this.timeout(180_000);

  it('names the libraries TensorFlow could not open', () => {
    expect(parseGpuLog(CUDA12_LOG)).to.deep.equal({ gpus: [], missingLibraries: ['libcudart.so.11.0', 'libcublas.so.11', 'libcudnn.so.8'] });
    const lines = describeGpuProbe({ installed: true, ...parseGpuLog(CUDA12_LOG) });
    expect(lines[0]).to.equal('  GPU:         none (missing libcudart.so.11.0, libcublas.so.11, libcudnn.so.8)');
    expect(lines[1]).to.include('CUDA 11.2 + cuDNN 8.1').and.include('libtensorflow 2.9.1').and.include('Untested');
  });

  it('names the GPU TensorFlow created a device for', () => {
    expect(parseGpuLog(CUDA11_LOG)).to.deep.equal({ gpus: ['NVIDIA GeForce RTX 3090'], missingLibraries: [] });
    expect(describeGpuProbe({ installed: true, ...parseGpuLog(CUDA11_LOG) })).to.deep.equal(['  GPU:         NVIDIA GeForce RTX 3090']);
  });

  it('a binding that does not load at all: the library in the loader error', () => {
    const err = 'Error: libcudart.so.11.0: cannot open shared object file: No such file or directory';
    expect(parseGpuLog(err).missingLibraries).to.deep.equal(['libcudart.so.11.0']);
  });

  it('on this machine: the probe agrees with what is installed', () => {
    const p = probeGpu();
    expect(p.installed).to.equal(gpuPackageInstalled());
    if (!p.installed) expect(describeGpuProbe(p)).to.deep.equal(['  GPU:         none (@tensorflow/tfjs-node-gpu is not installed)', `  GPU needs:   ${GPU_ENGINE_NEEDS}`]);
  });

  it('the engine line of every command is short; the reasons come with --verbose', () => {
    const info: EngineInfo = { name: 'tensorflow', tfjsVersion: '4.22.0', tensorflowVersion: '2.21.0', threads: 2, notUsed: { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu is not installed' } };
    expect(describeEngine(info)).to.equal('engine tensorflow (tfjs 4.22.0, TensorFlow 2.21.0, 2 threads)');
    expect(describeEngine(info, true)).to.equal('engine tensorflow (tfjs 4.22.0, TensorFlow 2.21.0, 2 threads) — not used: tensorflow-gpu: @tensorflow/tfjs-node-gpu is not installed');
  });
});
