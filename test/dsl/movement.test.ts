// Movement ops vs. the float64 interpreter: every expected value comes from an index
// formula written out here (unravel the output index, map it to the input by hand).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { runRef } from "../util/ref.ts";
import { numel } from "../../compiler/util/shape.ts";

const seq = (n: number): number[] => Array.from({ length: n }, (_, i) => i * 10 + 1);

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = flat % shape[a]!;
    flat = Math.floor(flat / shape[a]!);
  }
  return idx;
}
function ravel(idx: readonly number[], shape: readonly number[]): number {
  return idx.reduce((acc, i, a) => acc * shape[a]! + i, 0);
}
/** Builds the expected output of shape `outShape` from out index → input value. */
function byIndex(outShape: readonly number[], value: (idx: number[]) => number): number[] {
  return Array.from({ length: numel(outShape) }, (_, flat) => value(unravel(flat, outShape)));
}

describe("reshape, permute, transpose, expand, squeeze, flatten", () => {
  const x = seq(24);
  const spec = [k.f32([2, 3, 4])];

  test("reshape keeps row-major order; -1 is inferred", () => {
    const r = runRef((t: k.Tensor) => t.reshape(4, -1), spec, [x]);
    expect(r.shape).toEqual([4, 6]);
    expect(r.values).toEqual(x);
    expect(runRef((t: k.Tensor) => t.view([-1]), spec, [x]).shape).toEqual([24]);
  });

  test("permute(2, 0, 1) and negative dims", () => {
    const expected = byIndex([4, 2, 3], ([c, a, b]) => x[ravel([a!, b!, c!], [2, 3, 4])]!);
    const r = runRef((t: k.Tensor) => t.permute(2, 0, 1), spec, [x]);
    expect(r.shape).toEqual([4, 2, 3]);
    expect(r.values).toEqual(expected);
    expect(runRef((t: k.Tensor) => t.permute([-1, 0, -2]), spec, [x]).values).toEqual(expected);
  });

  test("transpose(0, -1), .t(), .T", () => {
    const r = runRef((t: k.Tensor) => t.transpose(0, -1), spec, [x]);
    expect(r.shape).toEqual([4, 3, 2]);
    expect(r.values).toEqual(byIndex([4, 3, 2], ([c, b, a]) => x[ravel([a!, b!, c!], [2, 3, 4])]!));
    const m = seq(6);
    const t2 = byIndex([3, 2], ([j, i]) => m[i! * 3 + j!]!);
    expect(runRef((t: k.Tensor) => t.t(), [k.f32([2, 3])], [m]).values).toEqual(t2);
    expect(runRef((t: k.Tensor) => t.T, [k.f32([2, 3])], [m]).values).toEqual(t2);
  });

  test("expand adds leading dims and broadcasts size-1 dims; -1 keeps a dim", () => {
    const v = [1, 2, 3];
    const r = runRef((t: k.Tensor) => t.expand(2, 3, 4), [k.f32([3, 1])], [v]);
    expect(r.shape).toEqual([2, 3, 4]);
    expect(r.values).toEqual(byIndex([2, 3, 4], ([, b]) => v[b!]!));
    expect(runRef((t: k.Tensor) => t.expand(-1, 2), [k.f32([3, 1])], [v]).values).toEqual([1, 1, 2, 2, 3, 3]);
  });

  test("unsqueeze / squeeze / flatten shapes", () => {
    const shapeOf = (fn: (t: k.Tensor) => k.Tensor, shape: number[]) => runRef(fn, [k.f32(shape)], [seq(numel(shape))]).shape;
    expect(shapeOf((t) => t.unsqueeze(-1), [2, 3])).toEqual([2, 3, 1]);
    expect(shapeOf((t) => t.unsqueeze(0), [2, 3])).toEqual([1, 2, 3]);
    expect(shapeOf((t) => t.unsqueeze(1), [2, 3])).toEqual([2, 1, 3]);
    expect(shapeOf((t) => t.squeeze(), [1, 2, 1, 3, 1])).toEqual([2, 3]);
    expect(shapeOf((t) => t.squeeze([0, -1]), [1, 2, 1, 3, 1])).toEqual([2, 1, 3]);
    expect(shapeOf((t) => t.squeeze(1), [1, 2, 1])).toEqual([1, 2, 1]);
    expect(shapeOf((t) => t.flatten(), [2, 3, 4])).toEqual([24]);
    expect(shapeOf((t) => t.flatten(1), [2, 3, 4])).toEqual([2, 12]);
    expect(shapeOf((t) => k.flatten(t, 0, 1), [2, 3, 4])).toEqual([6, 4]);
  });
});

