// The reference interpreter, one primitive at a time, against hand-computed values and
// explicit loops written here (never against the interpreter's own output).

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import { interpret, interpretAll } from "../../compiler/ir/interpret.ts";
import type { NodeSpec, TensorType, ValueId } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import { formatHostTensor, hostTensor, type HostTensor } from "../../compiler/ir/host-tensor.ts";
import { threefry2x32 } from "../../compiler/util/threefry.ts";

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

/** Builds a graph with the given inputs, lets `body` add nodes, and interprets its one output. */
function run(inputs: Record<string, HostTensor>, body: (b: GraphBuilder, ids: Record<string, ValueId>) => ValueId): HostTensor {
  const b = new GraphBuilder("test");
  const ids: Record<string, ValueId> = {};
  for (const [name, t] of Object.entries(inputs)) ids[name] = b.input(name, { dtype: t.dtype, shape: t.shape });
  const out = body(b, ids);
  return interpret(b.build([{ name: "out", value: out }]), inputs)["out"]!;
}

/** One node applied to input "x" (and "y"). */
function runOp(spec: (x: ValueId, y?: ValueId) => NodeSpec, x: HostTensor, y?: HostTensor, declared?: TensorType): HostTensor {
  return run(y ? { x, y } : { x }, (b, ids) => b.add(spec(ids["x"]!, ids["y"]), declared));
}

const f32 = (shape: number[], data: ArrayLike<number>) => hostTensor("f32", shape, data);
const i32 = (shape: number[], data: ArrayLike<number>) => hostTensor("i32", shape, data);
const bool = (shape: number[], data: ArrayLike<number>) => hostTensor("bool", shape, data);
const values = (t: HostTensor) => Array.from(t.data);
/** Deterministic test data (an LCG), independent of the code under test. */
function seq(n: number, seed = 1): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.round(((s / 2147483648) * 20 - 10) * 100) / 100;
  });
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function expectInterpError(fn: () => unknown, pattern: RegExp, code = "interp"): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    expect((e as KilnError).code).toBe(code);
    expect((e as KilnError).message).toMatch(pattern);
    return;
  }
  throw new Error("expected a KilnError");
}

describe("unary f32", () => {
  const x = f32([5], [3, -1, 0.5, 0, 10]);
  test("exact values", () => {
    expect(values(runOp((x) => ({ op: "neg", x }), x))).toEqual([-3, 1, -0.5, -0, -10]);
    expect(values(runOp((x) => ({ op: "exp2", x }), x))).toEqual([8, 0.5, Math.SQRT2, 1, 1024]);
    expect(values(runOp((x) => ({ op: "log2", x }), f32([4], [8, 0.25, 1, 1024])))).toEqual([3, -2, 0, 10]);
    expect(values(runOp((x) => ({ op: "sqrt", x }), f32([3], [9, 0.25, 2])))).toEqual([3, 0.5, Math.SQRT2]);
    expect(values(runOp((x) => ({ op: "recip", x }), f32([3], [4, -0.5, 3])))).toEqual([0.25, -2, 1 / 3]);
    const s = values(runOp((x) => ({ op: "sin", x }), f32([3], [0, Math.PI / 2, Math.PI / 6])));
    expect(s[0]).toBe(0);
    expect(s[1]).toBe(1);
    expect(s[2]).toBeCloseTo(0.5, 15);
  });
  test("IEEE edge cases: NaN, inf, signed zero", () => {
    expect(values(runOp((x) => ({ op: "sqrt", x }), f32([2], [-1, -0])))).toEqual([NaN, -0]);
    expect(values(runOp((x) => ({ op: "log2", x }), f32([3], [-1, 0, Infinity])))).toEqual([NaN, -Infinity, Infinity]);
    expect(values(runOp((x) => ({ op: "exp2", x }), f32([3], [1024, -Infinity, NaN])))).toEqual([Infinity, 0, NaN]);
    expect(values(runOp((x) => ({ op: "recip", x }), f32([3], [0, -0, Infinity])))).toEqual([Infinity, -Infinity, 0]);
  });
  test("computed in float64, not rounded to f32", () => {
    const out = runOp((x, y) => ({ op: "add", x, y: y! }), f32([1], [0.1]), f32([1], [0.2]));
    expect(out.data).toBeInstanceOf(Float64Array);
    expect(out.data[0]).toBe(0.30000000000000004); // float32 would give 0.30000001192092896
  });
});

