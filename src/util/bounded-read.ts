// Reading the text files a user points gapcam at (manifests, annotation XML, label lists, model.json) with a size
// cap: a link to /dev/zero, a FIFO or a multi-GB file given by mistake is refused in one line instead of being read
// until memory runs out. Written here because Node's readFile has no size limit (it reads a device until EOF).
import fs from 'node:fs';
import { UserError } from '../errors.js';
import { withPath } from './atomic.js';

/** Caps by kind of file (bytes). */
export const READ_LIMITS = {
  /** CSV manifests and CUB tables: ImageNet's 1.28 M lines fit in well under this. */
  manifest: 512 * 1024 * 1024,
  /** One Pascal VOC annotation (a few KB). */
  annotation: 16 * 1024 * 1024,
  /** Class-name lists (classes.txt, --classes files, VOC ImageSets). */
  labels: 64 * 1024 * 1024,
  /** model.json / meta.json / recipes (topology only; weights are in the shards). */
  json: 64 * 1024 * 1024,
} as const;

function mib(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MiB`;
}

/** The bytes of `file`, refusing (one-line UserError naming `what` and the file) anything that is not a regular file
 *  or holds more than `limit` bytes. Reads at most limit + 1 bytes whatever the file claims to be. */
export function readFileBounded(file: string, what: string, limit: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${what} not found: ${file}`);
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw withPath(Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: 'EISDIR', syscall: 'read' }), file);
    if (!st.isFile()) throw new UserError(`${what} ${file} is not a regular file (a device, pipe or socket); expected a text file`);
    if (st.size > limit) throw new UserError(`${what} ${file} is ${mib(st.size)}, more than the ${mib(limit)} a ${what} may have`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(1 << 20, limit + 1 - total));
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        throw withPath(err, file);
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      // a file that grows while read (or lies about its size) is cut here
      if (total > limit) throw new UserError(`${what} ${file} holds more than the ${mib(limit)} a ${what} may have`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    fs.closeSync(fd);
  }
}

/** readFileBounded as UTF-8 text. */
export function readTextBounded(file: string, what: string, limit: number): string {
  return readFileBounded(file, what, limit).toString('utf8');
}