/** Python's slice.indices for a positive step, written out independently of the DSL. */
function pySlice(size: number, start: number | null, stop: number | null, step: number): number[] {
  const fix = (i: number | null, dflt: number) => (i === null ? dflt : i < 0 ? Math.max(0, i + size) : Math.min(i, size));
  const out: number[] = [];
  for (let i = fix(start, 0); i < fix(stop, size); i += step) out.push(i);
  return out;
}

describe("slicing", () => {
  const x = seq(30);
  const spec = [k.f32([5, 6])];
  const cases: [string, k.SliceSpec[], (number | null)[][]][] = [
    [
      "x[1:4, ::2]",
      [
        [1, 4],
        [null, null, 2],
      ],
      [
        [1, 4, 1],
        [null, null, 2],
      ],
    ],
    [
      "x[-2:, 1:-1]",
      [[-2], [1, -1]],
      [
        [-2, null, 1],
        [1, -1, 1],
      ],
    ],
    [
      "x[:100, -100:3:2] clamps",
      [
        [null, 100],
        [-100, 3, 2],
      ],
      [
        [null, 100, 1],
        [-100, 3, 2],
      ],
    ],
    [
      "x[::3] leaves the rest whole",
      [[null, null, 3]],
      [
        [null, null, 3],
        [null, null, 1],
      ],
    ],
    [
      "x[None-like null, 4:1] is empty",
      [null, [4, 1]],
      [
        [null, null, 1],
        [4, 1, 1],
      ],
    ],
  ];
  test.each(cases)("%s", (_name, sliceSpec, pyArgs) => {
    const rows = pySlice(5, pyArgs[0]![0]!, pyArgs[0]![1]!, pyArgs[0]![2]!);
    const cols = pySlice(6, pyArgs[1]![0]!, pyArgs[1]![1]!, pyArgs[1]![2]!);
    const r = runRef((t: k.Tensor) => t.slice(...sliceSpec), spec, [x]);
    expect(r.shape).toEqual([rows.length, cols.length]);
    expect(r.values).toEqual(rows.flatMap((i) => cols.map((j) => x[i * 6 + j]!)));
  });

  test("a number index drops the dim, negative counts from the end", () => {
    const r = runRef((t: k.Tensor) => t.slice(-1, [1, null, 2]), spec, [x]);
    expect(r.shape).toEqual([3]);
    expect(r.values).toEqual([1, 3, 5].map((j) => x[4 * 6 + j]!));
    const scalar = runRef((t: k.Tensor) => t.slice(2, 3), spec, [x]);
    expect(scalar.shape).toEqual([]);
    expect(scalar.values).toEqual([x[2 * 6 + 3]!]);
  });

  test("narrow(dim, start, length), negative start", () => {
    expect(runRef((t: k.Tensor) => t.narrow(1, 2, 3), spec, [x]).values).toEqual(byIndex([5, 3], ([i, j]) => x[i! * 6 + j! + 2]!));
    expect(runRef((t: k.Tensor) => t.narrow(0, -2, 1), spec, [x]).values).toEqual(x.slice(18, 24));
  });
});

describe("flip, pad, repeat", () => {
  const x = seq(24);
  const shape = [2, 3, 4];

  test("flip over a dim list", () => {
    const r = runRef((t: k.Tensor) => t.flip([0, -1]), [k.f32(shape)], [x]);
    expect(r.values).toEqual(byIndex(shape, ([a, b, c]) => x[ravel([1 - a!, b!, 3 - c!], shape)]!));
    expect(runRef((t: k.Tensor) => k.flip(t, 1), [k.f32(shape)], [x]).values).toEqual(byIndex(shape, ([a, b, c]) => x[ravel([a!, 2 - b!, c!], shape)]!));
  });

  /** F.pad reference: pairs from the last dim; out index maps back by subtracting the left pad. */
  function padLoop(data: number[], inShape: number[], pads: number[], value: number): { shape: number[]; values: number[] } {
    const low = inShape.map(() => 0);
    const high = inShape.map(() => 0);
    for (let p = 0; p < pads.length / 2; p++) {
      low[inShape.length - 1 - p] = pads[2 * p]!;
      high[inShape.length - 1 - p] = pads[2 * p + 1]!;
    }
    const outShape = inShape.map((d, i) => d + low[i]! + high[i]!);
    const values = byIndex(outShape, (idx) => {
      const src = idx.map((i, a) => i - low[a]!);
      return src.every((s, a) => s >= 0 && s < inShape[a]!) ? data[ravel(src, inShape)]! : value;
    });
    return { shape: outShape, values };
  }

  test.each([
    [[1, 2], 0],
    [[1, 2, 0, 1], -5],
    [[0, 0, 2, 0, 1, 1], 7.5],
    [[-1, 1], 0],
    [[2, -3, -1, 0], 9],
  ])("F.pad(x, %j, value=%d)", (pads, value) => {
    const expected = padLoop(x, shape, pads, value);
    const r = runRef((t: k.Tensor) => t.pad(pads, value), [k.f32(shape)], [x]);
    expect(r.shape).toEqual(expected.shape);
    expect(r.values).toEqual(expected.values);
  });

  test("repeat tiles and adds leading dims", () => {
    const m = [1, 2, 3, 4, 5, 6];
    const r = runRef((t: k.Tensor) => t.repeat(2, 1, 2), [k.f32([2, 3])], [m]);
    expect(r.shape).toEqual([2, 2, 6]);
    expect(r.values).toEqual(byIndex([2, 2, 6], ([, i, j]) => m[i! * 3 + (j! % 3)]!));
  });
});

