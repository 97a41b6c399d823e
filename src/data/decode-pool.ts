// Decode worker threads shared by every pipeline in the process. tfjs-node runs each op synchronously on the main
// thread, so while a training step runs, decodes started from the main thread cannot move to their next stage; in
// worker threads they carry on. Sizing on a machine TensorFlow shares: TensorFlow's intra-op threads use every core
// (engine.ts), so the default is a quarter of the cores (1 on 2 cores), each image on one libvips thread, a few
// images decoding at a time per worker as each request says (the worker queues the rest, decode-worker.ts), and the
// decoding threads at a lower priority. Each image goes to the same worker every epoch (by path), so the workers'
// in-memory caches (the bound split between them) do not hold the same image twice. Idle workers do not keep the
// process alive.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PrepareOptions, PreparedImage } from './prepare.js';
import { decodeCacheBytes, threadDecodeCache } from './decode-cache.js';
import { UserError } from '../errors.js';

/** What a worker is asked: prepareImage's arguments, with the cache as a switch (each worker has its own), or to
 *  empty its cache. */
export type WorkerRequest =
  | { n: number; file: string; id: string; options: PrepareJob; inFlight: number }
  | { n: number; cancel: number }
  | { n: number; cache: 'clear' | 'stats' };

/** Images a worker decodes at once unless the request says otherwise. */
export const DEFAULT_DECODES_PER_WORKER = 4;

/** One worker's in-memory decode cache. */
export interface CacheStats { entries: number; bytes: number; maxBytes: number }

export type PrepareJob = Omit<PrepareOptions, 'rng' | 'memoryCache'> & { memoryCache: boolean };

export type WorkerReply =
  | { n: number; ok: true; value?: PreparedImage; cache?: CacheStats }
  | { n: number; ok: false; error: { message: string; stack?: string; user: boolean } };

/** Decode workers to use: GAPCAM_DECODE_WORKERS (0: decode on the main thread), else a quarter of the cores, ≥ 1. */
export function decodeWorkerCount(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.GAPCAM_DECODE_WORKERS;
  if (raw === undefined || raw.trim() === '') return Math.max(1, Math.floor(os.cpus().length / 4));
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`GAPCAM_DECODE_WORKERS must be a whole number ≥ 0 (0: decode on the main thread), found '${raw}'`);
  return n;
}

