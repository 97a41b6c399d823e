// On-disk fixtures for the service and gallery tests: a tiny saved CAM model, a folder of images of different
// sizes, and a two-class VOC folder with boxes.
import fs from 'node:fs';
import path from 'node:path';
import { saveCamModel } from '../../src/models/meta.js';
import { encodePng } from '../../src/data/image.js';
import { tinyGapDense } from './tiny-models.js';

function pattern(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 3;
    data[i] = (x * 7 + seed * 31) % 256;
    data[i + 1] = (y * 5 + seed * 17) % 256;
    data[i + 2] = ((x ^ y) * 3 + seed) % 256;
  }
  return data;
}

/** A saved 3-class gap-dense model with 24×24 input (class names c0, c1, c2). */
export async function writeTinyModel(dir: string): Promise<string> {
  const cm = tinyGapDense({ size: 24, classes: 3, softmax: true });
  cm.meta.classNames = ['c0', 'c1', 'c2'];
  const out = path.join(dir, 'model');
  await saveCamModel(out, cm);
  return out;
}

/** Image files of different sizes (PNG), returned in name order. */
export async function writeImageFolder(dir: string, sizes: [number, number][]): Promise<string> {
  const folder = path.join(dir, 'images');
  fs.mkdirSync(folder, { recursive: true });
  for (const [i, [w, h]] of sizes.entries()) {
    fs.writeFileSync(path.join(folder, `img${i + 1}.png`), await encodePng({ data: pattern(w, h, i), width: w, height: h }));
  }
  return folder;
}

/** A VOC folder (images/ + annotations/) with `n` images, classes c0/c1 alternating, one box each. */
export async function writeVocFolder(dir: string, n: number): Promise<string> {
  const root = path.join(dir, 'voc');
  fs.mkdirSync(path.join(root, 'images'), { recursive: true });
  fs.mkdirSync(path.join(root, 'annotations'), { recursive: true });
  for (let i = 0; i < n; i++) {
    const w = 30 + 4 * i, h = 26 + 3 * i;
    const name = `p${i + 1}`;
    fs.writeFileSync(path.join(root, 'images', `${name}.png`), await encodePng({ data: pattern(w, h, i + 5), width: w, height: h }));
    fs.writeFileSync(path.join(root, 'annotations', `${name}.xml`), `<annotation><filename>${name}.png</filename><size><width>${w}</width><height>${h}</height><depth>3</depth></size>
<object><name>c${i % 2}</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>${w - 6}</xmax><ymax>${h - 5}</ymax></bndbox></object></annotation>`);
  }
  return root;
}
