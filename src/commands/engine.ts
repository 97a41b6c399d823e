import type { GapcamCommand } from './common.js';
import { describeEngine, parseEngineRequest, startEngine, ENGINE_NAMES } from '../engine.js';

export const engineCommand: GapcamCommand = {
  command: 'engine',
  describe: 'Show which tfjs engine runs, its TensorFlow version and threads, and why better engines are not used',
  builder: (y) => y.example('$0 engine', 'report the engine auto-selection').example('$0 engine --backend wasm', 'check the wasm fallback starts'),
  handler: async (args) => {
    const info = await startEngine(parseEngineRequest(args.backend));
    console.log(describeEngine(info));
    console.log(`  engine:      ${info.name}`);
    console.log(`  tfjs:        ${info.tfjsVersion}`);
    console.log(`  TensorFlow:  ${info.tensorflowVersion ?? '(not a native engine)'}`);
    console.log(`  threads:     ${info.threads}`);
    console.log(`  loaded from: ${info.source ?? '-'}`);
    for (const name of ENGINE_NAMES) {
      if (name === info.name) break;
      console.log(`  not ${name}: ${info.notUsed[name] ?? 'not tried (explicit --backend)'}`);
    }
  },
};
