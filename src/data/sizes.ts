// Original image sizes without decoding pixels: sharp reads the header only (EXIF orientation applied), with bounded
// concurrency, an in-process memo keyed by path, file size and mtime, and a small on-disk cache per dataset folder
// (<cache>/sizes/<sha1 of the folder>.json; cache = GAPCAM_CACHE_DIR or .cache under the work root, paths.ts) so that loading a large
// dataset again costs one stat per image instead of one header read.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { defaultCacheRoot } from '../paths.js';
import { writeFileAtomic } from '../util/atomic.js';
import { imageSize } from './image.js';
import { mapConcurrent, type BadInput } from './util.js';
import { UserError } from '../errors.js';

const memo = new Map<string, { key: string; width: number; height: number }>();

/** Forgets the in-process memo (tests use it to see the on-disk table at work, as a new process would). */
export function clearSizeMemo(): void {
  memo.clear();
}

export function cacheRoot(): string {
  return defaultCacheRoot();
}

type SizeTable = Record<string, [string, number, number]>;

function sizeTableFile(folder: string): string {
  return path.join(cacheRoot(), 'sizes', `${crypto.createHash('sha1').update(path.resolve(folder)).digest('hex')}.json`);
}

function readSizeTable(folder: string): SizeTable {
  try {
    return JSON.parse(fs.readFileSync(sizeTableFile(folder), 'utf8')) as SizeTable;
  } catch {
    return {};
  }
}

/** The displayed size of one image (header only), memoised. */
export async function cachedImageSize(file: string, table?: SizeTable): Promise<{ width: number; height: number }> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new UserError(`image file not found: ${file}`);
  }
  if (st.size === 0) throw new UserError(`image file is empty (0 bytes): ${file}`);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = memo.get(file);
  if (hit && hit.key === key) return { width: hit.width, height: hit.height };
  const row = table?.[file];
  if (row && row[0] === key) {
    memo.set(file, { key, width: row[1], height: row[2] });
    return { width: row[1], height: row[2] };
  }
  const size = await imageSize(file);
  memo.set(file, { key, ...size });
  if (table) table[file] = [key, size.width, size.height];
  return size;
}

/**
 * Fills width/height of every item whose size is unknown (0) by reading image headers; items whose file is missing,
 * empty or not an image are reported to `bad` (thrown, or skipped and dropped from the result). `where(item)` names
 * the place the item came from (e.g. "images.txt line 12") for the message.
 */
export async function fillSizes<T extends { path: string; width: number; height: number }>(
  items: T[],
  bad: BadInput,
  where: (item: T) => string,
  concurrency = 16,
  /** The dataset folder whose on-disk size table is used (none: in-process memo only). */
  folder?: string,
): Promise<T[]> {
  const table = folder ? readSizeTable(folder) : undefined;
  const before = table ? Object.keys(table).length : 0;
  let changed = false;
  const ok = await mapConcurrent(items, concurrency, async (item) => {
    try {
      if (item.width > 0 && item.height > 0) {
        const st = await fs.promises.stat(item.path).catch(() => undefined);
        if (!st) throw new UserError(`image file not found: ${item.path}`);
        if (st.size === 0) throw new UserError(`image file is empty (0 bytes): ${item.path}`);
        return true;
      }
      const known = table?.[item.path]?.[0];
      const { width, height } = await cachedImageSize(item.path, table);
      if (table && table[item.path]?.[0] !== known) changed = true;
      item.width = width;
      item.height = height;
      return true;
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      bad.bad(item.path, new UserError(`${where(item)}: ${err.message}`));
      return false;
    }
  });
  if (folder && table && (changed || Object.keys(table).length !== before)) {
    await writeFileAtomic(sizeTableFile(folder), JSON.stringify(table)).catch(() => undefined);
  }
  return items.filter((_, i) => ok[i]);
}