// Compiled, the worker is decode-worker.js next to this file. Run from source (tsx), a worker does not get tsx's
// loader from --import in Node 20, so a two-line bootstrap registers it before importing decode-worker.ts.
const fromSource = path.extname(fileURLToPath(import.meta.url)) === '.ts';
function workerEntry(): string | URL {
  if (!fromSource) return new URL('./decode-worker.js', import.meta.url);
  // tsx's ESM API, found through its package.json's exports (a bare specifier does not resolve from an eval worker)
  const pkgFile = createRequire(import.meta.url).resolve('tsx/package.json');
  const api = (JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api'].import.default;
  const apiUrl = pathToFileURL(path.join(path.dirname(pkgFile), api)).href;
  const entry = new URL('./decode-worker.ts', import.meta.url).href;
  return `import(${JSON.stringify(apiUrl)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
}

/** Nice value of the decoding threads (GAPCAM_DECODE_NICE, 0..19, default 10; see decode-worker.ts). */
export function decodeNiceness(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.GAPCAM_DECODE_NICE;
  if (raw === undefined || raw.trim() === '') return 10;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new UserError(`GAPCAM_DECODE_NICE must be a whole number from 0 to 19 (0: normal priority), found '${raw}'`);
  return n;
}

interface Slot { worker: Worker; inFlight: number }

export class DecodePool {
  private readonly slots: Slot[] = [];
  private readonly waiting = new Map<number, { resolve: (r: Extract<WorkerReply, { ok: true }>) => void; reject: (e: Error) => void; slot: Slot }>();
  private next = 0;
  private readonly bySignal = new WeakMap<AbortSignal, Map<number, Slot>>();
  private closed = false;
  /** Each worker's in-memory cache bound (bytes). */
  readonly cacheBytes: number;

  constructor(readonly size: number, totalCacheBytes = decodeCacheBytes(), private readonly niceness = decodeNiceness()) {
    this.cacheBytes = Math.floor(totalCacheBytes / size);
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = new Worker(workerEntry(), { eval: fromSource, workerData: { cacheBytes: this.cacheBytes, niceness: this.niceness } });
    const slot: Slot = { worker, inFlight: 0 };
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const w = this.waiting.get(reply.n);
      if (!w) return;
      this.waiting.delete(reply.n);
      this.done(slot);
      if (reply.ok) w.resolve(reply);
      else w.reject(Object.assign(reply.error.user ? new UserError(reply.error.message) : new Error(reply.error.message), reply.error.stack ? { stack: reply.error.stack } : {}));
    });
    const fail = (err: Error) => {
      // A dead worker fails what it was doing and is replaced for the next images.
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      if (this.closed) this.slots.splice(i, 1);
      else this.slots[i] = this.spawn();
      for (const [n, w] of this.waiting) {
        if (w.slot !== slot) continue;
        this.waiting.delete(n);
        w.reject(new Error(`decode worker stopped: ${err.message}`));
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    return slot;
  }

  private done(slot: Slot): void {
    if (--slot.inFlight > 0) return;
    slot.worker.unref();
    if (this.closed) void slot.worker.terminate();
  }

  /** Stops the workers (each once the images it is decoding are done). */
  close(): void {
    this.closed = true;
    for (const slot of this.slots) if (slot.inFlight === 0) void slot.worker.terminate();
  }

  /** prepareImage(file, options, id) in a worker, which starts it once fewer than `inFlight` images (default
   *  DEFAULT_DECODES_PER_WORKER) are decoding there. Aborting `signal` drops the image if its worker has not started
   *  it (the promise then rejects). */
  async prepare(file: string, options: PrepareJob, id: string, o: { signal?: AbortSignal; inFlight?: number } = {}): Promise<PreparedImage> {
    return (await this.ask(this.slots[hash(file) % this.slots.length], { file, id, options, inFlight: o.inFlight ?? DEFAULT_DECODES_PER_WORKER }, o.signal)).value!;
  }

  /** Empties every worker's in-memory decode cache. */
  async clearCaches(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.ask(slot, { cache: 'clear' })));
  }

  /** Each worker's in-memory decode cache (entries, bytes held, bound). */
  async cacheStats(): Promise<CacheStats[]> {
    return Promise.all(this.slots.map(async (slot) => (await this.ask(slot, { cache: 'stats' })).cache!));
  }

  private ask(slot: Slot, req: DistributiveOmit<WorkerRequest, 'n'>, signal?: AbortSignal): Promise<Extract<WorkerReply, { ok: true }>> {
    if (this.closed) throw new Error('the decode pool is closed');
    const n = this.next++;
    // Keep the process alive while a worker has work the caller awaits.
    if (slot.inFlight++ === 0) slot.worker.ref();
    const asked = signal ? this.askedUnder(signal) : undefined;
    asked?.set(n, slot);
    return new Promise<Extract<WorkerReply, { ok: true }>>((resolve, reject) => {
      this.waiting.set(n, { resolve, reject, slot });
      slot.worker.postMessage({ ...req, n } satisfies WorkerRequest);
    }).finally(() => asked?.delete(n));
  }

  /** The requests still awaited under `signal`, cancelled in their workers when it aborts (one listener per signal,
   *  however many images it covers). */
  private askedUnder(signal: AbortSignal): Map<number, Slot> {
    let asked = this.bySignal.get(signal);
    if (!asked) {
      const requests = new Map<number, Slot>();
      signal.addEventListener('abort', () => {
        for (const [n, slot] of requests) slot.worker.postMessage({ n: this.next++, cancel: n } satisfies WorkerRequest);
      }, { once: true });
      this.bySignal.set(signal, (asked = requests));
    }
    return asked;
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

let shared: DecodePool | undefined;

/** The process's decode workers, created on first use; asking for another count replaces them (the old ones stop
 *  once their images are done). */
export function sharedDecodePool(size: number): DecodePool {
  if (!shared || shared.size !== size) {
    shared?.close();
    shared = new DecodePool(size);
  }
  return shared;
}

/** Empties the in-memory decode caches: the decode workers' and this thread's (e.g. to time a first epoch). */
export async function clearDecodeCaches(): Promise<void> {
  threadDecodeCache()?.clear();
  await shared?.clearCaches();
}