describe("binary f32", () => {
  const x = f32([5], [1, -2, 3, NaN, 0]);
  const y = f32([5], [4, 5, -6, 1, -0]);
  test("add, mul, max (max propagates NaN)", () => {
    expect(values(runOp((x, y) => ({ op: "add", x, y: y! }), x, y))).toEqual([5, 3, -3, NaN, 0]);
    expect(values(runOp((x, y) => ({ op: "mul", x, y: y! }), x, y))).toEqual([4, -10, -18, NaN, -0]);
    expect(values(runOp((x, y) => ({ op: "max", x, y: y! }), x, y))).toEqual([4, 5, 3, NaN, 0]);
  });
  test("comparisons return bool; NaN compares false", () => {
    const lt = runOp((x, y) => ({ op: "cmplt", x, y: y! }), x, y);
    expect(lt.dtype).toBe("bool");
    expect(lt.data).toBeInstanceOf(Uint8Array);
    expect(values(lt)).toEqual([1, 1, 0, 0, 0]);
    const eq = runOp((x, y) => ({ op: "cmpeq", x, y: y! }), f32([4], [1, NaN, 0, 2]), f32([4], [1, NaN, -0, 3]));
    expect(values(eq)).toEqual([1, 0, 1, 0]);
  });
});

describe("i32 arithmetic", () => {
  test("add and mul wrap around at 32 bits", () => {
    const x = i32([4], [INT_MAX, INT_MIN, 65536, 46341]);
    const y = i32([4], [1, -1, 65536, 46341]);
    expect(values(runOp((x, y) => ({ op: "add", x, y: y! }), x, y))).toEqual([INT_MIN, INT_MAX, 131072, 92682]);
    // 46341^2 = 2147488281 = 2^31 + 4633 -> wraps to -2^31 + 4633.
    expect(values(runOp((x, y) => ({ op: "mul", x, y: y! }), x, y))).toEqual([INT_MAX, INT_MIN, 0, INT_MIN + 4633]);
  });

  test("idiv and mod use floor semantics (Python/PyTorch // and %)", () => {
    const cases: Array<[number, number, number, number]> = [
      // a, b, a // b, a % b
      [7, 2, 3, 1],
      [-7, 2, -4, 1],
      [7, -2, -4, -1],
      [-7, -2, 3, -1],
      [6, 3, 2, 0],
      [-6, 3, -2, 0],
      [0, -5, 0, 0],
      [INT_MIN, -1, INT_MIN, 0], // the quotient 2^31 wraps
      [INT_MAX, INT_MIN, -1, -1],
    ];
    const x = i32(
      [cases.length],
      cases.map((c) => c[0]),
    );
    const y = i32(
      [cases.length],
      cases.map((c) => c[1]),
    );
    expect(values(runOp((x, y) => ({ op: "idiv", x, y: y! }), x, y))).toEqual(cases.map((c) => c[2]));
    expect(values(runOp((x, y) => ({ op: "mod", x, y: y! }), x, y)).map((v) => v + 0)).toEqual(cases.map((c) => c[3]));
  });

  test("idiv/mod satisfy a = b*q + r with r in [0, b) or (b, 0]", () => {
    const a = seq(200, 3).map((v) => Math.round(v * 1000));
    const b = seq(200, 4).map((v) => Math.round(v * 10) || 7);
    const q = values(runOp((x, y) => ({ op: "idiv", x, y: y! }), i32([200], a), i32([200], b)));
    const r = values(runOp((x, y) => ({ op: "mod", x, y: y! }), i32([200], a), i32([200], b)));
    for (let i = 0; i < 200; i++) {
      expect(b[i]! * q[i]! + r[i]!).toBe(a[i]);
      if (b[i]! > 0) expect(r[i]! >= 0 && r[i]! < b[i]!).toBe(true);
      else expect(r[i]! <= 0 && r[i]! > b[i]!).toBe(true);
    }
  });

  test("division or modulo by zero is an interp error naming the node", () => {
    const x = i32([3], [1, 2, 3]);
    const y = i32([3], [1, 0, 1]);
    expectInterpError(
      () => runOp((x, y) => ({ op: "idiv", x, y: y! }), x, y),
      /division by zero at flat index 1 \(2 \/\/ 0\) in graph @test: %0 = idiv %x, %y : i32\[3\]/,
    );
    expectInterpError(() => runOp((x, y) => ({ op: "mod", x, y: y! }), x, y), /modulo by zero.*%0 = mod %x, %y/);
  });

  test("max and comparisons", () => {
    const x = i32([3], [INT_MIN, 5, -3]);
    const y = i32([3], [INT_MAX, 5, -4]);
    expect(values(runOp((x, y) => ({ op: "max", x, y: y! }), x, y))).toEqual([INT_MAX, 5, -3]);
    expect(values(runOp((x, y) => ({ op: "cmplt", x, y: y! }), x, y))).toEqual([1, 0, 0]);
    expect(values(runOp((x, y) => ({ op: "cmpeq", x, y: y! }), x, y))).toEqual([0, 1, 0]);
  });
});

