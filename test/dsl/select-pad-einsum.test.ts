// The ops PyTorch users reach for that were missing: F.pad's reflect/replicate/circular modes,
// max(dim)/min(dim) with indices, topk, einsum, multinomial/categorical sampling. Each is
// checked on the float64 interpreter against explicit loops written here (index arithmetic,
// a JS sort, triple loops), gradchecked where differentiable, and the samplers against their
// distributions with a chi-square bound.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { KilnError } from "../../compiler/util/errors.ts";
import { gradcheck } from "../util/gradcheck.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { randomData } from "./functional-helpers.ts";

const F = k.nn.functional;
const f = k.f32;
const seedInput = (s: number) => ({ seed: { dtype: "i32" as const, shape: [], data: Int32Array.of(s) } });

/** PyTorch's index rule per mode, for one padded axis of size n: the source index of output position p. */
function sourceIndex(mode: "reflect" | "replicate" | "circular", p: number, before: number, n: number): number {
  const i = p - before;
  if (mode === "replicate") return Math.min(Math.max(i, 0), n - 1);
  if (mode === "circular") return ((i % n) + n) % n;
  return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
}

describe("F.pad", () => {
  const shape = [2, 3, 4];
  const x = randomData(24, 1);
  test.each(["reflect", "replicate", "circular"] as const)("%s on the last two dims matches the per-position index rule", (mode) => {
    const amounts = [2, 1, 1, 2]; // last dim (2, 1), then dim 1 (1, 2)
    const r = runRef((t: k.Tensor) => F.pad(t, amounts, mode), [f(shape)], [x]);
    const [H, W] = [3 + 1 + 2, 4 + 2 + 1];
    expect(r.shape).toEqual([2, H, W]);
    const want: number[] = [];
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) want.push(x[(b * 3 + sourceIndex(mode, h, 1, 3)) * 4 + sourceIndex(mode, w, 2, 4)]!);
    expectClose(r.values, want);
  });

  test("constant mode with a value, as a string mode and as options; negative amounts crop", () => {
    const a = runRef((t: k.Tensor) => F.pad(t, [1, 0], "constant", 7), [f([2, 2])], [[1, 2, 3, 4]]);
    expect(a.values).toEqual([7, 1, 2, 7, 3, 4]);
    const b = runRef((t: k.Tensor) => F.pad(t, [0, 1, -1, 0], { value: -1 }), [f([2, 2])], [[1, 2, 3, 4]]);
    expect(b.values).toEqual([3, 4, -1]);
  });

  test.each(["reflect", "replicate", "circular", "constant"] as const)("gradcheck, %s", (mode) => {
    gradcheck((t) => F.pad(t, [1, 2, 2, 1], mode).square(), [f([3, 4])], [randomData(12, 2)]);
  });

  test("bad amounts and modes are errors naming the rule", () => {
    const run = (fn: (t: k.Tensor) => k.Tensor) => () => runRef(fn, [f([2, 3])], [randomData(6, 3)]);
    expect(run((t) => F.pad(t, [3, 0], "reflect"))).toThrow(/reflect padding of \(3, 0\) on dim 1 .* below the dim's size/);
    expect(run((t) => F.pad(t, [4, 0], "circular"))).toThrow(/at most the dim's size/);
    expect(run((t) => F.pad(t, [-1, 0], "replicate"))).toThrow(/non-negative/);
    expect(run((t) => F.pad(t, [1, 0], "wrap" as never))).toThrow(/unknown mode 'wrap'/);
    expect(run((t) => F.pad(t, [1, 0], { mode: "reflect", bogusKey: 1 } as never))).toThrow(KilnError);
  });
});

describe("max(dim) and min(dim) return values and indices", () => {
  const rows = [
    [3, 1, 3, -2],
    [0, 5, 5, 4],
    [-1, -1, -7, -7],
  ];
  test("values and the first extreme's index per row, keepdim, and max() with no dim", () => {
    const r = runRef(
      (t: k.Tensor) => {
        const mx = t.max(1);
        const mn = k.min(t, 1, { keepdim: true });
        return [mx.values, mx.indices, mn.values, mn.indices, t.max(), t.min()];
      },
      [f([3, 4])],
      [rows.flat()],
    );
    expect(Array.from(r.outputs[0]!.data)).toEqual(rows.map((row) => Math.max(...row)));
    expect(Array.from(r.outputs[1]!.data)).toEqual(rows.map((row) => row.indexOf(Math.max(...row))));
    expect(r.outputs[1]!.dtype).toBe("i32");
    expect(r.outputs[2]!.shape).toEqual([3, 1]);
    expect(Array.from(r.outputs[2]!.data)).toEqual(rows.map((row) => Math.min(...row)));
    expect(Array.from(r.outputs[3]!.data)).toEqual(rows.map((row) => row.indexOf(Math.min(...row))));
    expect(Array.from(r.outputs[4]!.data)).toEqual([5]);
    expect(Array.from(r.outputs[5]!.data)).toEqual([-7]);
    expect(r.outputs[4]!.shape).toEqual([]);
  });

  test("a list of dims is amax's job, said so", () => {
    expect(() => runRef((t: k.Tensor) => t.max([0, 1] as never), [f([2, 2])], [[1, 2, 3, 4]])).toThrow(/amax/);
  });

  test("gradcheck of max(dim).values (no ties)", () => {
    gradcheck((t) => t.max(0).values.mul(t.min(1).values.sum()), [f([3, 4])], [randomData(12, 4)]);
  });
});

describe("topk", () => {
  const data = randomData(30, 5);
  test.each([
    [true, 4, -1],
    [false, 3, -1],
    [true, 2, 0],
  ] as const)("largest=%s k=%i dim=%i matches a JS sort (stable: ties to the lower index)", (largest, kk, dim) => {
    const shape = [5, 6];
    const r = runRef(
      (t: k.Tensor) => {
        const { values, indices } = t.topk(kk, { dim, largest });
        return [values, indices];
      },
      [f(shape)],
      [data],
    );
    const axis = dim < 0 ? dim + 2 : dim;
    const outShape = shape.map((d, i) => (i === axis ? kk : d));
    expect(r.outputs[0]!.shape).toEqual(outShape);
    const values = new Array<number>(5 * 6).fill(0);
    const indices = new Array<number>(5 * 6).fill(0);
    const lines = shape[1 - axis]!;
    for (let line = 0; line < lines; line++) {
      const at = (p: number) => (axis === 1 ? line * 6 + p : p * 6 + line);
      const order = [...Array(shape[axis]!).keys()].sort((a, b) => (largest ? data[at(b)]! - data[at(a)]! : data[at(a)]! - data[at(b)]!) || a - b);
      order.slice(0, kk).forEach((p, j) => {
        const o = axis === 1 ? line * kk + j : j * lines + line;
        values[o] = data[at(p)]!;
        indices[o] = p;
      });
    }
    expectClose(r.outputs[0]!.data, values.slice(0, outShape[0]! * outShape[1]!));
    expect(Array.from(r.outputs[1]!.data)).toEqual(indices.slice(0, outShape[0]! * outShape[1]!));
  });

  test("ties, -inf and NaN: each index once, NaN first as in PyTorch", () => {
    const r = runRef(
      (t: k.Tensor) => {
        const a = t.topk(4);
        return [a.values, a.indices, t.topk(2, { largest: false }).indices];
      },
      [f([5])],
      [[-Infinity, 2, NaN, 2, -Infinity]],
    );
    expect(Array.from(r.outputs[1]!.data)).toEqual([2, 1, 3, 0]);
    expect(Array.from(r.outputs[0]!.data)).toEqual([NaN, 2, 2, -Infinity]);
    expect(Array.from(r.outputs[2]!.data)).toEqual([0, 4]);
    const allInf = runRef((t: k.Tensor) => t.topk(3).indices, [f([3])], [[-Infinity, -Infinity, -Infinity]]);
    expect(allInf.values).toEqual([0, 1, 2]);
  });

  test("i32 and gradcheck of the values", () => {
    expect(runRef((t: k.Tensor) => k.topk(t, 2).values, [k.i32([4])], [[3, -9, 8, 3]]).values).toEqual([8, 3]);
    gradcheck((t) => t.topk(3, { dim: 1 }).values.square(), [f([3, 5])], [randomData(15, 6)]);
  });

  test("k out of range and unknown options are errors", () => {
    expect(() => runRef((t: k.Tensor) => t.topk(6).values, [f([5])], [data.slice(0, 5)])).toThrow(/k must be an integer in \[0, 5\]/);
    expect(() => runRef((t: k.Tensor) => t.topk(1, { k: 1 } as never).values, [f([5])], [data.slice(0, 5)])).toThrow(/unknown option 'k'/);
  });
});

describe("einsum", () => {
  const A = randomData(12, 7); // [3, 4]
  const B = randomData(20, 8); // [4, 5]
  const at = (d: readonly number[], cols: number, i: number, j: number) => d[i * cols + j]!;
  test("matmul, transpose, sum, outer, trace, diagonal against loops", () => {
    const S = randomData(9, 9); // [3, 3]
    const r = runRef(
      (a: k.Tensor, b: k.Tensor, s: k.Tensor) => [
        k.einsum("ij,jk->ik", a, b),
        k.einsum("ij->ji", a),
        k.einsum("ij->", a),
        k.einsum("i,j->ij", a.slice(0), b.slice(0)),
        k.einsum("ii", s),
        k.einsum("ii->i", s),
        k.einsum("ij,jk", [a, b]),
      ],
      [f([3, 4]), f([4, 5]), f([3, 3])],
      [A, B, S],
    );
    const mm: number[] = [];
    for (let i = 0; i < 3; i++) for (let kk = 0; kk < 5; kk++) mm.push([0, 1, 2, 3].reduce((s, j) => s + at(A, 4, i, j) * at(B, 5, j, kk), 0));
    expectClose(r.outputs[0]!.data, mm, 1e-12);
    const tr: number[] = [];
    for (let j = 0; j < 4; j++) for (let i = 0; i < 3; i++) tr.push(at(A, 4, i, j));
    expectClose(r.outputs[1]!.data, tr);
    expectClose(r.outputs[2]!.data, [A.reduce((s, v) => s + v, 0)], 1e-12);
    const outer: number[] = [];
    for (let i = 0; i < 4; i++) for (let j = 0; j < 5; j++) outer.push(A[i]! * B[j]!);
    expectClose(r.outputs[3]!.data, outer);
    expectClose(r.outputs[4]!.data, [S[0]! + S[4]! + S[8]!], 1e-12);
    expectClose(r.outputs[5]!.data, [S[0]!, S[4]!, S[8]!]);
    expectClose(r.outputs[6]!.data, mm, 1e-12); // implicit output "ik", operands as an array
  });

  test("batched matmul and a three-operand chain with a kept batch letter", () => {
    const [b, i, j, kk, l] = [2, 3, 4, 2, 3];
    const X = randomData(b * i * j, 10);
    const Y = randomData(b * j * kk, 11);
    const Z = randomData(kk * l, 12);
    const r = runRef(
      (x: k.Tensor, y: k.Tensor, z: k.Tensor) => [k.einsum("bij,bjk->bik", x, y), k.einsum("bij,bjk,kl->lb", x, y, z)],
      [f([b, i, j]), f([b, j, kk]), f([kk, l])],
      [X, Y, Z],
    );
    const bmm = (n: number, p: number, q: number) => [...Array(j).keys()].reduce((s, m) => s + X[(n * i + p) * j + m]! * Y[(n * j + m) * kk + q]!, 0);
    const want1: number[] = [];
    for (let n = 0; n < b; n++) for (let p = 0; p < i; p++) for (let q = 0; q < kk; q++) want1.push(bmm(n, p, q));
    expectClose(r.outputs[0]!.data, want1, 1e-12);
    const want2: number[] = [];
    for (let m = 0; m < l; m++)
      for (let n = 0; n < b; n++) {
        let s = 0;
        for (let p = 0; p < i; p++) for (let q = 0; q < kk; q++) s += bmm(n, p, q) * Z[q * l + m]!;
        want2.push(s);
      }
    expectClose(r.outputs[1]!.data, want2, 1e-12);
  });

  test("gradcheck: batch matmul and trace of a product", () => {
    gradcheck((x, y) => k.einsum("bij,bjk->bik", x, y), [f([2, 3, 4]), f([2, 4, 2])], [randomData(24, 13), randomData(16, 14)]);
    gradcheck((x, y) => k.einsum("ij,ji->", x, y), [f([3, 4]), f([4, 3])], [randomData(12, 15), randomData(12, 16)]);
  });

  test("bad subscripts are errors naming the problem", () => {
    const run =
      (eq: string, n = 1) =>
      () =>
        runRef((a: k.Tensor) => k.einsum(eq, ...Array<k.Tensor>(n).fill(a)), [f([2, 3])], [randomData(6, 1)]);
    expect(run("ij,jk->ik")).toThrow(/names 2 operand\(s\), got 1/);
    expect(run("ijk->i")).toThrow(/operand 0 has 2 dims/);
    expect(run("ij->ik")).toThrow(/output letter 'k'/);
    expect(run("ij,ij->ij", 2)).not.toThrow();
    expect(run("ij,jk->ik", 2)).toThrow(/'j' is 3 in one place and 2/);
    expect(run("...j->j")).toThrow(/ellipsis/);
  });
});

/** Pearson's chi-square statistic of observed counts against probabilities. */
function chiSquare(counts: readonly number[], probs: readonly number[]): number {
  const n = counts.reduce((a, b) => a + b, 0);
  return counts.reduce((s, c, i) => s + (probs[i]! === 0 ? (c === 0 ? 0 : Infinity) : (c - n * probs[i]!) ** 2 / (n * probs[i]!)), 0);
}

describe("multinomial and categorical sampling on the graph's seed", () => {
  const weights = [1, 0, 3, 2, 4]; // unnormalized; category 1 never drawn
  const probs = weights.map((w) => w / 10);
  const samples = 4000;
  const draw = (fn: (w: k.Tensor) => k.Tensor, seed: number) => runRef(fn, [f([5])], [weights], seedInput(seed)).values;
  const histogram = (xs: readonly number[]) => xs.reduce((h, v) => ((h[v] = (h[v] ?? 0) + 1), h), new Array<number>(5).fill(0));
  // 4 degrees of freedom (category 1 is exact): P(chi² > 18.47) = 0.001.
  const BOUND = 18.47;

  test("with replacement: the counts fit the weights; the same seed gives the same samples, another seed others", () => {
    const a = draw((w) => k.multinomial(w, samples, { replacement: true }), 1);
    expect(a.length).toBe(samples);
    expect(chiSquare(histogram(a), probs)).toBeLessThan(BOUND);
    expect(draw((w) => k.multinomial(w, samples, { replacement: true }), 1)).toEqual(a);
    expect(draw((w) => k.multinomial(w, samples, { replacement: true }), 2)).not.toEqual(a);
  });

  test("categorical over rows of logits fits softmax's probabilities", () => {
    const logits = weights.map((w) => (w === 0 ? -Infinity : Math.log(w)));
    const rows = 2000;
    const r = runRef((l: k.Tensor) => k.categorical(l.reshape(1, 5).expand(rows, 5)), [f([5])], [logits], seedInput(3)).values;
    expect(r.length).toBe(rows);
    expect(chiSquare(histogram(r), probs)).toBeLessThan(BOUND);
  });

  test("without replacement (the default): distinct categories per row; first picks follow the weights", () => {
    const rows = 2000;
    const r = runRef((w: k.Tensor) => k.multinomial(w.reshape(1, 5).expand(rows, 5), 3), [f([5])], [weights], seedInput(4));
    expect(r.shape).toEqual([rows, 3]);
    const firsts: number[] = [];
    for (let n = 0; n < rows; n++) {
      const row = r.values.slice(3 * n, 3 * n + 3);
      expect(new Set(row).size).toBe(3);
      expect(row).not.toContain(1);
      firsts.push(row[0]!);
    }
    expect(chiSquare(histogram(firsts), probs)).toBeLessThan(BOUND);
    // The second pick given the first is w_j / (10 - w_first): check P(second = 4 | first = 2) = 4/7.
    const afterTwo = [...Array(rows).keys()].filter((n) => r.values[3 * n] === 2).map((n) => r.values[3 * n + 1]!);
    const share = afterTwo.filter((v) => v === 4).length / afterTwo.length;
    expect(Math.abs(share - 4 / 7)).toBeLessThan(4 * Math.sqrt(((4 / 7) * (3 / 7)) / afterTwo.length));
  });

  test("argument errors", () => {
    expect(() => draw((w) => k.multinomial(w, 6), 1)).toThrow(/cannot draw 6 samples from 5 categories without replacement/);
    expect(() => draw((w) => k.multinomial(w, 2, { replace: true } as never), 1)).toThrow(/unknown option 'replace'/);
  });
});
