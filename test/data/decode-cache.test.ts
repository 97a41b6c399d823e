import { expect } from 'chai';
import { DecodeCache, decodeCacheBytes, DEFAULT_DECODE_CACHE_MB, type CachedDecode } from '../../src/data/decode-cache.js';
import { UserError } from '../../src/errors.js';

/** A cached decode of `bytes` pixel bytes (1 row of bytes/3 pixels). */
function entry(bytes: number): CachedDecode {
  return { srcWidth: 10, srcHeight: 10, img: { data: new Uint8Array(bytes), width: bytes / 3, height: 1 } };
}

describe('data/decode-cache', () => {
  it('never holds more bytes than its bound, evicting the least recently used entries first', () => {
    const cache = new DecodeCache(300);
    cache.set('a', entry(120));
    cache.set('b', entry(120));
    expect(cache.bytes).to.equal(240);
    expect(cache.get('a')).to.not.equal(undefined); // 'a' is now more recent than 'b'
    cache.set('c', entry(120)); // 360 > 300: 'b' goes
    expect([cache.get('b'), cache.size, cache.bytes]).to.deep.equal([undefined, 2, 240]);
    expect(cache.get('a')).to.not.equal(undefined);
    expect(cache.get('c')).to.not.equal(undefined);
    cache.set('d', entry(300)); // fills the bound alone: everything else goes
    expect([cache.size, cache.bytes, !!cache.get('d')]).to.deep.equal([1, 300, true]);
    cache.set('e', entry(301)); // larger than the bound: not kept, nothing evicted for it
    expect([cache.size, cache.bytes, cache.get('e')]).to.deep.equal([1, 300, undefined]);
    cache.set('d', entry(30)); // replacing an entry counts its new size only
    expect(cache.bytes).to.equal(30);
    cache.clear();
    expect([cache.size, cache.bytes]).to.deep.equal([0, 0]);
  });

  it('the bound stays respected over a long random sequence of inserts and reads', () => {
    const cache = new DecodeCache(1000);
    let x = 7;
    const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const sizes = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const key = `k${Math.floor(rnd() * 40)}`;
      if (rnd() < 0.5) {
        const size = 3 * (1 + Math.floor(rnd() * 150));
        cache.set(key, entry(size));
        sizes.set(key, size);
      } else {
        const e = cache.get(key);
        if (e) expect(e.img.data.byteLength).to.equal(sizes.get(key));
      }
      expect(cache.bytes).to.be.at.most(1000);
    }
  });

  it('GAPCAM_DECODE_CACHE_MB sets the bound in MiB (0 turns the cache off); anything else is a one-line error', () => {
    expect(decodeCacheBytes({})).to.equal(DEFAULT_DECODE_CACHE_MB * 2 ** 20);
    expect(decodeCacheBytes({ GAPCAM_DECODE_CACHE_MB: '64' })).to.equal(64 * 2 ** 20);
    expect(decodeCacheBytes({ GAPCAM_DECODE_CACHE_MB: '0' })).to.equal(0);
    expect(() => decodeCacheBytes({ GAPCAM_DECODE_CACHE_MB: 'lots' })).to.throw(UserError, /GAPCAM_DECODE_CACHE_MB.*'lots'/);
    expect(() => decodeCacheBytes({ GAPCAM_DECODE_CACHE_MB: '-1' })).to.throw(UserError);
  });
});
