// Reductions vs. the float64 interpreter: sums and maxima by explicit loops over the
// reduced axes, var/argmax by PyTorch values worked out by hand, softmax/logsumexp/cumsum
// by identities (rows sum to 1, log∘sum∘exp on small values, running-sum loops).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose, runRef } from "../util/ref.ts";
import { numel } from "../../compiler/util/shape.ts";

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = flat % shape[a]!;
    flat = Math.floor(flat / shape[a]!);
  }
  return idx;
}
/** Folds `data` over `axes` with `combine`, keeping reduced axes as size 1 (output row-major). */
function reduceLoop(
  data: readonly number[],
  shape: readonly number[],
  axes: readonly number[],
  init: number,
  combine: (acc: number, v: number) => number,
): { shape: number[]; values: number[] } {
  const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const values = new Array<number>(numel(outShape)).fill(init);
  data.forEach((v, flat) => {
    const idx = unravel(flat, shape).map((i, a) => (axes.includes(a) ? 0 : i));
    const o = idx.reduce((acc, i, a) => acc * outShape[a]! + i, 0);
    values[o] = combine(values[o]!, v);
  });
  return { shape: outShape, values };
}
const dropped = (shape: number[], axes: number[]) => shape.filter((_, i) => !axes.includes(i));

const shape = [2, 3, 4];
const x = Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * 5);
const spec = [k.f32(shape)];

describe("sum, mean, max, min", () => {
  test.each([
    [undefined, [0, 1, 2]],
    [1, [1]],
    [-1, [2]],
    [
      [0, 2],
      [0, 2],
    ],
    [
      [-1, -3],
      [0, 2],
    ],
  ] as const)("sum(dim=%j) and keepdim", (dim, axes) => {
    const ref = reduceLoop(x, shape, axes, 0, (a, v) => a + v);
    const r = runRef((t: k.Tensor) => t.sum(dim as k.Dims | undefined), spec, [x]);
    expect(r.shape).toEqual(dropped(shape, [...axes]));
    expectClose(r.values, ref.values, 1e-12);
    const kept = runRef((t: k.Tensor) => t.sum(dim as k.Dims | undefined, true), spec, [x]);
    expect(kept.shape).toEqual(ref.shape);
  });

  test("mean over a dim list; i32 mean is f32", () => {
    const ref = reduceLoop(x, shape, [1, 2], 0, (a, v) => a + v).values.map((v) => v / 12);
    expectClose(runRef((t: k.Tensor) => t.mean([1, 2]), spec, [x]).values, ref, 1e-12);
    const r = runRef((t: k.Tensor) => t.mean(), [k.i32([4])], [[1, 2, 3, 5]]);
    expect(r.outputs[0]!.dtype).toBe("f32");
    expectClose(r.values, [2.75]);
  });

  test("max and min over dims", () => {
    const mx = reduceLoop(x, shape, [0, 2], -Infinity, Math.max);
    const mn = reduceLoop(x, shape, [1], Infinity, Math.min);
    expectClose(runRef((t: k.Tensor) => t.amax([0, 2]), spec, [x]).values, mx.values);
    expectClose(runRef((t: k.Tensor) => k.amin(t, 1, true), spec, [x]).values, mn.values);
    expect(runRef((t: k.Tensor) => k.amin(t, 1, true), spec, [x]).shape).toEqual(mn.shape);
    expect(runRef((t: k.Tensor) => t.min(), [k.i32([3])], [[4, -7, 2]]).values).toEqual([-7]);
  });

  test("bool: sum counts (i32), max is any, min is all", () => {
    const b = [1, 0, 1, 1, 1, 1];
    const s = runRef((t: k.Tensor) => t.sum(1), [k.bool([2, 3])], [b]);
    expect(s.outputs[0]!.dtype).toBe("i32");
    expect(s.values).toEqual([2, 3]);
    expect(runRef((t: k.Tensor) => t.amax(1), [k.bool([2, 3])], [[0, 0, 0, 0, 1, 0]]).values).toEqual([0, 1]);
    expect(runRef((t: k.Tensor) => t.amin(1), [k.bool([2, 3])], [b]).values).toEqual([0, 1]);
  });
});

