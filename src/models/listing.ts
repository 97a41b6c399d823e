// `gapcam models`: the registered backbones (as timm's list_models, with the facts a CAM user needs: parameters up
// to the default cut, where the GAP head attaches, the CAM resolution at 224×224, preprocessing, where weights come
// from), and the Keras application families recognised in model files of one's own.
import type * as tf from '@tensorflow/tfjs';
import { BACKBONES, BACKBONE_NAMES, type BackboneName } from './registry.js';
import { KERAS_APPLICATIONS } from './keras-apps.js';
import { describePreprocessing } from '../data/preprocess-modes.js';

export interface BackboneListing {
  name: BackboneName;
  description: string;
  /** Parameters of the backbone without its classifier top (undefined when it cannot be built without weights). */
  params?: number;
  cutLayer: string;
  featureChannels: number;
  /** [h, w] of the CAM (the feature map at the cut) for a 224×224 input. */
  camAt224: [number, number];
  preprocessing: string;
  weightSource: string;
}

/** Every registered backbone; parameters counted by building it without its top (random weights, then disposed). */
export async function listBackbones(): Promise<BackboneListing[]> {
  const rows: BackboneListing[] = [];
  for (const name of BACKBONE_NAMES) {
    const spec = BACKBONES[name];
    let params: number | undefined;
    if (!('needsWeights' in spec && spec.needsWeights)) {
      const model: tf.LayersModel = await spec.build({ includeTop: false, inputShape: [224, 224, 3] });
      params = model.countParams();
      model.dispose();
    }
    const side = Math.floor(224 / spec.featureStride);
    rows.push({
      name, description: spec.description, ...(params !== undefined ? { params } : {}), cutLayer: spec.defaultCutLayer,
      featureChannels: spec.featureChannels, camAt224: [side, side], preprocessing: describePreprocessing(spec.preprocessing), weightSource: spec.weightSource,
    });
  }
  return rows;
}

/** The table `gapcam models` prints, then the Keras families recognised in model files. */
export function formatBackboneListing(rows: BackboneListing[]): string {
  const head = ['backbone', 'params', 'cut layer (channels)', 'CAM @224', 'preprocessing', 'weights'];
  const cells = rows.map((r) => [r.name, r.params === undefined ? '—' : r.params.toLocaleString('en-US'), `${r.cutLayer} (${r.featureChannels})`,
    `${r.camAt224[0]}×${r.camAt224[1]}`, r.preprocessing, r.weightSource]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => (i === 1 ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  if (rows.some((r) => r.params === undefined)) out.push('— : built from its weights folder; `gapcam model summary <name> --weights <folder>` counts them');
  out.push('', 'Model files of your own (.keras, .h5, tfjs model.json; a recipe\'s "backbone": "path/model.keras") are recognised as these',
    'Keras applications, which sets their default cut layer and preprocessing (else give cutAt and data.preprocessing):');
  for (const a of KERAS_APPLICATIONS) out.push(`  ${a.family.padEnd(18)} ${a.preprocessing.padEnd(6)} cut ${a.cutLayer ?? '(give cutAt)'}`);
  return out.join('\n') + '\n';
}
