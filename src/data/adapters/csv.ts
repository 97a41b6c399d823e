// CSV manifests with a header: path,label[,x0,y0,x1,y1][,split] (columns found by name, any order; extra columns
// ignored). Paths are resolved against the CSV's folder. Labels are class names (classes sorted naturally). Boxes
// are gapcam boxes (0-based, inclusive corners); several rows naming the same image add boxes to it. Without a
// split column each class gets a fixed seeded split. Sizes come from image headers.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import type { Box, Dataset, ImageRecord, Split } from '../types.js';
import { parseSplit, type LayoutAdapter, type LayoutOptions } from './types.js';
import { BadInput, checkBox, naturalCompare, parseNumberField, readText } from '../util.js';
import { fillSizes } from '../sizes.js';
import { assignSeededSplit, seededSplitOf } from '../split.js';
import { UserError } from '../../errors.js';

const BOX_COLUMNS = ['x0', 'y0', 'x1', 'y1'] as const;

export async function loadCsvManifest(file: string, options: LayoutOptions = {}): Promise<Dataset> {
  const text = readText(file, 'CSV manifest');
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parse(text, { skip_empty_lines: true, trim: true, info: true, relax_column_count: false }) as unknown as typeof rows;
  } catch (err) {
    throw new UserError(`cannot parse CSV manifest ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (rows.length === 0) throw new UserError(`CSV manifest ${file} is empty (expected a header path,label[,x0,y0,x1,y1][,split])`);
  const header = rows[0].record.map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  for (const required of ['path', 'label']) {
    if (col(required) < 0) throw new UserError(`CSV manifest ${file} line 1: missing column '${required}' (header is '${rows[0].record.join(',')}'; expected path,label[,x0,y0,x1,y1][,split])`);
  }
  const boxCols = BOX_COLUMNS.map(col);
  const someBox = boxCols.some((c) => c >= 0);
  if (someBox && boxCols.some((c) => c < 0)) {
    throw new UserError(`CSV manifest ${file} line 1: box columns must be all of x0,y0,x1,y1, found only ${BOX_COLUMNS.filter((_, i) => boxCols[i] >= 0).join(',')}`);
  }
  const splitCol = col('split');
  const dir = path.dirname(path.resolve(file));
  const bad = new BadInput(!!options.skipBadImages);

  const byPath = new Map<string, { rec: ImageRecord; className: string; boxes: { box: Box; line: number }[]; line: number }>();
  for (const { record, info } of rows.slice(1)) {
    const line = info.lines;
    const rel = record[col('path')];
    const className = record[col('label')];
    if (!rel) throw new UserError(`CSV manifest ${file} line ${line}: empty path`);
    if (!className) throw new UserError(`CSV manifest ${file} line ${line}: empty label`);
    let split: Split = 'train';
    if (splitCol >= 0) {
      const s = parseSplit(record[splitCol]);
      if (!s) throw new UserError(`CSV manifest ${file} line ${line}: split must be train, test or val, found '${record[splitCol]}'`);
      split = s;
    }
    const full = path.resolve(dir, rel);
    let entry = byPath.get(full);
    if (!entry) {
      entry = { rec: { id: rel, path: full, label: -1, width: 0, height: 0, boxes: [], split }, className, boxes: [], line };
      byPath.set(full, entry);
    } else if (entry.className !== className) {
      throw new UserError(`CSV manifest ${file} line ${line}: ${rel} has label '${className}' here but '${entry.className}' on line ${entry.line}`);
    }
    if (someBox) {
      const vals = boxCols.map((c) => record[c]);
      if (vals.every((v) => v === '')) continue;
      const box = vals.map((v, i) => parseNumberField(v, file, line, BOX_COLUMNS[i])) as Box;
      entry.boxes.push({ box, line });
    }
  }
  const entries = [...byPath.values()];
  if (entries.length === 0) throw new UserError(`CSV manifest ${file} lists no images`);
  const classNames = [...new Set(entries.map((e) => e.className))].sort(naturalCompare);
  const lineOf = new Map(entries.map((e) => [e.rec, e]));
  const present = await fillSizes(entries.map((e) => e.rec), bad, (r) => `CSV manifest ${file} line ${lineOf.get(r)!.line}`, 16, dir);
  let records: ImageRecord[] = [];
  for (const rec of present) {
    const e = lineOf.get(rec)!;
    rec.label = classNames.indexOf(e.className);
    let ok = true;
    for (const { box, line } of e.boxes) {
      const checked = checkBox(box, rec.width, rec.height);
      if (typeof checked === 'string') {
        bad.bad(rec.path, `CSV manifest ${file} line ${line}: ${rec.id}: ${checked}`);
        ok = false;
        break;
      }
      rec.boxes.push(checked);
    }
    if (ok) records.push(rec);
  }
  if (splitCol < 0) records = assignSeededSplit(records, classNames, ...seededSplitOf(options));
  return { name: options.name ?? path.parse(file).name, root: dir, classNames, records, ...(bad.skip ? { skipped: bad.skipped } : {}) };
}

export const csvAdapter: LayoutAdapter = {
  describe: 'CSV manifest with a header: path,label[,x0,y0,x1,y1][,split] (paths relative to the CSV)',
  detect: (root) => root.toLowerCase().endsWith('.csv') && fs.existsSync(root) && fs.statSync(root).isFile(),
  load: loadCsvManifest,
};