describe("bool ops", () => {
  const x = bool([4], [0, 0, 1, 1]);
  const y = bool([4], [0, 1, 0, 1]);
  test("add = or, mul = and, max = or", () => {
    expect(values(runOp((x, y) => ({ op: "add", x, y: y! }), x, y))).toEqual([0, 1, 1, 1]);
    expect(values(runOp((x, y) => ({ op: "mul", x, y: y! }), x, y))).toEqual([0, 0, 0, 1]);
    expect(values(runOp((x, y) => ({ op: "max", x, y: y! }), x, y))).toEqual([0, 1, 1, 1]);
  });
  test("comparisons treat false < true", () => {
    expect(values(runOp((x, y) => ({ op: "cmplt", x, y: y! }), x, y))).toEqual([0, 1, 0, 0]);
    expect(values(runOp((x, y) => ({ op: "cmpeq", x, y: y! }), x, y))).toEqual([1, 0, 0, 1]);
  });
  test("where picks x where cond is true", () => {
    const out = run({ c: bool([4], [1, 0, 1, 0]), x: f32([4], [1, 2, 3, 4]), y: f32([4], [-1, -2, -3, -4]) }, (b, ids) =>
      b.add({ op: "where", cond: ids["c"]!, x: ids["x"]!, y: ids["y"]! }),
    );
    expect(values(out)).toEqual([1, -2, 3, -4]);
  });
});

describe("cast", () => {
  const castTo = (x: HostTensor, dtype: DType) => runOp((x) => ({ op: "cast", x }), x, undefined, { dtype, shape: x.shape });
  test("f32 -> i32 truncates toward zero and saturates; NaN -> 0", () => {
    const x = f32([9], [1.7, -1.7, 0.5, -0.5, 2.9999, 3e9, -3e9, NaN, -Infinity]);
    expect(values(castTo(x, "i32")).map((v) => v + 0)).toEqual([1, -1, 0, 0, 2, INT_MAX, INT_MIN, 0, INT_MIN]);
  });
  test("-> bool is x != 0 (NaN is true)", () => {
    expect(values(castTo(f32([5], [0, -0, 2, -0.1, NaN]), "bool"))).toEqual([0, 0, 1, 1, 1]);
    expect(values(castTo(i32([3], [0, -5, 7]), "bool"))).toEqual([0, 1, 1]);
  });
  test("i32 and bool -> f32 / i32 are exact", () => {
    const f = castTo(i32([3], [INT_MIN, 0, INT_MAX]), "f32");
    expect(f.data).toBeInstanceOf(Float64Array);
    expect(values(f)).toEqual([INT_MIN, 0, INT_MAX]);
    expect(values(castTo(bool([2], [1, 0]), "f32"))).toEqual([1, 0]);
    expect(values(castTo(bool([2], [1, 0]), "i32"))).toEqual([1, 0]);
  });
});

