// CAM pictures with sharp: a heat map blended over the photo at the photo's own size, boxes drawn with raw pixel
// ops, and the paper-style strip of the top-5 classes' CAMs with names and scores (SVG text composited by sharp).
import sharp from 'sharp';
import type { DecodedImage } from '../data/image.js';
import type { ColormapName } from './colormap.js';
import { blend, drawBoxes, type DrawnBox } from './blend.js';

export { CAM_BOX_COLOR, GT_BOX_COLOR, blend, boxThickness, drawBoxes, mapToSize, type DrawnBox, type Rgb } from './blend.js';

export interface OverlayOptions {
  colormap?: ColormapName;
  /** Weight of the heat map in the blend, 0..1 (default 0.5). */
  opacity?: number;
  boxes?: DrawnBox[];
}

function rawSharp(data: Uint8Array, width: number, height: number): sharp.Sharp {
  return sharp(Buffer.from(data.buffer, data.byteOffset, data.byteLength), { raw: { width, height, channels: 3 } });
}

/** The overlay picture as PNG bytes, at the image's own size. `map` holds one value in [0, 1] per image pixel. */
export async function renderOverlay(image: DecodedImage, map: Float32Array, options: OverlayOptions = {}): Promise<Buffer> {
  const pixels = blend(image, map, options.colormap, options.opacity);
  if (options.boxes?.length) drawBoxes(pixels, image.width, image.height, options.boxes);
  return rawSharp(pixels, image.width, image.height).png({ compressionLevel: 4 }).toBuffer();
}

/** PNG bytes of an image (for the gallery's original). */
export async function renderImage(image: DecodedImage): Promise<Buffer> {
  return rawSharp(image.data, image.width, image.height).png({ compressionLevel: 4 }).toBuffer();
}

/** JPEG thumbnail bytes (max side `side`). */
export async function renderThumbnail(image: DecodedImage, side = 320): Promise<Buffer> {
  return rawSharp(image.data, image.width, image.height).resize(side, side, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 85 }).toBuffer();
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

export interface StripPanel {
  /** One value in [0, 1] per image pixel. */
  map: Float32Array;
  label: string;
  score: number;
}

export interface StripOptions {
  colormap?: ColormapName;
  opacity?: number;
  /** Height of each tile (default 224). */
  tileHeight?: number;
  /** Caption of the first tile (the photo itself); default 'input'. */
  title?: string;
}

/** The paper's figure: the photo, then one overlay per class with its name and score under it (PNG bytes). */
export async function renderStrip(image: DecodedImage, panels: StripPanel[], options: StripOptions = {}): Promise<Buffer> {
  const th = options.tileHeight ?? 224;
  const tw = Math.max(1, Math.round((image.width / image.height) * th));
  const gap = 6;
  const caption = 40;
  const tiles: Buffer[] = [await rawSharp(image.data, image.width, image.height).resize(tw, th, { fit: 'fill' }).png().toBuffer()];
  for (const p of panels) {
    tiles.push(await rawSharp(blend(image, p.map, options.colormap, options.opacity), image.width, image.height).resize(tw, th, { fit: 'fill' }).png().toBuffer());
  }
  const width = tiles.length * tw + (tiles.length + 1) * gap;
  const height = th + caption + 2 * gap;
  const fontSize = Math.max(11, Math.min(16, Math.round(tw / 14)));
  const texts = [`<text x="${gap + tw / 2}" y="${th + gap + 24}" text-anchor="middle">${escapeXml(options.title ?? 'input')}</text>`];
  panels.forEach((p, i) => {
    const x = gap + (i + 1) * (tw + gap) + tw / 2;
    const name = p.label.length > 28 ? p.label.slice(0, 27) + '…' : p.label;
    texts.push(`<text x="${x}" y="${th + gap + 18}" text-anchor="middle" font-weight="bold">${escapeXml(name)}</text>`);
    texts.push(`<text x="${x}" y="${th + gap + 35}" text-anchor="middle">${escapeXml(p.score.toFixed(3))}</text>`);
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><g font-family="DejaVu Sans, sans-serif" font-size="${fontSize}" fill="#111">${texts.join('')}</g></svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite([
      ...tiles.map((input, i) => ({ input, left: gap + i * (tw + gap), top: gap })),
      { input: Buffer.from(svg), left: 0, top: 0 },
    ])
    .png({ compressionLevel: 4 })
    .toBuffer();
}
