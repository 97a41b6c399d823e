import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { useEngine, makeTempDir } from '../helpers.js';
import { batches, type Batch, type PipelineOptions } from '../../src/data/pipeline.js';
import { cacheEntryFile, imageCacheBytes, pruneCacheFolder, readCacheEntry, writeCacheEntry } from '../../src/data/disk-cache.js';
import type { ImageRecord } from '../../src/data/types.js';
import { UserError } from '../../src/errors.js';

/** Every cache entry file under `dir` with its size. */
function entries(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!fs.existsSync(dir)) return out;
  for (const shard of fs.readdirSync(dir)) {
    const sub = path.join(dir, shard);
    if (!fs.statSync(sub).isDirectory()) continue;
    for (const name of fs.readdirSync(sub)) if (name.endsWith('.rgb')) out.set(name, fs.statSync(path.join(sub, name)).size);
  }
  return out;
}

const key = (i: number) => i.toString(16).padStart(2, '0').repeat(20);

describe('data/disk-cache', () => {
  before(useEngine);

  it('GAPCAM_IMAGE_CACHE_MB sets the bound (default 4096 MiB, 0 turns the folder off) and a bad value is one line', () => {
    expect(imageCacheBytes({})).to.equal(4096 * 2 ** 20);
    expect(imageCacheBytes({ GAPCAM_IMAGE_CACHE_MB: '1.5' })).to.equal(1.5 * 2 ** 20);
    expect(imageCacheBytes({ GAPCAM_IMAGE_CACHE_MB: '0' })).to.equal(0);
    expect(() => imageCacheBytes({ GAPCAM_IMAGE_CACHE_MB: 'lots' })).to.throw(UserError, /GAPCAM_IMAGE_CACHE_MB.*'lots'/);
  });

  it('pruning removes the least recently used entries down to the bound and never touches anything else', async () => {
    const dir = makeTempDir();
    const img = { data: new Uint8Array(10 * 10 * 3).fill(7), width: 10, height: 10 }; // 300 + 20 bytes a file
    for (let i = 0; i < 6; i++) {
      const f = cacheEntryFile(dir, key(i));
      expect(await writeCacheEntry(f, 40, 30, img)).to.equal(320);
      const t = new Date(Date.UTC(2026, 0, 1, 0, i)); // entry i last used at minute i
      fs.utimesSync(f, t, t);
    }
    // a hit makes entry 0 the most recently used
    expect((await readCacheEntry(cacheEntryFile(dir, key(0))))!.img.width).to.equal(10);
    // things that are not entries of the cache: a user's note, an entry-named file with another content, a folder
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const foreign = cacheEntryFile(dir, key(9));
    fs.mkdirSync(path.dirname(foreign), { recursive: true });
    fs.writeFileSync(foreign, Buffer.alloc(5000, 1));
    const t0 = new Date(Date.UTC(2020, 0, 1));
    fs.utimesSync(foreign, t0, t0); // the oldest of all, and the largest
    fs.mkdirSync(path.join(dir, 'ab', 'keep'), { recursive: true });

    const { bytes, removed } = await pruneCacheFolder(dir, 5000 + 3 * 320);
    expect(removed).to.equal(3);
    expect(bytes).to.equal(5000 + 3 * 320);
    const left = [...entries(dir).keys()].sort();
    // entries 1, 2, 3 were the least recently used of ours; the foreign file stays although it is older
    expect(left).to.deep.equal([key(0), key(4), key(5), key(9)].map((k) => `${k}.rgb`).sort());
    expect(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(fs.existsSync(path.join(dir, 'ab', 'keep'))).to.equal(true);
    expect(await pruneCacheFolder(path.join(dir, 'missing'), 0)).to.deep.equal({ bytes: 0, removed: 0 });
  });

  it('an entry is written again after its shard folder was removed behind the cache\'s back', async () => {
    const dir = makeTempDir();
    const img = { data: new Uint8Array(4 * 4 * 3).fill(9), width: 4, height: 4 };
    await writeCacheEntry(cacheEntryFile(dir, key(1)), 4, 4, img); // the shard folder is made and remembered
    fs.rmSync(path.join(dir, key(1).slice(0, 2)), { recursive: true });
    await writeCacheEntry(cacheEntryFile(dir, key(1)), 4, 4, img);
    expect((await readCacheEntry(cacheEntryFile(dir, key(1))))!.img.data).to.deep.equal(img.data);
  });

  describe('in the pipeline', () => {
    let records: ImageRecord[];
    before(async () => {
      const dir = makeTempDir();
      records = [];
      for (let i = 0; i < 8; i++) {
        const f = path.join(dir, `img${i}.png`);
        const d = new Uint8Array(24 * 20 * 3).map((_, k) => (k * (i + 3)) % 256);
        await sharp(Buffer.from(d), { raw: { width: 24, height: 20, channels: 3 } }).png().toFile(f);
        records.push({ id: `img${i}`, path: f, label: i % 2, width: 24, height: 20, boxes: [], split: 'train' });
      }
    });
    const entryBytes = 20 + 16 * 16 * 3; // after 'resize:16x16'
    const opts: PipelineOptions = { batchSize: 4, transforms: ['resize:16x16', 'flip'], preprocess: 'caffe', workers: 0, concurrency: 1, prefetch: 0 };
    const run = async (o: PipelineOptions) => {
      const stream = batches(records, o);
      const pixels: number[][] = [];
      for await (const b of stream as AsyncIterable<Batch>) {
        pixels.push(Array.from(b.images.dataSync()));
        b.images.dispose();
      }
      return { stats: stream.stats, pixels };
    };

    it('stops adding entries once the folder is at its bound, and the entries it has are hits later', async () => {
      const cacheDir = makeTempDir();
      const bound = 3 * entryBytes;
      const first = await run({ ...opts, cacheDir, cacheMaxBytes: bound, epoch: 0 });
      expect(first.stats.cacheMisses).to.equal(8);
      const kept = entries(cacheDir);
      expect(kept.size).to.equal(3);
      expect([...kept.values()].reduce((a, b) => a + b, 0)).to.be.at.most(bound);
      const second = await run({ ...opts, cacheDir, cacheMaxBytes: bound, epoch: 0 });
      expect(second.stats.cacheHits).to.equal(3);
      expect(second.pixels).to.deep.equal(first.pixels); // a hit gives the same pixels as a decode
      expect(entries(cacheDir).size).to.equal(3);
    });

    it('a bound of 0 leaves the folder unused', async () => {
      const cacheDir = path.join(makeTempDir(), 'never');
      const r = await run({ ...opts, cacheDir, cacheMaxBytes: 0 });
      expect(r.stats.cacheHits + r.stats.cacheMisses).to.equal(0);
      expect(fs.existsSync(cacheDir)).to.equal(false);
    });
  });
});