describe("const, iota, rng", () => {
  test("const fills its shape; scalar const has one element", () => {
    expect(values(run({}, (b) => b.add({ op: "const", value: 2.5 }, { dtype: "f32", shape: [2, 2] })))).toEqual([2.5, 2.5, 2.5, 2.5]);
    const scalar = run({}, (b) => b.add({ op: "const", value: -7 }, { dtype: "i32", shape: [] }));
    expect(scalar.shape).toEqual([]);
    expect(values(scalar)).toEqual([-7]);
  });
  test("iota counts along its axis", () => {
    const out = run({}, (b) => b.add({ op: "iota", axis: 1 }, { dtype: "i32", shape: [2, 3, 2] }));
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) expected.push(j);
    expect(values(out)).toEqual(expected);
  });

  const rngOf = (seed: number, stream: number, shape: number[]) =>
    run({ seed: i32([], [seed]) }, (b, ids) => b.add({ op: "rng", seed: ids["seed"]!, stream }, { dtype: "f32", shape }));
  test("rng value = (threefry first word >>> 8) * 2^-24 at key (seed, stream), counter (flat index, 0)", () => {
    const out = rngOf(-3, 2, [4, 5]);
    for (const index of [0, 7, 19]) {
      const word = threefry2x32(2 ** 32 - 3, 2, index, 0)[0];
      expect(out.data[index]).toBe(Math.floor(word / 256) / 2 ** 24);
    }
  });
  test("rng is deterministic per (seed, stream) and differs across streams and seeds", () => {
    const a = values(rngOf(11, 0, [64]));
    expect(values(rngOf(11, 0, [64]))).toEqual(a);
    expect(values(rngOf(11, 1, [64]))).not.toEqual(a);
    expect(values(rngOf(12, 0, [64]))).not.toEqual(a);
    // The counter is the flat index: the same values whatever the shape.
    expect(values(rngOf(11, 0, [8, 8]))).toEqual(a);
  });
  test("rng is uniform in [0, 1): mean ≈ 0.5 over 10k samples", () => {
    const v = values(rngOf(2024, 5, [100, 100]));
    expect(v.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.015);
  });
});

describe("reductions", () => {
  const shape = [2, 3, 4];
  const data = seq(24, 9);
  const at = (i: number, j: number, k: number) => data[i * 12 + j * 4 + k]!;
  test("reduce_sum over axes [0, 2] keeps them as size 1", () => {
    const out = runOp((x) => ({ op: "reduce_sum", x, axes: [0, 2] }), f32(shape, data));
    expect(out.shape).toEqual([1, 3, 1]);
    const expected = range(3).map((j) => {
      let s = 0;
      for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) s += at(i, j, k);
      return s;
    });
    values(out).forEach((v, j) => expect(v).toBeCloseTo(expected[j]!, 12));
  });
  test("reduce_max over axis 1 and over all axes", () => {
    const out = runOp((x) => ({ op: "reduce_max", x, axes: [1] }), f32(shape, data));
    expect(out.shape).toEqual([2, 1, 4]);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) expected.push(Math.max(at(i, 0, k), at(i, 1, k), at(i, 2, k)));
    expect(values(out)).toEqual(expected);
    const all = runOp((x) => ({ op: "reduce_max", x, axes: [0, 1, 2] }), f32(shape, data));
    expect(all.shape).toEqual([1, 1, 1]);
    expect(values(all)).toEqual([Math.max(...data)]);
  });
  test("empty axis: max -> -inf, sum -> 0", () => {
    expect(values(runOp((x) => ({ op: "reduce_max", x, axes: [1] }), f32([2, 0], [])))).toEqual([-Infinity, -Infinity]);
    expect(values(runOp((x) => ({ op: "reduce_sum", x, axes: [1] }), f32([2, 0], [])))).toEqual([0, 0]);
  });
  test("i32 sum wraps; i32 max is exact", () => {
    expect(values(runOp((x) => ({ op: "reduce_sum", x, axes: [0] }), i32([3], [INT_MAX, 1, 1])))).toEqual([INT_MIN + 1]);
    expect(values(runOp((x) => ({ op: "reduce_max", x, axes: [1] }), i32([2, 2], [-5, -9, INT_MIN, 3])))).toEqual([-5, 3]);
  });
  test("reductions of NaN give NaN", () => {
    expect(values(runOp((x) => ({ op: "reduce_max", x, axes: [0] }), f32([3], [1, NaN, 2])))).toEqual([NaN]);
    expect(values(runOp((x) => ({ op: "reduce_sum", x, axes: [0] }), f32([3], [1, NaN, 2])))).toEqual([NaN]);
  });
});

