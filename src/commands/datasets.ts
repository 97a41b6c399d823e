// gapcam datasets [list|prepare|check <name>]: thin wrappers over src/data.
import path from 'node:path';
import type { Argv } from 'yargs';
import { dataRootOf, type GapcamCommand, type GlobalOptions } from './common.js';

function counts(c: Partial<Record<string, number>> | undefined): string {
  if (!c) return '';
  return ['train', 'val', 'test'].filter((k) => c[k] !== undefined).map((k) => `${k} ${c[k]}`).join(' / ');
}

async function listHandler(args: GlobalOptions): Promise<void> {
  const { listDatasets, resolveDataRoot } = await import('../data/datasets.js');
  const root = resolveDataRoot(dataRootOf(args));
  const list = await listDatasets(root);
  console.log(`datasets under ${root}:`);
  const w = Math.max(...list.map((d) => d.name.length));
  for (const d of list) {
    const state = d.error ? `error: ${d.error}` : d.present ? `present  ${counts(d.counts)}${d.classes ? `  (${d.classes} classes)` : ''}` : 'missing';
    console.log(`  ${d.name.padEnd(w)}  ${state}`);
    console.log(`  ${''.padEnd(w)}  ${d.describe}`);
    console.log(`  ${''.padEnd(w)}  ${d.location}`);
  }
  if (!list.find((d) => d.name === 'digits-loc')?.present) console.log(`build the embedded dataset with: gapcam datasets prepare`);
}

export const datasetsCommand: GapcamCommand = {
  command: 'datasets [action] [name]',
  describe: 'List the known datasets with image counts per split, build the embedded one (prepare), or validate one (check)',
  builder: (y: Argv<GlobalOptions>) =>
    y
      .positional('action', { choices: ['list', 'prepare', 'check'] as const, default: 'list', describe: 'what to do' })
      .positional('name', { type: 'string', describe: 'dataset for check: digits-loc, cub200, wild2, a folder or .csv path, or a folder under --data-root' })
      .option('force', { type: 'boolean', default: false, describe: 'prepare: rebuild even when present' })
      .option('max-problems', { type: 'number', default: 20, describe: 'check: problems printed in full' })
      .example('$0 datasets', 'list the datasets and their image counts per split')
      .example('$0 datasets prepare', 'build the embedded digits-loc dataset under datasets/')
      .example('$0 datasets check wild2 --data-root ../shared/datasets', 'decode every image and validate every box')
      .example('$0 datasets check path/to/list.csv', 'validate a CSV manifest'),
  handler: async (args) => {
    const action = (args.action as string) ?? 'list';
    const global = args as GlobalOptions;
    const [{ loadDataset, resolveDataRoot }, { buildEmbeddedDataset, embeddedDatasetPresent }, { checkDataset }] = await Promise.all([
      import('../data/datasets.js'), import('../data/embedded.js'), import('../data/check.js'),
    ]);
    const dataRoot = resolveDataRoot(dataRootOf(global));
    if (action === 'list') return listHandler(global);
    if (action === 'prepare') {
      if (embeddedDatasetPresent(dataRoot) && !args.force) {
        console.log(`digits-loc is present in ${path.join(dataRoot, 'digits-loc')} (use --force to rebuild)`);
        return;
      }
      const r = await buildEmbeddedDataset(dataRoot, undefined, { force: !!args.force });
      console.log(`built digits-loc: ${r.images} images in ${r.dir} (${r.seconds.toFixed(1)} s)`);
      return;
    }
    const name = (args.name as string | undefined) ?? 'digits-loc';
    const ds = await loadDataset(name, { dataRoot, skipBadImages: true, minClasses: 1 });
    const interactive = process.stderr.isTTY;
    const report = await checkDataset(ds, {
      onProgress: interactive ? (d, n) => { if (d % 50 === 0 || d === n) process.stderr.write(`\rchecking ${d}/${n}`); } : undefined,
    });
    if (interactive) process.stderr.write('\n');
    console.log(`${report.name} (${report.root}): ${report.images} images, ${report.classes} classes, ${report.boxes} boxes, ${counts(report.counts)}`);
    console.log(`decoded ${report.decoded}/${report.images} images in ${report.seconds.toFixed(1)} s; ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}`);
    const max = Number(args.maxProblems ?? 20);
    for (const p of report.problems.slice(0, max)) console.log(`  ${p.file}: ${p.problem}`);
    if (report.problems.length > max) console.log(`  … and ${report.problems.length - max} more`);
    if (report.problems.length > 0) process.exitCode = 1;
  },
};
