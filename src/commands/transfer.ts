import { dataRootOf, startCommandEngine, withOutOption, type Args, type GapcamCommand, type OutOption } from './common.js';
import { defaultCheckpointRoot } from '../paths.js';
import { progressPrinter } from './features.js';

interface TransferArgs extends OutOption {
  experiment: string;
  force: boolean;
  source?: string[];
  only?: string[];
}

export const transferCommand: GapcamCommand = {
  command: 'transfer <experiment>',
  describe: 'GAP-feature transfer: features + linear SVM per (feature source, dataset), mean ± std over random splits (the CAM paper\'s Table 5)',
  builder: (y) =>
    withOutOption(y, 'output folder (default checkpoints/transfer/<experiment>); see below')
      .positional('experiment', { type: 'string', demandOption: true, describe: 'experiment file (recipes/transfer-*.json) or its name' })
      .option('force', { type: 'boolean', default: false, describe: 'extract features again even when cached' })
      .option('source', { type: 'string', array: true, describe: 'only these feature sources (by name)' })
      .option('only', { type: 'string', array: true, describe: 'only these datasets (by name)' })
      .example('$0 transfer recipes/transfer-demo.json', 'darknet-tiny and digits-loc features on wild2 (data present here)')
      .example('$0 transfer transfer-paper --only scene15', "one column of the paper's protocol")
      .example('$0 transfer demo --out runs/transfer-demo', 'write table.md, table.csv, results.json to runs/transfer-demo')
      .epilogue('--out is a folder: table.md, table.csv, results.json and the feature caches under features/ are written into it, each file replaced atomically on a rerun; nothing else there is touched.'),
  handler: async (argv) => {
    const args = argv as Args<TransferArgs>;
    (await import('../transfer/experiment.js')).loadExperiment(args.experiment); // a bad file fails before the engine starts
    const { runTransfer } = await import('../transfer/run.js');
    await startCommandEngine(args);
    const r = await runTransfer(args.experiment, {
      dataRoot: dataRootOf(args),
      out: args.out,
      checkpointRoot: defaultCheckpointRoot(),
      force: args.force,
      onlySources: args.source,
      onlyDatasets: args.only,
      log: (line) => process.stderr.write(line + '\n'),
      onProgress: progressPrinter('  features'),
    });
    process.stdout.write('\n' + r.markdown);
    console.log(`\nwrote ${r.out}/{table.md,table.csv,results.json}`);
  },
};
