// OpenCV's cv2.findContours(mode=RETR_TREE) + cv2.contourArea + cv2.boundingRect, as wsolevaluation uses them to turn
// a binarised score map into boxes (evaluation.py, compute_bboxes_from_scoremaps). Written here because no npm
// package reproduces OpenCV's contour semantics (opencv.js is an 8 MB wasm build we would load for one function,
// and the pure-JS contour tracers on npm differ in hole handling and contour order).
//
// The algorithm is Suzuki & Abe's border following ("Topological structural analysis of digitized binary images by
// border following", 1985), as OpenCV implements it:
//  * the image is padded with one background pixel on every side (OpenCV ≥ 3 copies it with copyMakeBorder), so
//    foreground pixels on the image edge have borders like any other;
//  * foreground is 8-connected, background 4-connected; a raster scan starts an OUTER border at a foreground pixel
//    whose left neighbour is background and that is still unmarked (1), a HOLE border at a foreground pixel whose right
//    neighbour is background and that is not marked as a right edge (value ≥ 1);
//  * a border is followed clockwise-first from the start (OpenCV's chain directions 0 = +x, 2 = −y, counter-clockwise),
//    each pixel marked −NBD when its right neighbour was examined and is background, else NBD if it was 1;
//  * the parent of a border is the border of the last marked pixel met on the scan line (LNBD) if the two differ in
//    kind, else that border's parent (Suzuki's table 1);
//  * the output order is OpenCV's: the contour tree flattened depth first (a contour, then its children), with
//    siblings in REVERSE order of discovery (cvInsertNodeIntoTree puts a new contour first among its siblings). The
//    order decides `max(contours, key=cv2.contourArea)` between contours of equal area (Python's max keeps the first).
// cv2.contourArea is the absolute shoelace area of the contour's points (pixel centres in trace order); removing the
// collinear points, as CHAIN_APPROX_SIMPLE does, does not change it, so every traced pixel is kept here. A one-pixel
// contour, or a one-pixel-wide line, has area 0. cv2.boundingRect is [min x, min y, max x − min x + 1, …].
// test/eval/wsolevaluation.test.ts checks all of it against OpenCV's own output (fixtures/wsolevaluation.json).

export interface Contour {
  /** Outer border of a component, or border of a hole inside one. */
  isHole: boolean;
  /** Index (in the returned list) of the enclosing contour, −1 at the top level. */
  parent: number;
  /** cv2.contourArea: |shoelace area| of the traced pixel centres. */
  area: number;
  /** cv2.boundingRect: x, y, width, height (pixels, width = max x − min x + 1). */
  rect: [number, number, number, number];
  /** The traced pixels (x, y pairs) in trace order, starting at the scan's start pixel. */
  points: Int32Array;
}

// OpenCV's chain code directions: 0 = (+1, 0), 1 = (+1, −1), 2 = (0, −1), 3 = (−1, −1), 4 = (−1, 0), 5 = (−1, +1),
// 6 = (0, +1), 7 = (+1, +1): counter-clockwise on screen (y down).
const DX = [1, 1, 0, -1, -1, -1, 0, 1];
const DY = [0, -1, -1, -1, 0, 1, 1, 1];

interface Traced {
  isHole: boolean;
  parentId: number; // border id (NBD) of the parent, 1 = the frame
  points: number[];
}

/**
 * cv2.findContours(binary, RETR_TREE, CHAIN_APPROX_SIMPLE) for a mask (non-zero = foreground), with each contour's
 * contourArea and boundingRect, in OpenCV's output order.
 */