describe("var", () => {
  test("torch.tensor([[1.,2.],[3.,4.]]).var(dim=1) == [0.5, 0.5]", () => {
    expectClose(runRef((t: k.Tensor) => t.var(1), [k.f32([2, 2])], [[1, 2, 3, 4]]).values, [0.5, 0.5]);
  });
  test("all dims (5/3), correction 0 (1.25), keepdim shape", () => {
    const d = [[1, 2, 3, 4]];
    expectClose(runRef((t: k.Tensor) => t.var(), [k.f32([2, 2])], d).values, [5 / 3], 1e-12);
    expectClose(runRef((t: k.Tensor) => t.var(undefined, { correction: 0 }), [k.f32([2, 2])], d).values, [1.25], 1e-12);
    const kept = runRef((t: k.Tensor) => t.var(0, { keepdim: true }), [k.f32([2, 2])], d);
    expect(kept.shape).toEqual([1, 2]);
    expectClose(kept.values, [2, 2]);
  });
  test("std is the square root of var", () => {
    expectClose(runRef((t: k.Tensor) => t.std(1), [k.f32([2, 2])], [[1, 2, 3, 5]]).values, [Math.sqrt(0.5), Math.sqrt(2)], 1e-12);
    expectClose(runRef((t: k.Tensor) => k.std(t, undefined, 0), [k.f32([4])], [[1, 2, 3, 4]]).values, [Math.sqrt(1.25)], 1e-12);
    expectClose(runRef((t: k.Tensor) => k.var(t, 0, 0), [k.f32([4])], [[1, 2, 3, 4]]).values, [1.25], 1e-12);
  });
  test("matches the two-pass formula over a dim list", () => {
    const sums = reduceLoop(x, shape, [0, 2], 0, (a, v) => a + v).values;
    const means = sums.map((s) => s / 8);
    const sq = x.map((v, flat) => (v - means[unravel(flat, shape)[1]!]!) ** 2);
    const ref = reduceLoop(sq, shape, [0, 2], 0, (a, v) => a + v).values.map((v) => v / 7);
    expectClose(runRef((t: k.Tensor) => t.var([0, -1]), spec, [x]).values, ref, 1e-12, 1e-12);
  });
});

describe("logsumexp", () => {
  test("equals log(sum(exp(x))) on small values", () => {
    const ref = reduceLoop(x, shape, [2], 0, (a, v) => a + Math.exp(v)).values.map(Math.log);
    expectClose(runRef((t: k.Tensor) => t.logsumexp(-1), spec, [x]).values, ref, 1e-12, 1e-12);
    const ref01 = reduceLoop(x, shape, [0, 1], 0, (a, v) => a + Math.exp(v)).values.map(Math.log);
    const r = runRef((t: k.Tensor) => k.logsumexp(t, [0, 1], true), spec, [x]);
    expect(r.shape).toEqual([1, 1, 4]);
    expectClose(r.values, ref01, 1e-12, 1e-12);
  });
  test("stable for large inputs, -inf rows give -inf, +inf gives +inf", () => {
    const r = runRef((t: k.Tensor) => t.logsumexp(1), [k.f32([3, 2])], [[1000, 1000, -Infinity, -Infinity, Infinity, 0]]);
    expectClose(r.values, [1000 + Math.LN2, -Infinity, Infinity], 1e-9);
  });
});

describe("argmax / argmin", () => {
  test("ties go to the first index; result is i32", () => {
    const r = runRef((t: k.Tensor) => t.argmax(1), [k.f32([3, 4])], [[1, 5, 5, 0, 2, 2, 2, 2, -1, -3, 7, 7]]);
    expect(r.outputs[0]!.dtype).toBe("i32");
    expect(r.values).toEqual([1, 0, 2]);
    expect(runRef((t: k.Tensor) => t.argmin(1), [k.f32([3, 4])], [[1, 0, 5, 0, 2, 2, 2, 2, -1, -3, 7, -3]]).values).toEqual([1, 0, 1]);
  });
  test("dim 0 and keepdim", () => {
    const d = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
    const r = runRef((t: k.Tensor) => t.argmax(0, true), [k.f32([3, 4])], [d]);
    expect(r.shape).toEqual([1, 4]);
    expect(r.values).toEqual([1, 1, 2, 2]); // columns (3,5,5) (1,9,3) (4,2,5) (1,6,8): the first 5 wins
  });
  test("no dim: index into the flattened tensor", () => {
    const d = [3, 1, 4, 1, 5, 9, 2, 6, 9, 3, 5, 8];
    const r = runRef((t: k.Tensor) => t.argmax(), [k.f32([3, 4])], [d]);
    expect(r.shape).toEqual([]);
    expect(r.values).toEqual([5]);
    expect(runRef((t: k.Tensor) => k.argmin(t), [k.i32([3, 4])], [d]).values).toEqual([1]);
  });
  test("NaN counts as the maximum (PyTorch); bool inputs work", () => {
    expect(runRef((t: k.Tensor) => t.argmax(), [k.f32([4])], [[1, NaN, 7, NaN]]).values).toEqual([1]);
    expect(runRef((t: k.Tensor) => t.argmax(), [k.bool([4])], [[0, 0, 1, 1]]).values).toEqual([2]);
  });
});

