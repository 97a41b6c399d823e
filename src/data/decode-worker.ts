// A decode worker thread (started by decode-pool.ts): prepares images as the pipeline asks, with its own share of the
// in-memory decode cache. Runs nothing but sharp and plain JS, so it keeps decoding while the main thread is blocked
// in a synchronous TensorFlow step.
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { prepareImage } from './prepare.js';
import { threadDecodeCache } from './decode-cache.js';
import { UserError } from '../errors.js';
import type { WorkerReply, WorkerRequest } from './decode-pool.js';

const { cacheBytes } = workerData as { cacheBytes: number };
// One libvips thread per image: the pool's size and its images in flight are the decode parallelism.
sharp.concurrency(1);
sharp.cache(false);

parentPort!.on('message', (req: WorkerRequest) => {
  void (async () => {
    let reply: WorkerReply;
    if ('cache' in req) {
      const cache = threadDecodeCache(cacheBytes);
      if (req.cache === 'clear') cache?.clear();
      const stats = { entries: cache?.size ?? 0, bytes: cache?.bytes ?? 0, maxBytes: cache?.maxBytes ?? 0 };
      parentPort!.postMessage({ n: req.n, ok: true, cache: stats } satisfies WorkerReply);
      return;
    }
    try {
      const p = await prepareImage(req.file, { ...req.options, memoryCache: req.options.memoryCache ? threadDecodeCache(cacheBytes) : undefined }, req.id);
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
  })();
});
