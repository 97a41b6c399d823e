// The in-memory decode cache: the decoded result of a recipe's deterministic transforms (raw RGB), keyed by file,
// file size, mtime and those transforms, so that later epochs skip JPEG decoding. Bounded in bytes, least recently
// used first out. Written here rather than taken from npm because it is a dozen lines over a Map (whose iteration
// order is insertion order) and needs nothing an LRU package adds (TTL, disposal hooks).
import { UserError } from '../errors.js';

/** 8-bit RGB pixels, row-major HWC. */
export interface RawImage { data: Uint8Array; width: number; height: number }

/** A cached decode: the source image's size and the pixels after the deterministic prefix. */
export interface CachedDecode { srcWidth: number; srcHeight: number; img: RawImage }

export class DecodeCache {
  private readonly entries = new Map<string, CachedDecode>();
  private used = 0;

  /** @param maxBytes pixel bytes kept at most (entries larger than this are never kept). */
  constructor(readonly maxBytes: number) {}

  /** The entry for `key`, now the most recently used; undefined when absent. */
  get(key: string): CachedDecode | undefined {
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  /** Keeps `value` (its pixels must not be changed afterwards), evicting the least recently used entries. */
  set(key: string, value: CachedDecode): void {
    const size = value.img.data.byteLength;
    this.delete(key);
    if (size > this.maxBytes) return;
    this.entries.set(key, value);
    this.used += size;
    for (const [k] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.delete(k);
    }
  }

  private delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.used -= e.img.data.byteLength;
  }

  /** Pixel bytes held now (≤ maxBytes). */
  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}

export const DEFAULT_DECODE_CACHE_MB = 256;

/** The in-memory decode cache's bound in bytes: GAPCAM_DECODE_CACHE_MB (MiB; 0 turns it off), default 256 MiB —
 *  all of wild2's train split at 224×224 in 40 MB, ~450 full-size CUB photos. */
export function decodeCacheBytes(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.GAPCAM_DECODE_CACHE_MB;
  if (raw === undefined || raw.trim() === '') return DEFAULT_DECODE_CACHE_MB * 2 ** 20;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0) throw new UserError(`GAPCAM_DECODE_CACHE_MB must be a number of MiB ≥ 0 (0: no in-memory decode cache), found '${raw}'`);
  return Math.floor(mb * 2 ** 20);
}

let processCache: DecodeCache | undefined | null;

/** This thread's decode cache (one per decode worker, one for in-process decoding); undefined when turned off. */
export function threadDecodeCache(maxBytes = decodeCacheBytes()): DecodeCache | undefined {
  if (processCache === undefined) processCache = maxBytes > 0 ? new DecodeCache(maxBytes) : null;
  return processCache ?? undefined;
}
