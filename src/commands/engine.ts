import type { Args, GapcamCommand } from './common.js';
import type { EngineInfo } from '../engine.js';

interface EngineArgs {
  json?: boolean;
}

/** The report printed by `gapcam engine` (one summary line, then one line per fact). */
export async function engineReport(info: EngineInfo, explicit: boolean): Promise<string[]> {
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
  return lines;
}

export const engineCommand: GapcamCommand = {
  command: 'engine',
  describe: 'Show which tfjs engine runs, its TensorFlow version and threads, and why better engines are not used',
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
    if (args.json) {
      console.log(JSON.stringify(info));
      return;
    }
    for (const line of await engineReport(info, request !== 'auto')) console.log(line);
  },
};
