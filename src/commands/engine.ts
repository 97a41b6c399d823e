import type { Args, GapcamCommand } from './common.js';
import type { EngineInfo } from '../engine.js';
import type { GpuProbe } from '../engine/gpu-probe.js';

interface EngineArgs {
  json?: boolean;
}

/** The report printed by `gapcam engine` (one summary line, then one line per fact). */
export async function engineReport(info: EngineInfo, explicit: boolean, gpu: GpuProbe): Promise<string[]> {
  const { describeEngine, ENGINE_NAMES } = await import('../engine.js');
  const lines = [
    describeEngine(info),
    `  engine:      ${info.name}`,
    `  tfjs:        ${info.tfjsVersion}`,
    `  TensorFlow:  ${info.tensorflowVersion ?? '(not a native engine)'}`,
    `  threads:     ${info.threads}`,
    `  loaded from: ${info.source ?? '-'}`,
  ];
  for (const name of ENGINE_NAMES) {
    if (name === info.name) break;
    lines.push(`  not ${name}: ${info.notUsed[name] ?? (explicit ? 'not tried (explicit --backend)' : 'not tried')}`);
  }
  const { describeGpuProbe } = await import('../engine/gpu-probe.js');
  lines.push(...describeGpuProbe(gpu));
  return lines;
}

export const engineCommand: GapcamCommand = {
  command: 'engine',
  describe: 'Show which tfjs engine runs, its TensorFlow version and threads, why better engines are not used, and the GPU seen or the CUDA libraries missing',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', describe: 'print the engine facts as one JSON object' })
      .example('$0 engine', 'report the engine auto-selection')
      .example('$0 engine --backend wasm', 'check that the wasm fallback starts')
      .example('GAPCAM_BACKEND=cpu $0 engine --json', 'machine-readable report of a chosen engine'),
  handler: async (args: Args<EngineArgs>) => {
    const { parseEngineRequest, startEngine } = await import('../engine.js');
    const request = parseEngineRequest(args.backend);
    const info = await startEngine(request);
    // The GPU: seen, or the missing libraries by name, from TensorFlow's own load log (src/engine/gpu-probe.ts).
    const { probeGpu } = await import('../engine/gpu-probe.js');
    const gpu = probeGpu();
    if (args.json) {
      console.log(JSON.stringify({ ...info, gpu }));
      return;
    }
    for (const line of await engineReport(info, request !== 'auto', gpu)) console.log(line);
  },
};