describe("movement", () => {
  const data = seq(24, 5);
  const x = f32([2, 3, 4], data);
  const at = (i: number, j: number, k: number) => data[i * 12 + j * 4 + k]!;

  test("reshape keeps row-major order", () => {
    const out = runOp((x) => ({ op: "reshape", x }), x, undefined, { dtype: "f32", shape: [4, 6] });
    expect(out.shape).toEqual([4, 6]);
    expect(values(out)).toEqual(data);
  });

  test("permute [2, 0, 1]: out[k][i][j] = x[i][j][k]", () => {
    const out = runOp((x) => ({ op: "permute", x, perm: [2, 0, 1] }), x);
    expect(out.shape).toEqual([4, 2, 3]);
    const expected: number[] = [];
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(at(i, j, k));
    expect(values(out)).toEqual(expected);
  });

  test("expand repeats size-1 axes (broadcasting)", () => {
    const col = f32([3, 1], [1, 2, 3]);
    expect(values(runOp((x) => ({ op: "expand", x }), col, undefined, { dtype: "f32", shape: [3, 2] }))).toEqual([1, 1, 2, 2, 3, 3]);
    const row = f32([1, 3, 1], [1, 2, 3]);
    const out = runOp((x) => ({ op: "expand", x }), row, undefined, { dtype: "f32", shape: [2, 3, 2] });
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 2; k++) expected.push(j + 1);
    expect(values(out)).toEqual(expected);
  });

  test("broadcast add via expand matches an explicit loop", () => {
    const a = seq(6, 1);
    const bias = [10, 20, 30];
    const out = run({ a: f32([2, 3], a), bias: f32([1, 3], bias) }, (b, ids) => {
      const e = b.add({ op: "expand", x: ids["bias"]! }, { dtype: "f32", shape: [2, 3] });
      return b.add({ op: "add", x: ids["a"]!, y: e });
    });
    expect(values(out)).toEqual(a.map((v, i) => v + bias[i % 3]!));
  });

  test("pad with low/high and a fill value", () => {
    const m = f32([2, 3], [1, 2, 3, 4, 5, 6]);
    const out = runOp((x) => ({ op: "pad", x, low: [1, 0], high: [0, 2], value: -1 }), m);
    expect(out.shape).toEqual([3, 5]);
    // prettier-ignore
    expect(values(out)).toEqual([-1, -1, -1, -1, -1, 1, 2, 3, -1, -1, 4, 5, 6, -1, -1]);
  });

  test("pad in 3-d matches an index formula", () => {
    const low = [0, 2, 1];
    const high = [1, 0, 3];
    const out = runOp((x) => ({ op: "pad", x, low, high, value: 0.5 }), x);
    expect(out.shape).toEqual([3, 5, 8]);
    const expected: number[] = [];
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 5; j++)
        for (let k = 0; k < 8; k++) {
          const [a, b, c] = [i - low[0]!, j - low[1]!, k - low[2]!];
          expected.push(a >= 0 && a < 2 && b >= 0 && b < 3 && c >= 0 && c < 4 ? at(a, b, c) : 0.5);
        }
    expect(values(out)).toEqual(expected);
  });

  test("slice with start, stop, step", () => {
    const out = runOp((x) => ({ op: "slice", x, start: [1, 0, 1], stop: [2, 3, 4], step: [1, 2, 2] }), x);
    expect(out.shape).toEqual([1, 2, 2]);
    const expected: number[] = [];
    for (let j = 0; j < 3; j += 2) for (let k = 1; k < 4; k += 2) expected.push(at(1, j, k));
    expect(values(out)).toEqual(expected);
    // step larger than the window, and an empty window
    expect(values(runOp((x) => ({ op: "slice", x, start: [2], stop: [5], step: [7] }), f32([6], range(6))))).toEqual([2]);
    expect(runOp((x) => ({ op: "slice", x, start: [3], stop: [3], step: [1] }), f32([6], range(6))).shape).toEqual([0]);
  });

  test("flip axes [0, 2]", () => {
    const out = runOp((x) => ({ op: "flip", x, axes: [0, 2] }), x);
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) expected.push(at(1 - i, j, 3 - k));
    expect(values(out)).toEqual(expected);
  });

  test("rank-0 tensors: permute [], reduce over no axes, expand to []", () => {
    const scalar = f32([], [-2.5]);
    expect(values(runOp((x) => ({ op: "permute", x, perm: [] }), scalar))).toEqual([-2.5]);
    expect(values(runOp((x) => ({ op: "reduce_sum", x, axes: [] }), scalar))).toEqual([-2.5]);
    expect(values(runOp((x) => ({ op: "reduce_max", x, axes: [] }), f32([2], [3, -1])))).toEqual([3, -1]);
    const toMatrix = runOp((x) => ({ op: "reshape", x }), scalar, undefined, { dtype: "f32", shape: [1, 1] });
    expect(toMatrix.shape).toEqual([1, 1]);
    expect(values(toMatrix)).toEqual([-2.5]);
  });

  test("movement keeps i32 and bool dtypes", () => {
    const out = runOp((x) => ({ op: "permute", x, perm: [1, 0] }), i32([2, 2], [INT_MIN, 1, 2, INT_MAX]));
    expect(out.data).toBeInstanceOf(Int32Array);
    expect(values(out)).toEqual([INT_MIN, 2, 1, INT_MAX]);
    const flipped = runOp((x) => ({ op: "flip", x, axes: [0] }), bool([3], [1, 0, 0]));
    expect(flipped.data).toBeInstanceOf(Uint8Array);
    expect(values(flipped)).toEqual([0, 0, 1]);
  });
});

