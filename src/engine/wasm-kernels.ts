/** Placeholder replaced by the wasm training kernels (Conv2DBackpropFilter / Conv2DBackpropInput). */
export function registerWasmTrainingKernels(): void {}
