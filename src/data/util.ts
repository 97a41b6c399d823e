// Small shared helpers for the data layer: bounded concurrency, seeded randomness, table reading, skip bookkeeping.
import fs from 'node:fs';
import { parse } from 'csv-parse/sync';
import { UserError } from '../errors.js';
import type { Box, Skip } from './types.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';

/** Maps `fn` over `items` with at most `limit` promises in flight; results keep the input order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/** A manifest or table (CSV, CUB's .txt files), read with a size cap (a link to /dev/zero is refused). */
export function readText(file: string, what: string): string {
  return readTextBounded(file, what, READ_LIMITS.manifest);
}

/** A row of a whitespace-separated table with its 1-based line number in the file. */
export interface TableRow {
  line: number;
  fields: string[];
}

/**
 * Reads a space-separated text table (CUB style) with csv-parse: one record per line, fields separated by one or
 * more spaces/tabs; each row must have at least `minFields` fields (the last field keeps any further spaces when
 * `restJoined`, as in class names with spaces).
 */
export function readSpaceTable(file: string, what: string, minFields: number, restJoined = false): TableRow[] {
  const text = readText(file, what);
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text.replace(/\t/g, ' '), {
      delimiter: ' ',
      relax_column_count: true,
      skip_empty_lines: true,
      quote: false,
      info: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (err) {
    throw new UserError(`cannot parse ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  const rows: TableRow[] = [];
  for (const { record, info } of records) {
    const fields = record.map((f) => f.trim()).filter((f) => f !== '');
    if (fields.length === 0) continue;
    if (fields.length < minFields) {
      throw new UserError(`${file} line ${info.lines}: expected ${minFields} space-separated fields, found ${fields.length} ('${record.join(' ').trim()}')`);
    }
    rows.push({ line: info.lines, fields: restJoined ? [...fields.slice(0, minFields - 1), fields.slice(minFields - 1).join(' ')] : fields });
  }
  return rows;
}

export function parseNumberField(value: string, file: string, line: number, what: string): number {
  const v = Number(value);
  if (value.trim() === '' || !Number.isFinite(v)) throw new UserError(`${file} line ${line}: ${what} must be a number, found '${value}'`);
  return v;
}

/** Collects bad images: throws a UserError at the first one unless skipping was asked for, then counts them. */
export class BadInput {
  readonly skipped: Skip[] = [];
  constructor(readonly skip: boolean) {}
  /** Reports a problem with one image: throws (one line) or records a skip. */
  bad(file: string, reason: string | UserError): void {
    const message = typeof reason === 'string' ? reason : reason.message;
    if (!this.skip) throw typeof reason === 'string' ? new UserError(reason) : reason;
    this.skipped.push({ file, reason: message });
  }
}

/** Tolerance (pixels) for boxes that overhang their image: annotation tools round outward by up to one pixel. */
export const BOX_OVERHANG = 1;

/**
 * Validates an inclusive box against its image: a box lying more than BOX_OVERHANG pixels outside the image, or with
 * no area (x1 < x0 or y1 < y0, i.e. inclusive width or height ≤ 0), is a problem (returned as a message); otherwise
 * the box is returned clamped to [0, width-1] × [0, height-1].
 */
export function checkBox(box: Box, width: number, height: number): Box | string {
  const [x0, y0, x1, y1] = box;
  if (![x0, y0, x1, y1].every(Number.isFinite)) return `box [${box.join(', ')}] has a non-numeric corner`;
  if (x1 - x0 + 1 <= 0 || y1 - y0 + 1 <= 0) return `box [${box.join(', ')}] has zero area (expected x0 ≤ x1 and y0 ≤ y1)`;
  if (x0 < -BOX_OVERHANG || y0 < -BOX_OVERHANG || x1 > width - 1 + BOX_OVERHANG || y1 > height - 1 + BOX_OVERHANG) {
    return `box [${box.join(', ')}] lies outside its ${width}×${height} image (x in 0..${width - 1}, y in 0..${height - 1})`;
  }
  return [Math.max(0, x0), Math.max(0, y0), Math.min(width - 1, x1), Math.min(height - 1, y1)];
}

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.bmp', '.avif'];
export function isImageFile(name: string): boolean {
  const lower = name.toLowerCase();
  return !lower.startsWith('.') && IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** Natural sort (so 'img2' < 'img10'), used wherever a folder listing fixes an order. */
export const naturalCompare = new Intl.Collator('en', { numeric: true }).compare;