export function findContours(mask: Uint8Array, width: number, height: number): Contour[] {
  if (mask.length !== width * height) throw new Error(`findContours: mask has ${mask.length} values, expected ${width}×${height}`);
  const W = width + 2;
  const H = height + 2;
  // padded label image: 0 background, 1 unvisited foreground, ±NBD borders (NBD ≥ 2)
  const f = new Int32Array(W * H);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (mask[y * width + x]) f[(y + 1) * W + x + 1] = 1;
  const off = DX.map((dx, k) => DY[k] * W + dx);

  // borders by NBD (index NBD − 2); the frame is NBD 1, a hole
  const borders: Traced[] = [];
  const kindOf = (nbd: number): boolean => (nbd === 1 ? true : borders[nbd - 2].isHole);
  const parentOf = (nbd: number): number => (nbd === 1 ? 1 : borders[nbd - 2].parentId);
  let nbd = 1;

  for (let y = 1; y < H - 1; y++) {
    let lnbd = 1;
    for (let x = 1; x < W - 1; x++) {
      const i = y * W + x;
      const v = f[i];
      if (v === 0) continue;
      let isHole: boolean;
      let from: number; // direction of the background neighbour the search starts from
      if (v === 1 && f[i - 1] === 0) {
        isHole = false;
        from = 4;
      } else if (v >= 1 && f[i + 1] === 0) {
        isHole = true;
        from = 0;
        if (v > 1) lnbd = v;
      } else {
        if (v !== 1) lnbd = Math.abs(v);
        continue;
      }
      nbd++;
      const parentId = kindOf(lnbd) === isHole ? parentOf(lnbd) : lnbd;
      const points: number[] = [];
      traceBorder(f, off, W, i, from, nbd, points);
      borders.push({ isHole, parentId, points });
      if (f[i] !== 1) lnbd = Math.abs(f[i]);
    }
  }

  // children in discovery order; OpenCV lists siblings newest first, depth first
  const children = new Map<number, number[]>();
  borders.forEach((b, k) => {
    const list = children.get(b.parentId) ?? [];
    list.push(k + 2);
    children.set(b.parentId, list);
  });
  const out: Contour[] = [];
  const visit = (id: number, parent: number): void => {
    const b = borders[id - 2];
    const index = out.length;
    out.push(contourOf(b, parent));
    const kids = children.get(id) ?? [];
    for (let k = kids.length - 1; k >= 0; k--) visit(kids[k], index);
  };
  const top = children.get(1) ?? [];
  for (let k = top.length - 1; k >= 0; k--) visit(top[k], -1);
  return out;
}

/** Suzuki's steps 3.1–3.5 from the start pixel `i0`; `from` is the direction of its background neighbour. Pushes the
 *  traced pixels (unpadded x, y) into `points` and marks the border in `f`. */
function traceBorder(f: Int32Array, off: number[], W: number, i0: number, from: number, nbd: number, points: number[]): void {
  const push = (i: number): void => {
    points.push((i % W) - 1, Math.floor(i / W) - 1);
  };
  // 3.1: clockwise from `from`, the first foreground neighbour
  let s = from;
  let i1 = -1;
  do {
    s = (s - 1) & 7;
    if (f[i0 + off[s]] !== 0) {
      i1 = i0 + off[s];
      break;
    }
  } while (s !== from);
  if (i1 < 0) {
    // an isolated pixel
    f[i0] = -nbd;
    push(i0);
    return;
  }
  let i3 = i0;
  for (;;) {
    // 3.3: counter-clockwise from the direction after the previous pixel, the first foreground neighbour
    const sEnd = s;
    let i4 = -1;
    let k = s;
    let eastSeenZero = false;
    for (;;) {
      k++;
      const d = k & 7;
      const j = i3 + off[d];
      if (f[j] !== 0) {
        i4 = j;
        s = d;
        break;
      }
      if (d === 0) eastSeenZero = true;
      if (k - sEnd > 8) throw new Error('findContours: border following lost its way'); // cannot happen (i1 exists)
    }
    // 3.4: mark the pixel
    if (eastSeenZero) f[i3] = -nbd;
    else if (f[i3] === 1) f[i3] = nbd;
    push(i3);
    // 3.5: back at the start, about to repeat the first step
    if (i4 === i0 && i3 === i1) break;
    i3 = i4;
    s = (s + 4) & 7;
  }
}

function contourOf(b: Traced, parent: number): Contour {
  const p = b.points;
  const n = p.length / 2;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  let twice = 0;
  for (let k = 0; k < n; k++) {
    const x = p[2 * k], y = p[2 * k + 1];
    if (x < minX) minX = x;
    if (x > maxX) maxX = x;
    if (y < minY) minY = y;
    if (y > maxY) maxY = y;
    const q = ((k === 0 ? n : k) - 1) * 2;
    twice += p[q] * y - p[q + 1] * x;
  }
  return {
    isHole: b.isHole,
    parent,
    area: Math.abs(twice) / 2,
    rect: [minX, minY, maxX - minX + 1, maxY - minY + 1],
    points: Int32Array.from(p),
  };
}
