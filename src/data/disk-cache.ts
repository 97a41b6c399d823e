// The decoded-image cache folder (default .cache/images, `gapcam train --no-cache` turns it off): the raw RGB result
// of a recipe's deterministic transforms, one file per (image, transforms) key, so that a later epoch or a later run
// over the same data skips JPEG decoding. The folder is bounded (GAPCAM_IMAGE_CACHE_MB, default 4096): the first use
// in a process removes the least recently used files (mtime, refreshed on every hit) until the folder fits, and the
// process then adds a file only while the bound has room for it (a budget in shared memory that the decode workers
// take from as they write); reads go on. Only files in the cache's own format (`<2 hex>/<40 hex>.rgb` starting with
// its magic) are ever removed: whatever else is in the folder is left alone.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { CachedDecode, RawImage } from './decode-cache.js';
import type { Transform } from './transforms.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../errors.js';

const CACHE_MAGIC = 0x57524347; // 'GCRW'
const CACHE_VERSION = 1;
const HEADER_BYTES = 20;
const ENTRY_NAME = /^[0-9a-f]{40}\.rgb$/;
const SHARD_NAME = /^[0-9a-f]{2}$/;

/** Bound of the cache folder in bytes: GAPCAM_IMAGE_CACHE_MB (MiB, default 4096; 0: no folder cache). */
export function imageCacheBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.GAPCAM_IMAGE_CACHE_MB;
  if (raw === undefined || raw.trim() === '') return 4096 * 2 ** 20;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0) throw new UserError(`GAPCAM_IMAGE_CACHE_MB must be a number of MiB ≥ 0 (0: no decoded-image cache folder), found '${raw}'`);
  return Math.floor(mb * 2 ** 20);
}

/** The key of one image's cached prefix: the file's identity (path, size, mtime) and everything that shapes the pixels
 *  (a region cut first is added only when there is one, so the keys of whole images stay as they were). */
export function decodeCacheKey(file: string, st: fs.Stats, prefix: Transform[], o: { kernel?: string; background?: number[]; region?: number[] }): string {
  const h = crypto.createHash('sha1');
  h.update(JSON.stringify([CACHE_VERSION, path.resolve(file), st.size, st.mtimeMs, prefix, o.kernel ?? 'lanczos3', o.background ?? null, ...(o.region ? [o.region] : [])]));
  return h.digest('hex');
}

/** Where the entry for `key` lives in the folder `dir`. */
export function cacheEntryFile(dir: string, key: string): string {
  return path.join(dir, key.slice(0, 2), `${key}.rgb`);
}

/** The entry in `file`, or undefined when there is none (or it is not one of ours). A hit marks the entry as recently
 *  used (its mtime), which is what the bound's eviction order reads. */
export async function readCacheEntry(file: string): Promise<CachedDecode | undefined> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch {
    return undefined;
  }
  if (buf.length < HEADER_BYTES || buf.readUInt32LE(0) !== CACHE_MAGIC) return undefined;
  const [srcWidth, srcHeight, width, height] = [4, 8, 12, 16].map((o) => buf.readUInt32LE(o));
  if (buf.length !== HEADER_BYTES + width * height * 3) return undefined;
  const now = new Date();
  await fs.promises.utimes(file, now, now).catch(() => undefined); // a read-only cache still serves hits
  return { srcWidth, srcHeight, img: { data: new Uint8Array(buf.buffer, buf.byteOffset + HEADER_BYTES, width * height * 3), width, height } };
}

// The shard folders this thread has made: a first epoch writes thousands of entries, and on a virtual machine a
// recursive mkdir per entry costs a noticeable share of decoding a small image.
const madeShards = new Set<string>();

/** Writes one entry atomically if `budget` (CacheFolderBudget.remaining) has room for it; returns the bytes written
 *  (0: no room). */