describe("dot", () => {
  test("batched [2,3,4] x [2,4,5] matches a triple loop", () => {
    const a = seq(24, 7);
    const bData = seq(40, 8);
    const out = run({ a: f32([2, 3, 4], a), b: f32([2, 4, 5], bData) }, (b, ids) => b.add({ op: "dot", lhs: ids["a"]!, rhs: ids["b"]! }));
    expect(out.shape).toEqual([2, 3, 5]);
    for (let batch = 0; batch < 2; batch++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 5; j++) {
          let s = 0;
          for (let k = 0; k < 4; k++) s += a[batch * 12 + i * 4 + k]! * bData[batch * 20 + k * 5 + j]!;
          expect(out.data[batch * 15 + i * 5 + j]).toBeCloseTo(s, 12);
        }
  });
  test("i32 dot is exact and wraps", () => {
    const out = run({ a: i32([1, 2], [65536, 3]), b: i32([2, 1], [65536, 4]) }, (b, ids) => b.add({ op: "dot", lhs: ids["a"]!, rhs: ids["b"]! }));
    expect(values(out)).toEqual([12]); // 2^32 wraps to 0, plus 12
  });
  test("an MLP-sized matmul [32,784] x [784,256] runs and matches sampled entries", () => {
    const a = seq(32 * 784, 2);
    const w = seq(784 * 256, 3);
    const out = run({ a: f32([32, 784], a), w: f32([784, 256], w) }, (b, ids) => b.add({ op: "dot", lhs: ids["a"]!, rhs: ids["w"]! }));
    for (const [i, j] of [
      [0, 0],
      [31, 255],
      [17, 100],
    ] as const) {
      let s = 0;
      for (let k = 0; k < 784; k++) s += a[i * 784 + k]! * w[k * 256 + j]!;
      expect(out.data[i * 256 + j]).toBeCloseTo(s, 9);
    }
  });
});

