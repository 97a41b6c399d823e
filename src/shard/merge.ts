// `gapcam merge`: the parts of a sharded run → the output the unsharded run writes. The parts are collected and
// checked once (src/shard/part.ts); each kind of output has one merger (a file of its own and one line below).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { collectParts, type Part, type PartKind } from './part.js';

export interface MergeResult {
  kind: PartKind;
  out: string;
  parts: number;
  images: number;
  /** Lines for the command's summary. */
  lines: string[];
}

type Merger = (parts: readonly Part[], out: string) => Promise<Omit<MergeResult, 'kind' | 'out' | 'parts'>>;

const MERGERS: Record<PartKind, () => Promise<Merger>> = {
  features: async () => {
    const { mergeFeatureParts } = await import('../features/merge.js');
    return async (parts, out) => {
      const r = await mergeFeatureParts(parts, out);
      return { images: r.count, lines: [`${r.count} × ${r.dimension} features (${r.files.join(', ')})`] };
    };
  },
  evaluation: async () => (await import('../eval/merge.js')).mergeEvaluationParts,
  cam: async () => (await import('../cam/merge.js')).mergeCamParts,
};

/** Where the merged output goes by default: the folder the parts are in (the --out every shard was given). */
function defaultOut(inputs: readonly string[], parts: readonly Part[]): string {
  const parents = [...new Set(parts.map((p) => path.dirname(p.dir)))];
  if (parents.length === 1) return parents[0];
  if (inputs.length === 1) return path.resolve(inputs[0]);
  throw new UserError(`merge: the parts are in ${parents.length} different folders; name the output folder with --out`);
}

export async function mergeParts(inputs: readonly string[], options: { out?: string } = {}): Promise<MergeResult> {
  const parts = collectParts(inputs);
  const out = path.resolve(options.out ?? defaultOut(inputs, parts));
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new UserError(`--out ${options.out ?? out}: expected a folder, found a file`);
  await fs.promises.mkdir(out, { recursive: true });
  const kind = parts[0].manifest.kind;
  const merger = await MERGERS[kind]();
  const r = await merger(parts, out);
  return { kind, out, parts: parts.length, ...r };
}