describe("cumsum", () => {
  function cumsumLoop(data: readonly number[], dims: readonly number[], axis: number): number[] {
    const out = [...data];
    const stride = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    for (let flat = 0; flat < data.length; flat++) {
      const i = unravel(flat, dims)[axis]!;
      if (i > 0) out[flat] = out[flat - stride]! + data[flat]!;
    }
    return out;
  }
  test.each([1, 5, 8, 9, 17])("length %d along the last dim", (n) => {
    const d = Array.from({ length: 2 * n }, (_, i) => (i % 7) - 3.25);
    expectClose(runRef((t: k.Tensor) => t.cumsum(-1), [k.f32([2, n])], [d]).values, cumsumLoop(d, [2, n], 1), 1e-12);
  });
  test("middle and leading dims; i32 stays i32, bool counts", () => {
    expectClose(runRef((t: k.Tensor) => t.cumsum(1), spec, [x]).values, cumsumLoop(x, shape, 1), 1e-12);
    expectClose(runRef((t: k.Tensor) => k.cumsum(t, 0), spec, [x]).values, cumsumLoop(x, shape, 0), 1e-12);
    const i = runRef((t: k.Tensor) => t.cumsum(0), [k.i32([5])], [[1, -2, 3, 4, -5]]);
    expect(i.outputs[0]!.dtype).toBe("i32");
    expect(i.values).toEqual([1, -1, 2, 6, 1]);
    expect(runRef((t: k.Tensor) => t.cumsum(0), [k.bool([4])], [[1, 0, 1, 1]]).values).toEqual([1, 1, 2, 3]);
  });
});

describe("softmax / logSoftmax", () => {
  test("rows sum to 1 and match exp(x)/sum(exp(x)) along any dim", () => {
    for (const dim of [0, 1, -1]) {
      const axis = (dim + 3) % 3;
      const r = runRef((t: k.Tensor) => t.softmax(dim), spec, [x]);
      const sums = reduceLoop(r.values, shape, [axis], 0, (a, v) => a + v).values;
      expectClose(
        sums,
        sums.map(() => 1),
        1e-12,
      );
      const denom = reduceLoop(x, shape, [axis], 0, (a, v) => a + Math.exp(v));
      const ref = x.map((v, flat) => {
        const idx = unravel(flat, shape).map((i, a) => (a === axis ? 0 : i));
        return Math.exp(v) / denom.values[idx.reduce((acc, i, a) => acc * denom.shape[a]! + i, 0)]!;
      });
      expectClose(r.values, ref, 1e-12, 1e-12);
    }
  });
  test("stable for large logits", () => {
    const r = runRef((t: k.Tensor) => k.softmax(t, -1), [k.f32([1, 3])], [[1000, 1000, 0]]);
    expectClose(r.values, [0.5, 0.5, 0], 1e-12);
    const l = runRef((t: k.Tensor) => t.logSoftmax(-1), [k.f32([1, 3])], [[1000, 1000, 0]]);
    expectClose(l.values, [-Math.LN2, -Math.LN2, -1000 - Math.LN2], 1e-9);
  });
  test("logSoftmax = x - log(sum(exp(x)))", () => {
    const lse = reduceLoop(x, shape, [1], 0, (a, v) => a + Math.exp(v)).values.map(Math.log);
    const ref = x.map((v, flat) => {
      const [a, , c] = unravel(flat, shape);
      return v - lse[a! * 4 + c!]!;
    });
    expectClose(runRef((t: k.Tensor) => t.logSoftmax(1), spec, [x]).values, ref, 1e-12, 1e-12);
  });
});

describe("any / all", () => {
  test("over a dim, all dims, and an empty dim", () => {
    const d = [0, 0, 0, 1, 0, 2, 3, 4, 5];
    expect(runRef((t: k.Tensor) => t.any(1), [k.f32([3, 3])], [d]).values).toEqual([0, 1, 1]);
    expect(runRef((t: k.Tensor) => t.all(1), [k.f32([3, 3])], [d]).values).toEqual([0, 0, 1]);
    expect(runRef((t: k.Tensor) => k.any(t), [k.f32([3, 3])], [d]).values).toEqual([1]);
    const empty = runRef((t: k.Tensor) => [t.any(1), t.all(1)], [k.bool([2, 0])], [[]]);
    expect(empty.outputs.map((o) => [o.dtype, Array.from(o.data)])).toEqual([
      ["bool", [0, 0]],
      ["bool", [1, 1]],
    ]);
  });
});
