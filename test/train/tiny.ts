// Tiny seeded models and data for the training tests (no files, no downloads).
import * as tf from '@tensorflow/tfjs';
import type { CamModel } from '../../src/models/types.js';
import { createRandom, withRandom } from '../../src/train/rng.js';
import { parseRecipe } from '../../src/recipes/loader.js';
import type { Recipe, RecipeInput } from '../../src/recipes/schema.js';

export const TINY_HEAD = ['cam_conv', 'predictions'];

/** input 8×8×3 → c1 (3×3/4) → pool → c2 (3×3/6) → cam_conv (3×3/8) → GAP → predictions (softmax). */
export async function tinyCam(seed = 7, classes = 2, opts: { dropout?: number; batchNorm?: boolean } = {}): Promise<CamModel> {
  return withRandom(createRandom(seed), () => {
    const input = tf.input({ shape: [8, 8, 3] });
    let x = tf.layers.conv2d({ name: 'c1', filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    if (opts.batchNorm) x = tf.layers.batchNormalization({ name: 'bn1' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ name: 'c2', filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ name: 'cam_conv', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
    if (opts.dropout) x = tf.layers.dropout({ name: 'drop', rate: opts.dropout }).apply(x) as tf.SymbolicTensor;
    const out = tf.layers.dense({ name: 'predictions', units: classes, activation: 'softmax' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out, name: 'tiny' });
    return {
      model,
      meta: {
        classNames: Array.from({ length: classes }, (_, i) => `class${i}`),
        preprocessing: 'unit',
        inputSize: [8, 8],
        headKind: 'gap-dense',
        featureLayer: 'cam_conv',
        poolingLayer: 'gap',
        classifierLayer: 'predictions',
        outputIsSoftmax: true,
        recipe: 'tiny',
      },
    } satisfies CamModel;
  });
}

/** n images 8×8×3: class 1 has a bright 2×2 square at a random place, class 0 is dim noise. */
export function tinySet(n: number, seed: number): { images: tf.Tensor4D; labels: Int32Array } {
  const rng = createRandom(`set${seed}`);
  const data = new Float32Array(n * 8 * 8 * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    labels[i] = label;
    for (let p = 0; p < 64 * 3; p++) data[i * 192 + p] = rng() * 0.3;
    if (label === 1) {
      const y = Math.floor(rng() * 7), x = Math.floor(rng() * 7);
      for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) for (let c = 0; c < 3; c++) data[i * 192 + ((y + dy) * 8 + x + dx) * 3 + c] = 1;
    }
  }
  return { images: tf.tensor4d(data, [n, 8, 8, 3]), labels };
}

export function tinyRecipe(over: Partial<RecipeInput> = {}): Recipe {
  return parseRecipe({
    model: { backbone: 'tiny' },
    data: { dataset: 'tiny', inputSize: 8, preprocessing: 'unit' },
    optimizer: { type: 'sgd', momentum: 0.9 },
    lr: 0.1,
    batchSize: 8,
    epochs: 2,
    seed: 3,
    ...over,
  }, 'test', 'tiny');
}

export async function weightsOf(model: tf.LayersModel): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const layer of model.layers) {
    for (const w of layer.weights) out.set(`${layer.name}/${w.originalName.split('/').pop()}`, (await w.read().data()) as Float32Array);
  }
  return out;
}
