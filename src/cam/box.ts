// The CAM box as `gapcam cam` and `gapcam evaluate` compute it, for library users: the raw map (feature-map grid,
// unnormalised) upsampled bilinearly to the model input (half-pixel centres, as upsampleMaps), the paper's rule on
// the upsampled raw values (keep ≥ fraction · max, largest connected component), the box mapped to the original
// image. Boxing the raw 14×14 grid directly (ruleBoxes/ruleIou on the small map) gives coarser, different boxes:
// on kangaroo/00001 with darknet-tiny's wallaby CAM, IoU 0.511 on the grid against 0.610 here and in the CLI.
import type { Box } from '../data/types.js';
import { mapBoxToOriginal, resizeMapping, type GridMapping, type ScoreMap } from '../eval/boxes.js';
import { DEFAULT_CAM_BOX_FRACTION, ruleBoxes, type RuleOptions } from '../eval/localization.js';
import { resizeBilinearArray } from './class-maps.js';

export { DEFAULT_CAM_BOX_FRACTION };

/** Every box of the rule (one with the default 'largest'), in original-image pixels (inclusive corners). `image`
 *  is the original size (a plain stretching resize to the input, as the CLI does) or a GridMapping of the input
 *  grid (e.g. after a centre crop). */
export function camBoxes(raw: ScoreMap, inputSize: readonly [number, number], image: { width: number; height: number } | GridMapping,
  options: RuleOptions = {}): Box[] {
  const [H, W] = inputSize;
  const up = raw.width === W && raw.height === H ? raw.data : resizeBilinearArray(raw.data, raw.height, raw.width, H, W);
  const mapping = 'scaleX' in image ? image : resizeMapping(image, W, H);
  return ruleBoxes({ data: up, width: W, height: H }, { fraction: DEFAULT_CAM_BOX_FRACTION, normalization: 'max', ...options })
    .map((b) => mapBoxToOriginal(b, mapping));
}

/** The CAM box (see the file comment), or undefined when no part of the map is positive. */
export function camBox(raw: ScoreMap, inputSize: readonly [number, number], image: { width: number; height: number } | GridMapping,
  options: RuleOptions = {}): Box | undefined {
  return camBoxes(raw, inputSize, image, options)[0];
}