describe("split, chunk, cat, stack", () => {
  const x = seq(14);

  test("split by size (last piece shorter) and by a size list", () => {
    const r = runRef((t: k.Tensor) => t.split(3, 1), [k.f32([2, 7])], [x]);
    expect(r.outputs.map((o) => o.shape)).toEqual([
      [2, 3],
      [2, 3],
      [2, 1],
    ]);
    expect(Array.from(r.outputs[2]!.data)).toEqual([x[6], x[13]]);
    const l = runRef((t: k.Tensor) => k.split(t, [2, 0, 5], -1), [k.f32([2, 7])], [x]);
    expect(l.outputs.map((o) => o.shape)).toEqual([
      [2, 2],
      [2, 0],
      [2, 5],
    ]);
    expect(Array.from(l.outputs[2]!.data)).toEqual([...x.slice(2, 7), ...x.slice(9, 14)]);
  });

  test("chunk uses ceil(size / chunks) pieces like torch", () => {
    const r = runRef((t: k.Tensor) => t.chunk(3, 1), [k.f32([2, 7])], [x]);
    expect(r.outputs.map((o) => o.shape)).toEqual([
      [2, 3],
      [2, 3],
      [2, 1],
    ]);
    const few = runRef((t: k.Tensor) => t.chunk(4, 0), [k.f32([3])], [[1, 2, 3]]);
    expect(few.outputs.map((o) => Array.from(o.data))).toEqual([[1], [2], [3]]);
  });

  test("cat along dims 0, 1 and -1 with unequal sizes", () => {
    const a = seq(6); // [2,3]
    const b = [-1, -2]; // [2,1]
    const c = [100, 200, 300, 400]; // [2,2]
    const r = runRef((p: k.Tensor, q: k.Tensor, s: k.Tensor) => k.cat([p, q, s], -1), [k.f32([2, 3]), k.f32([2, 1]), k.f32([2, 2])], [a, b, c]);
    expect(r.shape).toEqual([2, 6]);
    expect(r.values).toEqual([0, 1].flatMap((i) => [...a.slice(3 * i, 3 * i + 3), b[i]!, ...c.slice(2 * i, 2 * i + 2)]));
    const rows = runRef((p: k.Tensor, q: k.Tensor) => k.cat([p, q]), [k.f32([2, 3]), k.f32([1, 3])], [a, [7, 8, 9]]);
    expect(rows.shape).toEqual([3, 3]);
    expect(rows.values).toEqual([...a, 7, 8, 9]);
  });

  test("cat keeps -0, NaN and inf exactly, skips empty pieces, promotes dtypes", () => {
    const r = runRef(
      (p: k.Tensor, q: k.Tensor, e: k.Tensor) => k.cat([p, e, q], 0),
      [k.f32([2]), k.f32([2]), k.f32([0])],
      [[-0, NaN], [Infinity, -Infinity], []],
    );
    expect(Object.is(r.values[0], -0)).toBe(true);
    expect(r.values.slice(1)).toEqual([NaN, Infinity, -Infinity]);
    const mixed = runRef((p: k.Tensor, q: k.Tensor) => k.cat([p, q]), [k.i32([2]), k.f32([1])], [[1, 2], [0.5]]);
    expect(mixed.outputs[0]!.dtype).toBe("f32");
    expect(mixed.values).toEqual([1, 2, 0.5]);
    const bools = runRef((p: k.Tensor, q: k.Tensor) => k.cat([p, q]), [k.bool([2]), k.bool([1])], [[1, 0], [1]]);
    expect(bools.outputs[0]!.dtype).toBe("bool");
    expect(bools.values).toEqual([1, 0, 1]);
  });

  test("stack at dim 0 and -1", () => {
    const a = [1, 2, 3, 4, 5, 6];
    const b = [-1, -2, -3, -4, -5, -6];
    const specs = [k.f32([2, 3]), k.f32([2, 3])];
    const s0 = runRef((p: k.Tensor, q: k.Tensor) => k.stack([p, q]), specs, [a, b]);
    expect(s0.shape).toEqual([2, 2, 3]);
    expect(s0.values).toEqual([...a, ...b]);
    const s2 = runRef((p: k.Tensor, q: k.Tensor) => k.stack([p, q], -1), specs, [a, b]);
    expect(s2.shape).toEqual([2, 3, 2]);
    expect(s2.values).toEqual(byIndex([2, 3, 2], ([i, j, w]) => (w === 0 ? a : b)[i! * 3 + j!]!));
  });
});