export async function writeCacheEntry(file: string, srcWidth: number, srcHeight: number, img: RawImage, budget?: BigInt64Array): Promise<number> {
  if (budget && !takeFromBudget(budget, HEADER_BYTES + img.data.byteLength)) return 0;
  const head = Buffer.alloc(HEADER_BYTES);
  [CACHE_MAGIC, srcWidth, srcHeight, img.width, img.height].forEach((v, i) => head.writeUInt32LE(v, i * 4));
  const data = Buffer.concat([head, Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength)]);
  const shard = path.dirname(file);
  if (madeShards.has(shard)) {
    try {
      await writeFileAtomic(file, data, { parentExists: true });
      return data.length;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      madeShards.delete(shard); // the folder went away meanwhile (pruned by hand): make it again
    }
  }
  await writeFileAtomic(file, data);
  madeShards.add(shard);
  return data.length;
}

async function isOurEntry(file: string): Promise<boolean> {
  let fd: fs.promises.FileHandle | undefined;
  try {
    fd = await fs.promises.open(file, 'r');
    const head = Buffer.alloc(4);
    const { bytesRead } = await fd.read(head, 0, 4, 0);
    return bytesRead === 4 && head.readUInt32LE(0) === CACHE_MAGIC;
  } catch {
    return false;
  } finally {
    await fd?.close();
  }
}

/** Removes the least recently used entries of the folder until it holds at most `maxBytes`; returns what is left
 *  and how many entries went. A missing folder holds 0 bytes. */
export async function pruneCacheFolder(dir: string, maxBytes: number): Promise<{ bytes: number; removed: number }> {
  const entries: { file: string; bytes: number; used: number }[] = [];
  const shards = await fs.promises.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const shard of shards) {
    if (!shard.isDirectory() || !SHARD_NAME.test(shard.name)) continue;
    const names = await fs.promises.readdir(path.join(dir, shard.name)).catch(() => [] as string[]);
    for (const name of names) {
      if (!ENTRY_NAME.test(name) || !name.startsWith(shard.name)) continue;
      const file = path.join(dir, shard.name, name);
      const st = await fs.promises.lstat(file).catch(() => undefined);
      if (st?.isFile()) entries.push({ file, bytes: st.size, used: st.mtimeMs });
    }
  }
  let bytes = entries.reduce((a, e) => a + e.bytes, 0);
  let removed = 0;
  entries.sort((a, b) => a.used - b.used);
  for (const e of entries) {
    if (bytes <= maxBytes) break;
    if (!(await isOurEntry(e.file))) continue;
    try {
      await fs.promises.unlink(e.file);
      removed++;
    } catch (err) {
      // gone already (another run pruned it) counts as removed; anything else (no permission) keeps it
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue;
    }
    bytes -= e.bytes;
  }
  return { bytes, removed };
}

/** How much a process may still add to a cache folder; shared by every pipeline of the process over that folder, and
 *  by the decode workers that write the entries (`remaining` is one 64-bit integer in shared memory). */
export interface CacheFolderBudget { readonly dir: string; readonly maxBytes: number; readonly remaining: BigInt64Array }

/** Takes `bytes` from a budget if it has that much left (atomically: several threads write entries at once). */
export function takeFromBudget(remaining: BigInt64Array, bytes: number): boolean {
  const n = BigInt(bytes);
  const before = Atomics.sub(remaining, 0, n);
  if (before >= n) return true;
  Atomics.add(remaining, 0, n); // no room: give it back
  return false;
}

const budgets = new Map<string, Promise<CacheFolderBudget>>();

/** The process's budget for `dir` under `maxBytes`; the first call prunes the folder to the bound. */
export function cacheFolderBudget(dir: string, maxBytes = imageCacheBytes()): Promise<CacheFolderBudget> {
  const id = `${path.resolve(dir)}\0${maxBytes}`;
  let b = budgets.get(id);
  if (!b) {
    b = pruneCacheFolder(dir, maxBytes).then(({ bytes }) => {
      const remaining = new BigInt64Array(new SharedArrayBuffer(8));
      remaining[0] = BigInt(Math.max(0, maxBytes - bytes));
      return { dir, maxBytes, remaining };
    });
    budgets.set(id, b);
  }
  return b;
}
