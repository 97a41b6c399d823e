// TensorBoard event files (`events.out.tfevents.*`) written directly: TFRecord framing around `tensorflow.Event`
// protocol buffers (tensorflow/core/util/event.proto, summary.proto), encoded with google-protobuf's BinaryWriter.
//
// Why not tfjs-node's tf.node.summaryFileWriter: it writes scalars and histograms only (no images), exists only on
// the native engine (not wasm/cpu), and a second writer for the images would split one run over two files. The
// format is small and stable (TensorBoard still reads the 2016 `simple_value` / `HistogramProto` / `Image` fields),
// so one writer here covers every engine. CRC32C is written here too: no dependency of gapcam has it (node:zlib's
// crc32 is the IEEE polynomial, and only from Node 22).
//
// Records are appended synchronously, one write per record, so a crash loses at most the record being written, and
// TensorBoard skips a torn last record. A resumed run opens a new file; TensorBoard drops the orphaned steps of the
// first one when it sees the step counter go back (its purge_orphaned_data, on by default).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

interface ProtoWriter {
  writeDouble(field: number, value: number): void;
  writeFloat(field: number, value: number): void;
  writeInt32(field: number, value: number): void;
  writeInt64(field: number, value: number): void;
  writeString(field: number, value: string): void;
  writeBytes(field: number, value: Uint8Array): void;
  writePackedDouble(field: number, values: number[]): void;
  writeMessage<T>(field: number, value: T, write: (value: T, writer: ProtoWriter) => void): void;
  getResultBuffer(): Uint8Array;
}
const require = createRequire(import.meta.url);
const { BinaryWriter } = require('google-protobuf') as { BinaryWriter: new () => ProtoWriter };

// ---- CRC32C (Castagnoli), as TFRecord frames use it ----

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC (a rotated CRC plus a constant, so CRCs of data holding CRCs stay well distributed). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 length, masked CRC of the length, the data, masked CRC of the data (little-endian). */
export function tfRecord(data: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header.writeBigUInt64LE(BigInt(data.length), 0);
  header.writeUInt32LE(maskedCrc32c(header.subarray(0, 8)), 8);
  const footer = Buffer.alloc(4);
  footer.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([header, data, footer]);
}

// ---- Summary values (summary.proto field numbers) ----

export interface HistogramSummary {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Right edge of each bucket. */
  bucketLimit: number[];
  bucket: number[];
}

export type SummaryValue =
  | { tag: string; kind: 'scalar'; value: number }
  | { tag: string; kind: 'histogram'; histogram: HistogramSummary }
  | { tag: string; kind: 'image'; png: Uint8Array; width: number; height: number; channels: number };

/** A histogram of `values` in `buckets` equal-width buckets between their minimum and maximum. */
export function histogramOf(values: ArrayLike<number>, buckets = 30): HistogramSummary {
  let min = Infinity, max = -Infinity, sum = 0, sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSquares += v * v;
  }
  if (values.length === 0) return { min: 0, max: 0, num: 0, sum: 0, sumSquares: 0, bucketLimit: [0], bucket: [0] };
  const width = (max - min) / buckets;
  if (!(width > 0)) return { min, max, num: values.length, sum, sumSquares, bucketLimit: [max], bucket: [values.length] };
  const bucket = new Array<number>(buckets).fill(0);
  for (let i = 0; i < values.length; i++) bucket[Math.min(buckets - 1, Math.floor((values[i] - min) / width))]++;
  const bucketLimit = bucket.map((_, i) => (i === buckets - 1 ? max : min + (i + 1) * width));
  return { min, max, num: values.length, sum, sumSquares, bucketLimit, bucket };
}

function writeValue(v: SummaryValue, w: ProtoWriter): void {
  w.writeString(1, v.tag);
  if (v.kind === 'scalar') w.writeFloat(2, v.value);
  else if (v.kind === 'image') {
    w.writeMessage(4, v, (img, iw) => {
      iw.writeInt32(1, img.height);
      iw.writeInt32(2, img.width);
      iw.writeInt32(3, img.channels);
      iw.writeBytes(4, img.png);
    });
  } else {
    w.writeMessage(5, v.histogram, (h, hw) => {
      hw.writeDouble(1, h.min);
      hw.writeDouble(2, h.max);
      hw.writeDouble(3, h.num);
      hw.writeDouble(4, h.sum);
      hw.writeDouble(5, h.sumSquares);
      hw.writePackedDouble(6, h.bucketLimit);
      hw.writePackedDouble(7, h.bucket);
    });
  }
}

/** An `Event` message: wall time, step, and either the file version or a summary. */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; values?: SummaryValue[] }): Uint8Array {
  const w = new BinaryWriter();
  w.writeDouble(1, e.wallTime);
  w.writeInt64(2, e.step);
  if (e.fileVersion !== undefined) w.writeString(3, e.fileVersion);
  if (e.values) {
    w.writeMessage(5, e.values, (values, sw) => {
      for (const v of values) sw.writeMessage(1, v, writeValue);
    });
  }
  return w.getResultBuffer();
}

/** Appends events to one new `events.out.tfevents.<time>.<host>.<pid>.<n>` file in `dir`. */
export class EventFileWriter {
  readonly file!: string;
  private fd: number | undefined;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    // A counter keeps two files of the same second and process apart (a run resumed in-process).
    for (let n = 0; ; n++) {
      const file = path.join(dir, `events.out.tfevents.${Math.floor(now)}.${os.hostname()}.${process.pid}.${n}`);
      try {
        this.fd = fs.openSync(file, 'wx');
        this.file = file;
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    this.append(encodeEvent({ wallTime: now, step: 0, fileVersion: 'brain.Event:2' }));
  }

  private append(event: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`event file ${this.file} is closed`);
    fs.writeSync(this.fd, tfRecord(event));
  }

  write(step: number, values: SummaryValue[]): void {
    if (values.length) this.append(encodeEvent({ wallTime: Date.now() / 1000, step, values }));
  }

  scalars(step: number, scalars: Record<string, number | undefined>): void {
    const values: SummaryValue[] = [];
    for (const [tag, value] of Object.entries(scalars)) {
      if (value !== undefined && Number.isFinite(value)) values.push({ tag, kind: 'scalar', value });
    }
    this.write(step, values);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