describe("gather and indexSelect", () => {
  const x = seq(12); // [3,4]

  test("gather along dim 1 with an index smaller along dim 0", () => {
    const index = [3, 0, 0, 1, 2, 2]; // [2,3]
    const r = runRef((t: k.Tensor, i: k.Tensor) => t.gather(1, i), [k.f32([3, 4]), k.i32([2, 3])], [x, index]);
    expect(r.shape).toEqual([2, 3]);
    expect(r.values).toEqual(byIndex([2, 3], ([i, j]) => x[i! * 4 + index[i! * 3 + j!]!]!));
  });

  test("gather along dim 0 (torch.gather(x, 0, idx))", () => {
    const index = [2, 1, 0, 2]; // [1,4]
    const r = runRef((t: k.Tensor, i: k.Tensor) => k.gather(t, 0, i), [k.f32([3, 4]), k.i32([1, 4])], [x, index]);
    expect(r.values).toEqual(byIndex([1, 4], ([, j]) => x[index[j!]! * 4 + j!]!));
  });

  test("indexSelect picks whole rows/columns, repeats allowed", () => {
    const rows = runRef((t: k.Tensor, i: k.Tensor) => t.indexSelect(0, i), [k.f32([3, 4]), k.i32([4])], [x, [2, 0, 2, 1]]);
    expect(rows.shape).toEqual([4, 4]);
    expect(rows.values).toEqual([2, 0, 2, 1].flatMap((r) => x.slice(r * 4, r * 4 + 4)));
    const cols = runRef((t: k.Tensor, i: k.Tensor) => k.indexSelect(t, -1, i), [k.f32([3, 4]), k.i32([2])], [x, [3, 1]]);
    expect(cols.values).toEqual(byIndex([3, 2], ([i, j]) => x[i! * 4 + [3, 1][j!]!]!));
  });
});

describe("ellipsis slicing, tril, triu", () => {
  test('"..." stands for the whole leading dims', () => {
    const x = seq(24);
    const r = runRef((t: k.Tensor) => t.slice("...", 1), [k.f32([2, 3, 4])], [x]);
    expect(r.shape).toEqual([2, 3]);
    expect(r.values).toEqual(byIndex([2, 3], ([a, b]) => x[ravel([a!, b!, 1], [2, 3, 4])]!));
    const mid = runRef((t: k.Tensor) => t.slice(0, "...", [null, 2]), [k.f32([2, 3, 4])], [x]);
    expect(mid.shape).toEqual([3, 2]);
    expect(mid.values).toEqual(byIndex([3, 2], ([b, c]) => x[ravel([0, b!, c!], [2, 3, 4])]!));
  });

  test.each([0, 1, -1])("tril/triu(diagonal=%d) over a batch of 3x4 matrices", (diagonal) => {
    const x = seq(24);
    const shape = [2, 3, 4];
    const tril = runRef((t: k.Tensor) => t.tril(diagonal), [k.f32(shape)], [x]);
    expect(tril.values).toEqual(byIndex(shape, ([b, i, j]) => (j! - i! <= diagonal ? x[ravel([b!, i!, j!], shape)]! : 0)));
    const triu = runRef((t: k.Tensor) => k.triu(t, diagonal), [k.f32(shape)], [x]);
    expect(triu.values).toEqual(byIndex(shape, ([b, i, j]) => (j! - i! >= diagonal ? x[ravel([b!, i!, j!], shape)]! : 0)));
  });
});
