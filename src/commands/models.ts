import type { Args, GapcamCommand } from './common.js';
import { startCommandEngine } from './common.js';

export const modelsCommand: GapcamCommand = {
  command: 'models',
  describe: 'List the registered backbones: parameters, default cut layer, CAM resolution at 224, preprocessing, weight source',
  builder: (y) =>
    y.option('json', { type: 'boolean', default: false, describe: 'print the listing as JSON' })
      .example('$0 models', 'the backbones a recipe can name, and the Keras families recognised in model files')
      .example('$0 model summary vgg16 --no-include-top', 'then look at one in detail'),
  handler: async (argv) => {
    const args = argv as Args<{ json: boolean }>;
    const { listBackbones, formatBackboneListing } = await import('../models/listing.js');
    await startCommandEngine(args);
    const rows = await listBackbones();
    process.stdout.write(args.json ? JSON.stringify(rows, null, 2) + '\n' : formatBackboneListing(rows));
  },
};
