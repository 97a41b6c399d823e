// NumPy .npy (format version 1.0) for float32 arrays, so maps and features open with numpy.load.
// Written here because the format is a 10-line header plus raw little-endian data; no npm package does just this
// for Node buffers without pulling in a whole ndarray stack.
import fs from 'node:fs';
import { withPath, writeFileAtomic } from './atomic.js';
import { UserError } from '../errors.js';

export function encodeNpy(data: Float32Array, shape: number[]): Buffer {
  const expected = shape.reduce((a, b) => a * b, 1);
  if (expected !== data.length) throw new Error(`npy: shape ${shape.join('x')} needs ${expected} values, got ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export async function writeNpy(file: string, data: Float32Array, shape: number[]): Promise<void> {
  await writeFileAtomic(file, encodeNpy(data, shape));
}

export function readNpy(file: string): { data: Float32Array; shape: number[] } {
  if (!fs.existsSync(file)) throw new UserError(`${file}: no such .npy file`);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    throw withPath(err, file); // a read() error carries no path; util/fs-errors.ts names it
  }
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new UserError(`${file}: not a .npy file (bad magic)`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new UserError(`${file}: expected float32 ('<f4') data, found header ${header.trim()}`);
  if (/'fortran_order':\s*True/.test(header)) throw new UserError(`${file}: Fortran-order arrays are not supported`);
  const m = header.match(/'shape':\s*\(([^)]*)\)/);
  if (!m) throw new UserError(`${file}: .npy header has no shape`);
  const shape = m[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const offset = start + headerLen;
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length - offset !== count * 4) throw new UserError(`${file}: shape ${shape.join('x')} needs ${count * 4} bytes, file has ${buf.length - offset}`);
  const data = new Float32Array(count);
  Buffer.from(data.buffer).set(buf.subarray(offset));
  return { data, shape };
}
