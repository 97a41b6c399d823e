// Merging the parts of a sharded `gapcam cam` run: one gallery (index.html) and one cam.json over every shard, in
// shard order (= image order). The pictures stay in the part folders (a gallery of millions of images is not copied);
// the merged gallery links to them. Localization summaries are recomputed from the per-image IoUs, faithfulness
// metrics from the summed accumulators.
import fs from 'node:fs';
import path from 'node:path';
import type { Part } from '../shard/part.js';
import { writeFileAtomic } from '../util/atomic.js';
import { prepareOutFolder } from '../util/out-folder.js';
import { writeGallery } from '../render/gallery.js';
import { CAM_OUTPUT, camNotes, type CamImageResult, type CamReport, type CamRunSummary } from './service.js';
import { faithfulnessResult, sumFaithfulness } from './faithfulness.js';

export async function mergeCamParts(parts: readonly Part[], out: string): Promise<{ images: number; lines: string[] }> {
  const reports = parts.map((p) => JSON.parse(fs.readFileSync(path.join(p.dir, 'cam.json'), 'utf8')) as CamReport);
  const prepared = prepareOutFolder(out, { ...CAM_OUTPUT, rerun: 'replace' });
  // paths inside a part are relative to it; the merged gallery is in `out`
  const rel = (p: Part) => (file: string): string => path.join(path.relative(prepared.dir, p.dir), file);
  const images: CamImageResult[] = [];
  const cards = parts.flatMap((p, i) => {
    const at = rel(p);
    for (const r of reports[i].images) {
      images.push({
        ...r,
        methods: Object.fromEntries(Object.entries(r.methods).map(([m, e]) => [m, { ...e, overlays: e.overlays.map(at), ...(e.npy ? { npy: e.npy.map(at) } : {}) }])),
        ...(r.strip ? { strip: at(r.strip) } : {}),
      });
    }
    return reports[i].gallery.cards.map((c) => ({ ...c, original: at(c.original), overlays: c.overlays.map((o) => ({ ...o, path: at(o.path) })), ...(c.strip ? { strip: at(c.strip) } : {}) }));
  });
  const first = reports[0];
  const methods = first.summary.methods.map((m) => m.name);
  // per method: the first class's IoU of every image with GT boxes, in image order (as the unsharded run sums them)
  const ious = (m: string): number[] => images.flatMap((r) => (r.methods[m]?.iou === undefined ? [] : [r.methods[m].iou as number]));
  const withBoxes = methods.every((m) => ious(m).length > 0);
  const meanIou = withBoxes ? Object.fromEntries(methods.map((m) => [m, ious(m).reduce((a, b) => a + b, 0) / ious(m).length])) : undefined;
  const locAccuracy = withBoxes ? Object.fromEntries(methods.map((m) => [m, ious(m).filter((v) => v >= 0.5).length / ious(m).length])) : undefined;
  const faithfulness = first.faithfulness ? Object.fromEntries(methods.map((m) => [m, sumFaithfulness(reports.map((r) => (r.faithfulness as NonNullable<CamReport['faithfulness']>)[m]))])) : undefined;
  const metrics = faithfulness ? Object.fromEntries(methods.map((m) => [m, faithfulnessResult(faithfulness[m])])) : undefined;
  const info = { ...first.gallery.info, notes: camNotes(methods, meanIou, locAccuracy, metrics) };
  const gallery = await writeGallery(prepared.dir, info, cards);
  const summary: CamRunSummary = {
    out: prepared.dir, gallery, images: images.length,
    skipped: reports.flatMap((r) => r.summary.skipped),
    methods: first.summary.methods,
    ...(meanIou ? { meanIou, locAccuracy } : {}),
    ...(metrics ? { metrics } : {}),
    // the sum of the shards' times (they may have run in parallel)
    seconds: reports.reduce((t, r) => t + r.summary.seconds, 0),
  };
  const report: CamReport = {
    ...first, createdAt: new Date().toISOString(), summary, images,
    gallery: { info, cards },
    ...(faithfulness ? { faithfulness } : {}),
  };
  await writeFileAtomic(path.join(prepared.dir, 'cam.json'), JSON.stringify(report, null, 1) + '\n');
  return { images: images.length, lines: [`gallery: ${gallery}`, ...info.notes] };
}
