// The transfer table: one row per feature source, one column per dataset, mean ± std over splits (the shape of the
// CAM paper's Table 5), as Markdown (with the protocol and what is missing) and CSV.
import path from 'node:path';
import type { TransferDataset } from './experiment.js';
import type { CellResult, TransferResult } from './types.js';
import { workRoot } from '../paths.js';
import { csvField } from '../util/csv.js';

export function protocolText(d: TransferDataset, defaultSplits: number): string {
  if (d.protocol === 'dataset') return "the dataset's own train/test split";
  const splits = d.splits ?? defaultSplits;
  const test = d.testPerClass ? `${d.testPerClass}` : 'the rest';
  return `${d.trainPerClass} train / ${test} test per class, ${splits} random split${splits > 1 ? 's' : ''}${d.poolPerClass ? ` (from a seeded pool of ${d.poolPerClass} per class)` : ''}`;
}

function cellText(c: CellResult | undefined): string {
  if (!c) return '';
  if (c.status === 'ok') return `${(100 * c.mean!).toFixed(1)} ± ${(100 * c.std!).toFixed(1)}`;
  if (c.status === 'missing-dataset') return 'missing data';
  if (c.status === 'missing-source') return 'missing model';
  return 'failed';
}


function rel(p: string): string {
  const r = path.relative(workRoot(), p);
  return r && !r.startsWith('..' + path.sep + '..') ? r : p;
}

export function renderMarkdown(r: TransferResult): string {
  const cellOf = (s: string, d: string) => r.cells.find((c) => c.source === s && c.dataset === d);
  const metric = r.metric === 'accuracy' ? 'accuracy' : 'mean per-class accuracy';
  const lines = [`# Transfer: ${r.experiment}`, ''];
  if (r.description) lines.push(r.description, '');
  lines.push(
    `Linear SVM on the features (${r.svm.solver}; features scaled '${r.svm.scale}'; C chosen per split by ${r.svm.folds}-fold cross-validation on the training images over ${r.svm.cGrid.join(', ')}). ` +
      `Cells: test ${metric} in %, mean ± sample std over the splits (seed ${JSON.stringify(r.seed)}).`,
    '',
  );
  const head = ['Features', ...r.datasets.map((d) => d.name)];
  lines.push(`| ${head.join(' | ')} |`, `|${['---', ...r.datasets.map(() => '---:')].join('|')}|`);
  for (const s of r.sources) {
    const dim = s.dimension ? ` (${s.dimension}-D)` : '';
    lines.push(`| ${[`${s.name}${dim}`, ...r.datasets.map((d) => cellText(cellOf(s.name, d.name)))].join(' | ')} |`);
  }
  lines.push('', '| Dataset | Protocol | Images | Classes |', '|---|---|---:|---:|');
  for (const d of r.datasets) lines.push(`| ${d.name} | ${d.protocol} | ${d.images ?? '—'} | ${d.classes ?? '—'} |`);
  const missingData = r.datasets.filter((d) => !d.present);
  if (missingData.length) {
    lines.push('', '**Missing datasets** (their columns are empty until the data is in place):', '');
    for (const d of missingData) lines.push(`- **${d.name}**: ${d.message}${d.where ? `\n  Where to put it: ${d.where}` : ''}`);
  }
  const missingModels = r.sources.filter((s) => !s.present);
  if (missingModels.length) {
    lines.push('', '**Missing feature sources**:', '');
    for (const s of missingModels) lines.push(`- **${s.name}**: ${s.message}${s.hint ? `\n  To make it: ${s.hint}` : ''}`);
  }
  const failed = r.cells.filter((c) => c.status === 'failed');
  if (failed.length) {
    lines.push('', '**Failed cells**:', '');
    for (const c of failed) lines.push(`- ${c.source} × ${c.dataset}: ${c.message}`);
  }
  const ok = r.cells.filter((c) => c.status === 'ok');
  if (ok.length) {
    lines.push('', '| Features × dataset | Feature images | Extraction | SVM (all splits) | Chosen C per split | Accuracy % | Mean per-class % |', '|---|---:|---:|---:|---|---:|---:|');
    for (const c of ok) {
      const f = c.features!;
      const ext = f.reused ? `cached` : `${f.seconds?.toFixed(1)} s (${f.imagesPerSecond?.toFixed(1)} img/s)`;
      const skipped = f.skipped ? ` (${f.skipped} unreadable left out)` : '';
      lines.push(
        `| ${c.source} × ${c.dataset} | ${f.count}${skipped} | ${ext} | ${c.svmSeconds!.toFixed(2)} s | ${c.splits!.map((s) => s.C).join(', ')} | ` +
          `${(100 * c.accuracy!.mean).toFixed(2)} ± ${(100 * c.accuracy!.std).toFixed(2)} | ${(100 * c.meanPerClass!.mean).toFixed(2)} ± ${(100 * c.meanPerClass!.std).toFixed(2)} |`,
      );
    }
    const short = ok.filter((c) => c.shortClasses?.length);
    for (const c of short) lines.push('', `Note: in ${c.dataset}, classes with fewer images than the protocol asks: ${c.shortClasses!.join(', ')} (they keep at least one test image).`);
  }
  lines.push('', `Features are cached under \`${rel(path.join(r.out, 'features'))}\`; every number is in \`${rel(path.join(r.out, 'results.json'))}\`. Total ${r.seconds.toFixed(1)} s.`);
  return lines.join('\n') + '\n';
}

/** One row per source; per dataset three columns: mean and std (in %, of the experiment's metric) and status. */
export function renderCsv(r: TransferResult): string {
  const head = ['source', 'dimension', ...r.datasets.flatMap((d) => [`${d.name} mean`, `${d.name} std`, `${d.name} status`])];
  const rows = r.sources.map((s) => [
    s.name,
    s.dimension ?? '',
    ...r.datasets.flatMap((d) => {
      const c = r.cells.find((x) => x.source === s.name && x.dataset === d.name);
      return c?.status === 'ok' ? [(100 * c.mean!).toFixed(2), (100 * c.std!).toFixed(2), 'ok'] : ['', '', c?.status ?? ''];
    }),
  ]);
  return [head, ...rows].map((row) => row.map(csvField).join(',')).join('\n') + '\n';
}