describe("gather", () => {
  const x = f32(
    [3, 4],
    range(12).map((v) => v * 10),
  );
  test("along axis 1 (PyTorch gather) matches a loop", () => {
    const index = [3, 0, 0, 1, 2, 2, 2, 2, 0];
    const out = run({ x, index: i32([3, 3], index) }, (b, ids) => b.add({ op: "gather", x: ids["x"]!, index: ids["index"]!, axis: 1 }));
    expect(out.shape).toEqual([3, 3]);
    const expected: number[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expected.push(x.data[i * 4 + index[i * 3 + j]!]!);
    expect(values(out)).toEqual(expected);
  });
  test("along axis 0", () => {
    const index = [2, 0, 1, 1];
    const out = run({ x, index: i32([1, 4], index) }, (b, ids) => b.add({ op: "gather", x: ids["x"]!, index: ids["index"]!, axis: 0 }));
    expect(values(out)).toEqual(index.map((r, j) => x.data[r * 4 + j]));
  });
  test("an out-of-range index is an interp error naming the node and index", () => {
    const build = (bad: number) => () =>
      run({ x, index: i32([3, 1], [0, bad, 1]) }, (b, ids) => b.add({ op: "gather", x: ids["x"]!, index: ids["index"]!, axis: 1 }));
    expectInterpError(build(4), /gather index 4 out of range \[0, 4\).*position \[1,0\] in graph @test: %0 = gather %x, %index axis=1/);
    expectInterpError(build(-1), /gather index -1 out of range/);
  });
});

describe("graph inputs and outputs", () => {
  const graph = () => {
    const b = new GraphBuilder("g");
    const x = b.input("x", { dtype: "f32", shape: [2, 2] });
    const n = b.input("n", { dtype: "i32", shape: [2] });
    const y = b.add({ op: "neg", x });
    return b.build([
      { name: "neg", value: y },
      { name: "same", value: x },
      { name: "n", value: n },
    ]);
  };
  test("outputs are keyed by name; f32 given as number[] or Float32Array is widened", () => {
    const raw = { dtype: "f32", shape: [2, 2], data: [1, 2, 3, 4] } as unknown as HostTensor;
    const out = interpret(graph(), { x: raw, n: i32([2], [5, 6]) });
    expect(Object.keys(out).sort()).toEqual(["n", "neg", "same"]);
    expect(values(out["neg"]!)).toEqual([-1, -2, -3, -4]);
    expect(out["same"]!.data).toBeInstanceOf(Float64Array);
    const f32Data = { dtype: "f32", shape: [2, 2], data: new Float32Array([0.1, 2, 3, 4]) } as const;
    const widened = interpret(graph(), { x: f32Data, n: i32([2], [5, 6]) });
    expect(widened["same"]!.data).toBeInstanceOf(Float64Array);
    expect(widened["neg"]!.data[0]).toBe(-Math.fround(0.1));
  });
  test("outputs do not alias the caller's input data", () => {
    const x = f32([2, 2], [1, 2, 3, 4]);
    const out = interpret(graph(), { x, n: i32([2], [5, 6]) });
    (out["same"]!.data as Float64Array)[0] = 99;
    expect(x.data[0]).toBe(1);
  });
  test("missing input, wrong dtype, wrong shape, wrong length", () => {
    const n = i32([2], [5, 6]);
    expectInterpError(() => interpret(graph(), { n }), /missing input 'x' \(expected f32\[2,2\]\)/, "invalid-argument");
    expectInterpError(() => interpret(graph(), { x: i32([2, 2], [1, 2, 3, 4]), n }), /input 'x': expected f32\[2,2\], got i32\[2,2\]/, "dtype-mismatch");
    expectInterpError(() => interpret(graph(), { x: f32([4], [1, 2, 3, 4]), n }), /input 'x': expected f32\[2,2\], got f32\[4\]/, "shape-mismatch");
    const short = { dtype: "f32", shape: [2, 2], data: new Float64Array(3) } as const;
    expectInterpError(() => interpret(graph(), { x: short, n }), /input 'x': f32\[2,2\] needs 4 elements, got 3/, "shape-mismatch");
    const fractional = { dtype: "i32", shape: [2], data: [1.5, 2] } as unknown as HostTensor;
    expectInterpError(() => interpret(graph(), { x: f32([2, 2], [1, 2, 3, 4]), n: fractional }), /input 'n'.*1\.5, not an i32/, "dtype-mismatch");
  });
  test("interpretAll returns every node's value", () => {
    const g = graph();
    const all = interpretAll(g, { x: f32([2, 2], [1, 2, 3, 4]), n: i32([2], [5, 6]) });
    expect(all.size).toBe(g.nodes.length);
  });
});

describe("whole graphs", () => {
  test("softmax written in primitives matches a hand loop", () => {
    const logits = [1, 2, 3, -1, 0, 1];
    const out = run({ x: f32([2, 3], logits) }, (b, ids) => {
      const x = ids["x"]!;
      const t = { dtype: "f32" as const, shape: [2, 3] };
      const max = b.add({ op: "expand", x: b.add({ op: "reduce_max", x, axes: [1] }) }, t);
      const shifted = b.add({ op: "add", x, y: b.add({ op: "neg", x: max }) });
      const log2e = b.add({ op: "const", value: Math.LOG2E }, t);
      const e = b.add({ op: "exp2", x: b.add({ op: "mul", x: shifted, y: log2e }) });
      const sum = b.add({ op: "expand", x: b.add({ op: "reduce_sum", x: e, axes: [1] }) }, t);
      return b.add({ op: "mul", x: e, y: b.add({ op: "recip", x: sum }) });
    });
    for (let r = 0; r < 2; r++) {
      const row = logits.slice(r * 3, r * 3 + 3);
      const z = row.reduce((s, v) => s + Math.exp(v), 0);
      row.forEach((v, c) => expect(out.data[r * 3 + c]).toBeCloseTo(Math.exp(v) / z, 14));
    }
  });

  test("a 100k-element pipeline (pad, slice, permute, reduce) runs quickly", () => {
    const n = 100 * 1000;
    const data = seq(n, 11);
    const started = performance.now();
    const out = run({ x: f32([100, 1000], data) }, (b, ids) => {
      const padded = b.add({ op: "pad", x: ids["x"]!, low: [1, 1], high: [1, 1], value: 0 });
      const inner = b.add({ op: "slice", x: padded, start: [1, 1], stop: [101, 1001], step: [1, 1] });
      const t = b.add({ op: "permute", x: inner, perm: [1, 0] });
      return b.add({ op: "reduce_sum", x: t, axes: [1] });
    });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(out.shape).toEqual([1000, 1]);
    for (const col of [0, 555, 999]) {
      let s = 0;
      for (let r = 0; r < 100; r++) s += data[r * 1000 + col]!;
      expect(out.data[col]).toBeCloseTo(s, 9);
    }
  });
});

describe("host tensors", () => {
  test("hostTensor picks canonical storage and checks the element count", () => {
    expect(hostTensor("f32", [2], [1.5, 2]).data).toBeInstanceOf(Float64Array);
    expect(hostTensor("f32", [2], new Float32Array([1, 2])).data).toBeInstanceOf(Float32Array);
    expect(hostTensor("i32", [2], [-1, 7]).data).toBeInstanceOf(Int32Array);
    expect(hostTensor("bool", [2], [0, 1]).data).toBeInstanceOf(Uint8Array);
    expectInterpError(() => hostTensor("f32", [2, 2], [1, 2, 3]), /f32\[2,2\] needs 4 elements, got 3/, "shape-mismatch");
    expectInterpError(() => hostTensor("bool", [2], [0, 2]), /element 1 is 2, not a bool/, "dtype-mismatch");
    expectInterpError(() => hostTensor("i32", [1], [2 ** 31]), /element 0 is 2147483648, not an i32/, "dtype-mismatch");
  });
  test("formatHostTensor shows dtype, shape and the first elements", () => {
    expect(formatHostTensor(hostTensor("i32", [2, 2], [1, 2, 3, 4]))).toBe("i32[2,2] [1, 2, 3, 4]");
    expect(formatHostTensor(hostTensor("f32", [10], range(10)), 3)).toBe("f32[10] [0, 1, 2, … (10 elements)]");
    expect(formatHostTensor(hostTensor("f32", [], [NaN]))).toBe("f32[] [NaN]");
  });
});
