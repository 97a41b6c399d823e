// What a sharded run was made from, as three hashes every shard computes alike on any machine: the model's files
// (content, not paths or modification times: parts are made on different machines), the dataset selection (every
// selected record, before sharding, with paths relative to the dataset root) and the options that change results.
// The merge refuses parts whose fingerprints differ and names which of the three does.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ImageRecord } from '../data/types.js';

export interface Fingerprint {
  model: string;
  dataset: string;
  options: string;
}

const sha = (): crypto.Hash => crypto.createHash('sha256');

function hashFileInto(h: crypto.Hash, file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = fs.readSync(fd, buf); n > 0; n = fs.readSync(fd, buf)) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
}

/** sha256 of a file's bytes, read in chunks (a part's features.npy can be gigabytes). */
export function sha256File(file: string): string {
  const h = sha();
  hashFileInto(h, file);
  return h.digest('hex');
}

/** The model's identity: the bytes of its model files (a folder's model.json, weight shards, meta.json, classes.txt;
 *  a .h5 or model.json file and its folder's shards), or the URL / backbone name. */
export function modelFingerprint(source: string): string {
  const h = sha();
  let files: string[] = [];
  if (fs.existsSync(source)) {
    const st = fs.statSync(source);
    if (st.isDirectory()) files = fs.readdirSync(source).filter((f) => /\.(json|bin|h5|hdf5)$/i.test(f) || f === 'classes.txt').sort().map((f) => path.join(source, f));
    else if (/\.json$/i.test(source)) files = [source, ...fs.readdirSync(path.dirname(source)).filter((f) => f.endsWith('.bin')).sort().map((f) => path.join(path.dirname(source), f))];
    else files = [source];
  }
  if (files.length === 0) h.update(`ref:${source}`);
  for (const f of files) {
    h.update(`${path.basename(f)}\n`);
    hashFileInto(h, f);
  }
  return h.digest('hex').slice(0, 32);
}

/** The dataset selection: class names, then each record's id, path under the root, label, size, boxes and split. */
export function datasetSelectionFingerprint(root: string, classNames: readonly string[], records: readonly ImageRecord[]): string {
  const h = sha();
  h.update(JSON.stringify(classNames) + '\n');
  for (const r of records) {
    const rel = path.relative(root, r.path).split(path.sep).join('/');
    h.update(`${r.id}\t${rel}\t${r.label}\t${r.width}x${r.height}\t${r.boxes.map((b) => b.join(',')).join(';')}\t${r.split}\n`);
  }
  return h.digest('hex').slice(0, 32);
}

/** JSON with sorted keys, so that equal options hash alike whatever order they were built in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function optionsFingerprint(options: Record<string, unknown>): string {
  return sha().update(canonical(options)).digest('hex').slice(0, 32);
}

/** The hash of image ids in order (what a part covers). */
export function idsFingerprint(ids: readonly string[]): string {
  const h = sha();
  for (const id of ids) h.update(`${id}\n`);
  return h.digest('hex').slice(0, 32);
}
