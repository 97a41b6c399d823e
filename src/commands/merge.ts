// gapcam merge: joins the parts of a sharded features / cam / evaluate run into the unsharded run's output.
import path from 'node:path';
import { withOutOption, type Args, type GapcamCommand, type OutOption } from './common.js';

interface MergeArgs extends OutOption {
  parts: string[];
}

export const mergeCommand: GapcamCommand = {
  command: 'merge <parts..>',
  describe: 'Join the parts of a sharded features / cam / evaluate run (--shard i/n) into the output of the unsharded run',
  builder: (y) =>
    withOutOption(y, 'output folder (default: the folder holding the parts)')
      .positional('parts', { type: 'string', array: true, demandOption: true, describe: 'part folders (shard-<i>-of-<n>), or the folder holding them' })
      .example('$0 merge runs/feat', 'runs/feat/shard-*-of-* → runs/feat/features.npy + index.csv, in dataset order')
      .example('$0 merge runs/eval --out runs/eval-merged', 'evaluation.json with metrics recomputed from the merged counts')
      .example('$0 merge a/shard-0-of-2 b/shard-1-of-2 --out merged', 'parts gathered from two machines'),
  handler: async (argv) => {
    const args = argv as Args<MergeArgs>;
    const { mergeParts } = await import('../shard/merge.js');
    const r = await mergeParts(args.parts, { out: args.out });
    const rel = path.relative(process.cwd(), r.out) || '.';
    process.stdout.write([`merged ${r.parts} ${r.kind} part${r.parts === 1 ? '' : 's'} (${r.images} images) into ${rel}`, ...r.lines.map((l) => (l ? `  ${l}` : ""))].join('\n') + '\n');
  },
};
