import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { batches, type Batch, type PipelineOptions } from '../../src/data/pipeline.js';
import { DecodePool, decodeNiceness, decodeWorkerCount, sharedDecodePool } from '../../src/data/decode-pool.js';
import type { ImageRecord } from '../../src/data/types.js';
import { UserError } from '../../src/errors.js';

async function collect(stream: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of stream) out.push(b);
  return out;
}

/** Everything a batch carries, as plain values (pixels included). */
function plain(bs: Batch[]) {
  return bs.map((b) => ({ pixels: Array.from(b.images.dataSync()), labels: Array.from(b.labels), ids: b.records.map((r) => r.id), boxes: b.boxes, geometry: b.geometry }));
}

describe('data/decode-pool', () => {
  before(useEngine);
  let records: ImageRecord[];
  before(async () => {
    const dir = makeTempDir();
    records = [];
    for (let i = 0; i < 12; i++) {
      const f = path.join(dir, `img${i}.jpg`);
      const w = 40 + 4 * i, h = 30 + 2 * i;
      const d = new Uint8Array(w * h * 3).map((_, k) => (k * (i + 5) + (k >> 7)) % 256);
      await sharp(Buffer.from(d), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(f);
      records.push({ id: `img${i}`, path: f, label: i % 3, width: w, height: h, boxes: [[3, 4, 20, 18]], split: 'train' });
    }
  });
  const opts: PipelineOptions = { batchSize: 5, transforms: ['resize:36:shorter', 'random-crop:32', 'flip'], preprocess: 'caffe', shuffle: true, seed: 11 };

  it('decode workers with prefetching give the same batches as sequential decoding on the main thread, with or without the cache', async () => {
    const sequential = plain(await collect(batches(records, { ...opts, epoch: 2, workers: 0, prefetch: 0, concurrency: 1 })));
    for (const variant of [{ workers: 1 }, { workers: 1, decodesPerWorker: 1 }, { workers: 1, decodesPerWorkerWhileAhead: 1 }, { workers: 2, concurrency: 8, prefetch: 3 }, { workers: 1, memoryCache: true }, { workers: 0, memoryCache: true }]) {
      // twice: with the cache, the second pass reads every image's resized prefix from memory
      for (let pass = 0; pass < 2; pass++) {
        const s = batches(records, { ...opts, epoch: 2, ...variant });
        const got = await collect(s);
        expect(plain(got), JSON.stringify(variant)).to.deep.equal(sequential);
        got.forEach((b) => b.images.dispose());
        if (variant.memoryCache && pass === 1) expect([s.stats.cacheHits, s.stats.cacheMisses]).to.deep.equal([12, 0]);
      }
    }
    // another epoch draws other crops and flips, the same way in every thread
    const e3 = await collect(batches(records, { ...opts, epoch: 3, workers: 1, memoryCache: true }));
    expect(plain(e3)).to.not.deep.equal(sequential);
    expect(plain(e3)).to.deep.equal(plain(await collect(batches(records, { ...opts, epoch: 3, workers: 0, prefetch: 0, concurrency: 1 }))));
  });

  it("a worker's in-memory cache never holds more than its bound, and evicted images decode again to the same pixels", async () => {
    // 36-pixel shorter side: each cached prefix is 36×(36..54)×3 bytes; the bound holds about three of them
    const pool = new DecodePool(1, 3 * 36 * 50 * 3);
    try {
      const job = { transforms: opts.transforms, seed: 1, epoch: 0, outputSize: [32, 32] as [number, number], memoryCache: true };
      const first = [];
      for (const r of records) {
        first.push(await pool.prepare(r.path, job, r.id));
        const [stats] = await pool.cacheStats();
        expect(stats.bytes).to.be.at.most(stats.maxBytes);
        expect(stats.entries).to.be.at.most(3);
      }
      expect(first.every((p) => !p.fromCache)).to.equal(true);
      const again = await Promise.all(records.map((r) => pool.prepare(r.path, job, r.id)));
      expect(again.map((p) => Array.from(p.rgb))).to.deep.equal(first.map((p) => Array.from(p.rgb)));
      expect(again.filter((p) => p.fromCache).length).to.be.at.most(3);
      await pool.clearCaches();
      expect((await pool.cacheStats())[0]).to.deep.include({ entries: 0, bytes: 0 });
    } finally {
      pool.close();
    }
  });

  it('the worker decodes the whole prefetch window while this thread is blocked in a synchronous step', async () => {
    // 16 images, batches of 4, 2 batches ahead: once the first batch is out, batches 0..3 have been asked for. A
    // bound kept on this thread would let the worker finish only the images it already had (4 in flight).
    const pool = sharedDecodePool(1);
    await pool.clearCaches();
    const recs = [...records, ...records.slice(0, 4).map((r, i) => ({ ...r, id: `again${i}`, path: `${r.path}.copy${i}.jpg` }))];
    for (const r of recs.slice(12)) fs.copyFileSync(r.path.replace(/\.copy\d\.jpg$/, ''), r.path);
    const it = batches(recs, { ...opts, batchSize: 4, prefetch: 2, workers: 1, memoryCache: true })[Symbol.asyncIterator]();
    const first = await it.next();
    first.value.images.dispose();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500); // what a long TensorFlow step does to this thread
    const [stats] = await pool.cacheStats();
    expect(stats.entries).to.equal(16);
    for (let r = await it.next(); !r.done; r = await it.next()) r.value.images.dispose();
  });

  it('an aborted request is dropped if its worker has not started it; the others complete', async () => {
    const pool = new DecodePool(1, 0);
    try {
      const abort = new AbortController();
      const job = { transforms: ['resize:16'], memoryCache: false };
      const asked = Array.from({ length: 40 }, (_, i) => pool.prepare(records[i % 12].path, job, `a${i}`, { signal: abort.signal }));
      abort.abort();
      const settled = await Promise.allSettled(asked);
      const cancelled = settled.filter((s) => s.status === 'rejected' && (s.reason as Error).message === 'cancelled').length;
      const done = settled.filter((s) => s.status === 'fulfilled').length;
      expect(cancelled, 'dropped').to.be.greaterThan(0);
      expect(done + cancelled).to.equal(40);
      // the pool still works after a cancellation
      expect((await pool.prepare(records[0].path, job, 'b')).rgb.length).to.equal(16 * 16 * 3);
    } finally {
      pool.close();
    }
  });

  it("a worker's failures come back as the same one-line UserError naming the file", async () => {
    const pool = new DecodePool(1, 0);
    try {
      let err: unknown;
      try { await pool.prepare('/nonexistent/x.jpg', { transforms: ['resize:8'], memoryCache: false }, 'x'); } catch (e) { err = e; }
      expect(err).to.be.instanceOf(UserError);
      expect((err as Error).message).to.include('/nonexistent/x.jpg').and.not.include('\n');
    } finally {
      pool.close();
    }
  });

  it('on Linux, the decoding threads (the worker and libvips\' workers) run at the lower priority asked for', async function () {
    if (process.platform !== 'linux') this.skip();
    const pool = new DecodePool(1, 0, 12);
    try {
      await pool.prepare(records[0].path, { transforms: ['resize:16'], memoryCache: false }, 'a');
      const threads = fs.readdirSync('/proc/self/task').map((t) => ({
        name: fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim(),
        nice: Number(fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(') ')[1].split(' ')[16]),
      }));
      expect(threads.filter((t) => t.name === 'libvips worker' && t.nice >= 12).length, JSON.stringify(threads)).to.be.at.least(1);
      expect(threads.filter((t) => t.name !== 'libvips worker' && t.nice >= 12).length, 'the worker thread').to.be.at.least(1);
      expect(fs.readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' ')[16], 'the main thread').to.not.equal('12');
    } finally {
      pool.close();
    }
  });

  it('tensor count stays flat over many epochs through the workers and the cache', async () => {
    await expectNoTensorLeak(async () => {
      for (let epoch = 0; epoch < 8; epoch++) {
        for await (const b of batches(records, { ...opts, epoch, workers: 1, memoryCache: true })) b.images.dispose();
      }
    });
    // stopping in the middle of an epoch leaves nothing behind either
    const before = tf.memory().numTensors;
    for await (const b of batches(records, { ...opts, workers: 1 })) { b.images.dispose(); break; }
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('GAPCAM_DECODE_WORKERS sets the worker count (0: the main thread), the default leaving most cores to TensorFlow; GAPCAM_DECODE_NICE their priority', () => {
    expect(decodeWorkerCount({ GAPCAM_DECODE_WORKERS: '3' })).to.equal(3);
    expect(decodeWorkerCount({ GAPCAM_DECODE_WORKERS: '0' })).to.equal(0);
    expect(decodeWorkerCount({})).to.be.at.least(1);
    expect(() => decodeWorkerCount({ GAPCAM_DECODE_WORKERS: '1.5' })).to.throw(UserError, /GAPCAM_DECODE_WORKERS/);
    expect([decodeNiceness({}), decodeNiceness({ GAPCAM_DECODE_NICE: '0' }), decodeNiceness({ GAPCAM_DECODE_NICE: '19' })]).to.deep.equal([10, 0, 19]);
    expect(() => decodeNiceness({ GAPCAM_DECODE_NICE: '20' })).to.throw(UserError, /GAPCAM_DECODE_NICE/);
  });
});
