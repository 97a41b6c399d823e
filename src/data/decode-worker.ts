// A decode worker thread (started by decode-pool.ts): prepares images as the pipeline asks, with its own share of the
// in-memory decode cache. Runs nothing but sharp and plain JS, so it keeps decoding while the main thread is blocked
// in a synchronous TensorFlow step. The pipeline sends every image of its prefetch window at once and this thread
// bounds how many decode at a time: a bound kept on the main thread could hand out the next image only between
// steps, and the worker sat idle for most of each step (measured: a third of vgg-gap-tiny's first-epoch step time).
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { prepareImage } from './prepare.js';
import { threadDecodeCache } from './decode-cache.js';
import { UserError } from '../errors.js';
import type { WorkerReply, WorkerRequest } from './decode-pool.js';

const { cacheBytes, niceness } = workerData as { cacheBytes: number; niceness: number };
// One libvips thread per image: the pool's size and its images in flight are the decode parallelism.
sharp.concurrency(1);
sharp.cache(false);

// TensorFlow's intra-op threads split each op into shards and wait for the slowest: a decode sharing a core with one
// shard delays the whole op. At a lower priority (Linux nice is per thread) the decoding threads — this one and
// libvips' workers, which do the JPEG decoding — take the cores' idle moments instead. Linux only; elsewhere a no-op.
const lowered = new Set<number>();
let lastScan = -Infinity;
function lowerDecodePriority(): void {
  if (process.platform !== 'linux' || niceness <= 0 || performance.now() - lastScan < 1000) return;
  lastScan = performance.now();
  try {
    const self = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    for (const t of fs.readdirSync('/proc/self/task')) {
      const tid = Number(t);
      if (lowered.has(tid)) continue;
      if (tid === self || fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'libvips worker') {
        os.setPriority(tid, niceness);
        lowered.add(tid);
      }
    }
  } catch {
    // a thread that ended meanwhile, or no /proc: decoding runs at the normal priority
  }
}

type PrepareRequest = Extract<WorkerRequest, { file: string }>;
const queued: PrepareRequest[] = [];
let running = 0;

parentPort!.on('message', (req: WorkerRequest) => {
  if ('cache' in req) {
    const cache = threadDecodeCache(cacheBytes);
    if (req.cache === 'clear') cache?.clear();
    const stats = { entries: cache?.size ?? 0, bytes: cache?.bytes ?? 0, maxBytes: cache?.maxBytes ?? 0 };
    parentPort!.postMessage({ n: req.n, ok: true, cache: stats } satisfies WorkerReply);
    return;
  }
  if ('cancel' in req) {
    // images not started yet are dropped (their consumer stopped); those decoding finish
    const i = queued.findIndex((q) => q.n === req.cancel);
    if (i >= 0) {
      queued.splice(i, 1);
      parentPort!.postMessage({ n: req.cancel, ok: false, error: { message: 'cancelled', user: false } } satisfies WorkerReply);
    }
    return;
  }
  queued.push(req);
  startQueued();
});

function startQueued(): void {
  while (queued.length && running < queued[0].inFlight) {
    running++;
    void prepare(queued.shift()!).finally(() => {
      running--;
      startQueued();
    });
  }
}

async function prepare(req: PrepareRequest): Promise<void> {
  let reply: WorkerReply;
  try {
    const p = await prepareImage(req.file, { ...req.options, memoryCache: req.options.memoryCache ? threadDecodeCache(cacheBytes) : undefined }, req.id);
    lowerDecodePriority(); // after a decode, when libvips' threads exist
    // A copy in a fresh JS buffer, moved to the main thread (sharp's output buffers live outside V8's heap and
    // need not be transferable); the copy costs microseconds.
    const rgb = new Uint8Array(p.rgb);
    reply = { n: req.n, ok: true, value: { ...p, rgb } };
    parentPort!.postMessage(reply, [rgb.buffer as ArrayBuffer]);
    return;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    reply = { n: req.n, ok: false, error: { message: e.message, stack: e.stack, user: err instanceof UserError } };
  }
  parentPort!.postMessage(reply);
}
