// A miniature CUB-200-2011 tree written by the tests: `perClass` images per class, half train / half test, each a
// coloured square (the object, with its exact box) on grey noise; class c has colour COLORS[c].
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { createRandom } from '../../src/train/rng.js';

const COLORS: [number, number, number][] = [[230, 40, 40], [40, 60, 230], [40, 200, 60], [220, 220, 40]];

export async function writeMiniCub(root: string, opts: { classes?: number; perClass?: number; size?: number; seed?: number } = {}): Promise<string> {
  const classes = opts.classes ?? 2, perClass = opts.perClass ?? 8, size = opts.size ?? 32;
  const rng = createRandom(`mini-cub-${opts.seed ?? 1}`);
  const dir = path.join(root, 'CUB_200_2011');
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const images: string[] = [], labels: string[] = [], split: string[] = [], boxes: string[] = [], names: string[] = [];
  let id = 0;
  for (let c = 0; c < classes; c++) {
    const cname = `${String(c + 1).padStart(3, '0')}.class_${c}`;
    names.push(`${c + 1} ${cname}`);
    fs.mkdirSync(path.join(dir, 'images', cname), { recursive: true });
    for (let k = 0; k < perClass; k++) {
      id++;
      const px = new Uint8Array(size * size * 3);
      for (let i = 0; i < px.length; i++) px[i] = 90 + Math.floor(rng() * 60);
      const side = Math.max(4, Math.floor(size * (0.3 + 0.3 * rng())));
      const x0 = Math.floor(rng() * (size - side)), y0 = Math.floor(rng() * (size - side));
      for (let y = y0; y < y0 + side; y++) for (let x = x0; x < x0 + side; x++) px.set(COLORS[c % COLORS.length], (y * size + x) * 3);
      const rel = `${cname}/img_${id}.png`;
      await sharp(Buffer.from(px), { raw: { width: size, height: size, channels: 3 } }).png().toFile(path.join(dir, 'images', rel));
      images.push(`${id} ${rel}`);
      labels.push(`${id} ${c + 1}`);
      split.push(`${id} ${k % 2 === 0 ? 1 : 0}`);
      boxes.push(`${id} ${x0} ${y0} ${side} ${side}`);
    }
  }
  const w = (f: string, lines: string[]) => fs.writeFileSync(path.join(dir, f), lines.join('\n') + '\n');
  w('images.txt', images);
  w('image_class_labels.txt', labels);
  w('train_test_split.txt', split);
  w('bounding_boxes.txt', boxes);
  w('classes.txt', names);
  return dir;
}
