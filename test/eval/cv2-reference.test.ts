// gapcam's threshold sweep against an independent implementation: OpenCV's connected components, run by
// fixtures/make-cv2-reference.py on the same maps (wsolevaluation's uint8 binarisation, tight inclusive boxes).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import type { Box } from '../../src/data/types.js';
import { resizeMapping } from '../../src/eval/boxes.js';
import { MaxBoxAccEvaluator, camThresholds } from '../../src/eval/localization.js';

interface Reference {
  maps: { width: number; height: number; float32le: string }[];
  gtBoxes: Box[][];
  cc: Record<'largest' | 'all', Record<'30' | '50' | '70', number[]>>;
  wsol: Record<'largest' | 'all', Record<'30' | '50' | '70', number[]>>;
}

const ref = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cv2-reference.json'), 'utf8')) as Reference;

describe('eval: the sweep against OpenCV (cv2-reference.json)', () => {
  before(useEngine);

  for (const boxes of ['largest', 'all'] as const) {
    it(`per-τ box accuracy at IoU .3/.5/.7 equals OpenCV connected components exactly ('${boxes}')`, () => {
      const ev = new MaxBoxAccEvaluator({ thresholds: camThresholds(0.01), iouThresholds: [0.3, 0.5, 0.7], boxes });
      ref.maps.forEach((m, i) => {
        const buf = Buffer.from(m.float32le, 'base64');
        const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
        ev.accumulate({ data, width: m.width, height: m.height }, ref.gtBoxes[i], resizeMapping(m, m.width, m.height));
      });
      const r = ev.compute();
      expect(r.count).to.equal(ref.maps.length);
      (['30', '50', '70'] as const).forEach((d, k) => {
        r.perIou[k].accuracies.forEach((a, t) => expect(a, `IoU .${d} τ=${t / 100}`).to.be.closeTo(ref.cc[boxes][d][t], 1e-9));
      });
    });
  }
});
