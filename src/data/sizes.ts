// Original image sizes without decoding pixels: sharp reads the header only (EXIF orientation applied), with bounded
// concurrency and an in-process memo keyed by path, file size and mtime.
import fs from 'node:fs';
import { imageSize } from './image.js';
import { mapConcurrent, type BadInput } from './util.js';
import { UserError } from '../errors.js';

const memo = new Map<string, { key: string; width: number; height: number }>();

/** The displayed size of one image (header only), memoised. */
export async function cachedImageSize(file: string): Promise<{ width: number; height: number }> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new UserError(`image file not found: ${file}`);
  }
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = memo.get(file);
  if (hit && hit.key === key) return { width: hit.width, height: hit.height };
  const size = await imageSize(file);
  memo.set(file, { key, ...size });
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
): Promise<T[]> {
  const ok = await mapConcurrent(items, concurrency, async (item) => {
    try {
      if (item.width > 0 && item.height > 0) {
        const st = await fs.promises.stat(item.path).catch(() => undefined);
        if (!st) throw new UserError(`image file not found: ${item.path}`);
        if (st.size === 0) throw new UserError(`image file is empty (0 bytes): ${item.path}`);
        return true;
      }
      const { width, height } = await cachedImageSize(item.path);
      item.width = width;
      item.height = height;
      return true;
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      bad.bad(item.path, new UserError(`${where(item)}: ${err.message}`));
      return false;
    }
  });
  return items.filter((_, i) => ok[i]);
}
