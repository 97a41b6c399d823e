// Weight quantisation in the tfjs converter's format: the half-float encoder against known bit patterns, and the
// quantised manifests read back by TensorFlow.js's own loader (tf.io.decodeWeights, tf.loadLayersModel).
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import seedrandom from 'seedrandom';
import { expect } from 'chai';
import { useEngine, makeTempDir } from '../helpers.js';
import { float16Bits, quantizeUint8, quantizeWeights } from '../../src/models/quantize.js';
import { layersModelFiles, loadLayersModelFromDir } from '../../src/models/layers-io.js';

describe('models: weight quantisation (tfjs converter format)', () => {
  before(useEngine);

  it('float16: IEEE half bits, round to nearest even, overflow to Inf, subnormals', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400], [1e-8, 0x0000],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [v, bits] of cases) expect(float16Bits(v), `float16(${v})`).to.equal(bits);
    expect(float16Bits(NaN) & 0x7c00).to.equal(0x7c00);
    expect(float16Bits(NaN) & 0x3ff).to.not.equal(0);
  });

  it('uint8: the nudged range keeps 0 exact; a constant weight is all zeros with scale 1', () => {
    const q = quantizeUint8(new Float32Array([-1, -0.3, 0, 0.5, 2]));
    expect(q.scale).to.be.closeTo(3 / 255, 1e-12);
    const zero = Math.round(-q.min / q.scale);
    expect(zero * q.scale + q.min).to.equal(0);
    expect(q.values[2]).to.equal(zero);
    expect(q.values[0]).to.equal(0);
    const c = quantizeUint8(new Float32Array([0.7, 0.7, 0.7]));
    expect(Array.from(c.values)).to.deep.equal([0, 0, 0]);
    expect(c.min).to.be.closeTo(0.7, 1e-7);
    expect(c.scale).to.equal(1);
  });

  it("tfjs's loader reads quantised manifests back within the quantisation step; int32 weights are kept", () => {
    const rng = seedrandom('quantize');
    const a = Float32Array.from({ length: 300 }, () => (rng() - 0.3) * 4);
    a[17] = 0;
    const b = Int32Array.from({ length: 7 }, (_, i) => i * 1000 - 3000);
    const specs: tf.io.WeightsManifestEntry[] = [{ name: 'a', shape: [300], dtype: 'float32' }, { name: 'b', shape: [7], dtype: 'int32' }];
    const data = new Uint8Array(300 * 4 + 7 * 4);
    data.set(new Uint8Array(a.buffer), 0);
    data.set(new Uint8Array(b.buffer), 1200);
    for (const dtype of ['float16', 'uint8'] as const) {
      const q = quantizeWeights(specs, data, dtype);
      expect(q.data.byteLength).to.equal(300 * (dtype === 'uint8' ? 1 : 2) + 28);
      const back = tf.io.decodeWeights(q.data.slice().buffer, q.specs);
      const got = back.a.dataSync();
      const step = dtype === 'uint8' ? (q.specs[0].quantization?.scale as number) / 2 + 1e-6 : 0;
      for (let i = 0; i < a.length; i++) {
        const tol = dtype === 'uint8' ? step : Math.abs(a[i]) * 2 ** -11 + 2 ** -25;
        expect(Math.abs(got[i] - a[i]), `${dtype} weight ${i}`).to.be.at.most(tol);
      }
      expect(got[17], `${dtype}: 0 stays 0`).to.equal(0);
      expect(Array.from(back.b.dataSync())).to.deep.equal(Array.from(b));
      tf.dispose(Object.values(back));
    }
  });

  it('a model saved with quantised weights loads with tf.loadLayersModel and predicts nearly the same', async () => {
    const dir = makeTempDir('gapcam-quant-');
    try {
      const model = tf.sequential({ layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ] });
      const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 3);
      const want = (model.predict(x) as tf.Tensor).arraySync() as number[][];
      const sizes: Record<string, number> = {};
      for (const q of [undefined, 'float16', 'uint8'] as const) {
        const sub = path.join(dir, q ?? 'float32');
        fs.mkdirSync(sub);
        let bytes = 0;
        for (const [name, content] of await layersModelFiles(model, { quantization: q })) {
          fs.writeFileSync(path.join(sub, name), content);
          if (name !== 'model.json') bytes += content.length;
        }
        sizes[q ?? 'float32'] = bytes;
        const loaded = await loadLayersModelFromDir(sub);
        const got = (loaded.predict(x) as tf.Tensor).arraySync() as number[][];
        const tol = q === 'uint8' ? 2e-2 : q === 'float16' ? 2e-3 : 0;
        got.flat().forEach((v, i) => expect(Math.abs(v - want.flat()[i]), `${q ?? 'float32'} output ${i}`).to.be.at.most(tol));
        loaded.dispose();
      }
      const params = model.countParams();
      expect(sizes).to.deep.equal({ float32: params * 4, float16: params * 2, uint8: params });
      x.dispose();
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
