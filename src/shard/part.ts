// A part: what one shard of a sharded run writes, in its own folder <out>/shard-<i>-of-<n>/ (every shard of an array
// job runs the same command line, so they share --out). A part is self-describing: part.json names the kind of
// output, the shard, the dataset positions and image ids it covers, the settings, the fingerprint of model + dataset
// + options, and the size and sha256 of each data file.
//
// Complete or absent: the part is filled in a temporary folder, part.json is written last, and the folder is renamed
// into place (src/util/atomic.ts), so a crashed shard leaves only a dot-named temporary folder, never a part; a
// re-run shard swaps in its new folder and touches no other shard's part. Reading checks every listed file's size
// and hash, so a part damaged or half-copied afterwards is refused as well.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.js';
import { resolveAtomicDir, writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { type Fingerprint, sha256File } from './fingerprint.js';
import { PART_FOLDER_PATTERN, partFolderName, type ShardSpec } from './spec.js';

export const PART_MANIFEST = 'part.json';
export const PART_KINDS = ['features', 'evaluation', 'cam'] as const;
export type PartKind = (typeof PART_KINDS)[number];

export interface PartManifest {
  format: 'gapcam-part';
  version: 1;
  kind: PartKind;
  shard: { index: number; count: number; source: string };
  /** Dataset-order positions [start, end) of the selection of `total` images, and the ids in order. */
  images: { total: number; start: number; end: number; count: number; firstId: string | null; lastId: string | null; idsSha256: string };
  fingerprint: Fingerprint;
  /** The settings the part was made with (for people; the options fingerprint is what the merge compares). */
  settings: Record<string, unknown>;
  /** Data files of the part (relative paths) → size and sha256. */
  files: Record<string, { bytes: number; sha256: string }>;
  createdAt: string;
  host: string;
  pid: number;
}

export type PartHeader = Pick<PartManifest, 'kind' | 'images' | 'fingerprint' | 'settings'>;

export interface Part {
  dir: string;
  manifest: PartManifest;
}

/** The folder of shard `spec`'s part under the shared output folder. */
export function partDir(out: string, spec: Pick<ShardSpec, 'index' | 'count'>): string {
  return path.join(path.resolve(out), partFolderName(spec));
}

/** Fills the part in a temporary folder (`fill` returns the data files to list), writes part.json last, swaps the
 *  folder into place. Returns the part's folder. */
export async function writePart(out: string, spec: ShardSpec, header: PartHeader, fill: (tmp: string) => Promise<string[]>): Promise<string> {
  const dir = partDir(out, spec);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: is a file; expected the folder that holds the shards' parts`);
  await writeDirAtomic(dir, async (tmp) => {
    const listed = await fill(tmp);
    const files: PartManifest['files'] = {};
    for (const rel of listed) files[rel] = { bytes: fs.statSync(path.join(tmp, rel)).size, sha256: sha256File(path.join(tmp, rel)) };
    const manifest: PartManifest = {
      format: 'gapcam-part', version: 1, ...header,
      shard: { index: spec.index, count: spec.count, source: spec.source },
      files, createdAt: new Date().toISOString(), host: os.hostname(), pid: process.pid,
    };
    await writeFileAtomic(path.join(tmp, PART_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  });
  return dir;
}

/** Reads and checks one part folder; undefined when it has no part.json. */
export function readPart(dir: string, options: { verifyHashes?: boolean } = {}): Part | undefined {
  const file = path.join(dir, PART_MANIFEST);
  if (!fs.existsSync(file)) return undefined;
  let m: PartManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as PartManifest;
  } catch (err) {
    throw new UserError(`${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (m.format !== 'gapcam-part' || !(PART_KINDS as readonly string[]).includes(m.kind)) throw new UserError(`${file}: not a gapcam part manifest (format '${String(m.format)}', kind '${String(m.kind)}')`);
  for (const [rel, want] of Object.entries(m.files)) {
    const p = path.join(dir, rel);
    const size = fs.existsSync(p) ? fs.statSync(p).size : -1;
    if (size !== want.bytes) throw new UserError(`${p}: part file ${size < 0 ? 'is missing' : `has ${size} bytes, part.json says ${want.bytes}`}: the part is damaged or half-copied; re-run shard ${m.shard.index}/${m.shard.count}`);
    if (options.verifyHashes !== false && sha256File(p) !== want.sha256) throw new UserError(`${p}: content differs from the sha256 in part.json: the part is damaged; re-run shard ${m.shard.index}/${m.shard.count}`);
  }
  return { dir, manifest: m };
}

/** The part folders a merge argument names: the folder itself when it is a part, else its shard-*-of-* folders. */
function expand(given: string): Part[] {
  const dir = path.resolve(given);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${given}: not a folder (expected a part folder shard-<i>-of-<n> or a folder holding them)`);
  const own = readPart(dir);
  if (own) return [own];
  if (PART_FOLDER_PATTERN.test(path.basename(dir))) throw new UserError(`${given}: not a complete part (no ${PART_MANIFEST}: the shard is still running or crashed; re-run it)`);
  // A re-run interrupted between its two renames leaves the previous complete part as <name>.old (resolveAtomicDir).
  const names = [...new Set(fs.readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory()).map((e) => e.name.replace(/\.old$/, '')).filter((n) => PART_FOLDER_PATTERN.test(n)))].sort();
  const parts: Part[] = [];
  for (const name of names) {
    const part = readPart(resolveAtomicDir(path.join(dir, name)) as string);
    if (!part) throw new UserError(`${path.join(given, name)}: not a complete part (no ${PART_MANIFEST}: the shard is still running or crashed; re-run it)`);
    parts.push(part);
  }
  if (parts.length === 0) throw new UserError(`${given}: holds no shard parts (expected folders shard-<i>-of-<n> written by a command run with --shard)`);
  return parts;
}

const short = (h: string): string => h.slice(0, 12);

/** All parts of one sharded run, in shard order, checked: one kind, one fingerprint, one shard count, every shard
 *  exactly once, positions that tile the selection. Each refusal is one line naming the parts involved. */
export function collectParts(inputs: readonly string[]): Part[] {
  if (inputs.length === 0) throw new UserError('merge: name the part folders, or the folder holding them');
  const parts = inputs.flatMap(expand);
  const first = parts[0];
  const m0 = first.manifest;
  for (const p of parts.slice(1)) {
    const m = p.manifest;
    if (m.kind !== m0.kind) throw new UserError(`merge: ${first.dir} holds ${m0.kind} but ${p.dir} holds ${m.kind}; merge parts of one command`);
    for (const what of ['model', 'dataset', 'options'] as const) {
      if (m.fingerprint[what] !== m0.fingerprint[what]) {
        throw new UserError(`merge: ${first.dir} and ${p.dir} were made with different ${what === 'options' ? 'options' : `${what}s`} (${what} fingerprint ${short(m0.fingerprint[what])}… vs ${short(m.fingerprint[what])}…); re-run the odd shards with the same command`);
      }
    }
    if (m.shard.count !== m0.shard.count) throw new UserError(`merge: ${first.dir} is a shard of ${m0.shard.count} but ${p.dir} a shard of ${m.shard.count}; merge the parts of one run`);
  }
  const n = m0.shard.count;
  const byIndex = new Map<number, Part>();
  for (const p of parts) {
    const i = p.manifest.shard.index;
    const seen = byIndex.get(i);
    if (seen) throw new UserError(`merge: shard ${i} of ${n} given twice: ${seen.dir} and ${p.dir}`);
    byIndex.set(i, p);
  }
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length) {
    const list = missing.length > 10 ? `${missing.slice(0, 10).join(', ')}, … (${missing.length} in all)` : missing.join(', ');
    throw new UserError(`merge: shard${missing.length > 1 ? 's' : ''} ${list} of ${n} ${missing.length > 1 ? 'are' : 'is'} missing (have ${byIndex.size} of ${n} parts); run ${missing.length > 1 ? 'them' : 'it'} first`);
  }
  const ordered = Array.from({ length: n }, (_, i) => byIndex.get(i) as Part);
  let next = 0;
  for (const p of ordered) {
    const im = p.manifest.images;
    if (im.total !== m0.images.total || im.start !== next) throw new UserError(`merge: ${p.dir} covers positions ${im.start}..${im.end} of ${im.total}, expected to start at ${next} of ${m0.images.total}`);
    next = im.end;
  }
  if (next !== m0.images.total) throw new UserError(`merge: the parts cover ${next} of ${m0.images.total} images`);
  return ordered;
}
