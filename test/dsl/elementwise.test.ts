// Elementwise ops vs. the float64 interpreter: values from Math.* or explicit loops written
// here, broadcasting checked by index formulas, PyTorch's promotion and NaN rules by hand.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose, runRef } from "../util/ref.ts";

/** Row-major broadcast of `data` (shape `from`) to `to`: out[i] = data[index of i in from]. */
function broadcastLoop(data: readonly number[], from: readonly number[], to: readonly number[]): number[] {
  const out: number[] = [];
  const total = to.reduce((a, b) => a * b, 1);
  const lead = to.length - from.length;
  for (let flat = 0; flat < total; flat++) {
    let rest = flat;
    let src = 0;
    let stride = 1;
    for (let axis = to.length - 1; axis >= 0; axis--) {
      const i = rest % to[axis]!;
      rest = Math.floor(rest / to[axis]!);
      const fromAxis = axis - lead;
      if (fromAxis >= 0) {
        const d = from[fromAxis]!;
        src += (d === 1 ? 0 : i) * stride;
        stride *= d;
      }
    }
    out.push(data[src]!);
  }
  return out;
}

const seq = (n: number, f: (i: number) => number = (i) => i): number[] => Array.from({ length: n }, (_, i) => f(i));

describe("arithmetic with broadcasting", () => {
  test("add [2,3] + [3] matches a loop", () => {
    const a = seq(6, (i) => i * 1.5 - 2);
    const b = [10, 20, 30];
    const r = runRef((x: k.Tensor, y: k.Tensor) => x.add(y), [k.f32([2, 3]), k.f32([3])], [a, b]);
    expect(r.shape).toEqual([2, 3]);
    expectClose(
      r.values,
      a.map((v, i) => v + b[i % 3]!),
    );
  });

  test("mul [2,1,3] * [4,1] broadcasts both ways to [2,4,3]", () => {
    const a = seq(6, (i) => i + 1);
    const b = [2, -1, 0.5, 3];
    const r = runRef((x: k.Tensor, y: k.Tensor) => x.mul(y), [k.f32([2, 1, 3]), k.f32([4, 1])], [a, b]);
    expect(r.shape).toEqual([2, 4, 3]);
    const ea = broadcastLoop(a, [2, 1, 3], [2, 4, 3]);
    const eb = broadcastLoop(b, [4, 1], [2, 4, 3]);
    expectClose(
      r.values,
      ea.map((v, i) => v * eb[i]!),
    );
  });

  test("0-d tensor and size-0 dims broadcast", () => {
    const r = runRef((x: k.Tensor, s: k.Tensor) => x.sub(s), [k.f32([2, 2]), k.f32([])], [[1, 2, 3, 4], [10]]);
    expectClose(r.values, [-9, -8, -7, -6]);
    const empty = runRef((x: k.Tensor, y: k.Tensor) => x.add(y), [k.f32([0, 3]), k.f32([1, 3])], [[], [1, 2, 3]]);
    expect(empty.shape).toEqual([0, 3]);
  });

  test("scalars on either side; sub and add with alpha", () => {
    const a = [1, 2, 3];
    expectClose(runRef((x: k.Tensor) => x.add(2.5), [k.f32([3])], [a]).values, [3.5, 4.5, 5.5]);
    expectClose(runRef((x: k.Tensor) => k.sub(10, x), [k.f32([3])], [a]).values, [9, 8, 7]);
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => x.sub(y, 2), [k.f32([3]), k.f32([3])], [a, [1, 1, 1]]).values, [-1, 0, 1]);
    expectClose(runRef((x: k.Tensor) => x.add(x, 3), [k.f32([3])], [a]).values, [4, 8, 12]);
    expectClose(runRef((x: k.Tensor) => x.add(1, 3), [k.f32([3])], [a]).values, [4, 5, 6]);
  });

  test("div is true division, also for integers and scalar divisors", () => {
    const r = runRef(
      (x: k.Tensor, y: k.Tensor) => x.div(y),
      [k.i32([4]), k.i32([4])],
      [
        [7, -7, 1, 0],
        [2, 2, 3, 4],
      ],
    );
    expect(r.outputs[0]!.dtype).toBe("f32");
    expectClose(r.values, [3.5, -3.5, 1 / 3, 0], 1e-12);
    expectClose(runRef((x: k.Tensor) => x.div(4), [k.f32([2])], [[1, -6]]).values, [0.25, -1.5]);
    expectClose(runRef((x: k.Tensor) => k.div(1, x), [k.f32([3])], [[2, 0, -0.5]]).values, [0.5, Infinity, -2]);
  });

  test("floorDivide and remainder floor like Python", () => {
    const a = [7, -7, 7, -7];
    const b = [2, 2, -2, -2];
    const q = runRef((x: k.Tensor, y: k.Tensor) => x.floorDivide(y), [k.i32([4]), k.i32([4])], [a, b]);
    expect(q.outputs[0]!.dtype).toBe("i32");
    expect(q.values).toEqual([3, -4, -4, 3]);
    expect(runRef((x: k.Tensor, y: k.Tensor) => x.remainder(y), [k.i32([4]), k.i32([4])], [a, b]).values).toEqual([1, 1, -1, -1]);
  });
});

describe("rounding and float floor division", () => {
  const xs = [-2.5, -1.5, -0.7, -0.5, 0, 0.3, 0.5, 1.5, 2.5, 2.51, 7, 3e9, -3e9, Infinity, NaN];
  const run = (fn: (x: k.Tensor) => k.Tensor) => runRef(fn, [k.f32([xs.length])], [xs]).values;
  /** Half to even, written out: ties go to the even neighbour. */
  const roundHalfEven = (v: number) => {
    const f = Math.floor(v);
    const d = v - f;
    return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  };
  test("floor, ceil, trunc, round match Math (round: half to even)", () => {
    expectClose(
      run((x) => x.floor()),
      xs.map(Math.floor),
    );
    expectClose(
      run((x) => x.ceil()),
      xs.map(Math.ceil),
    );
    expectClose(
      run((x) => x.trunc()),
      xs.map(Math.trunc),
    );
    expectClose(
      run((x) => x.round()),
      xs.map((v) => (Number.isFinite(v) ? roundHalfEven(v) : v)),
    );
    expectClose(run((x) => x.round()).slice(0, 10), [-2, -2, -1, 0, 0, 0, 0, 2, 2, 3]);
  });
  test("f32 floorDivide and remainder follow Python's signs", () => {
    const a = [7.5, -7.5, 7.5, -7.5, 1];
    const b = [2, 2, -2, -2, 0.25];
    const specs = [k.f32([5]), k.f32([5])];
    expectClose(
      runRef((x: k.Tensor, y: k.Tensor) => x.floorDivide(y), specs, [a, b]).values,
      a.map((v, i) => Math.floor(v / b[i]!)),
    );
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => x.remainder(y), specs, [a, b]).values, [1.5, 0.5, -0.5, -1.5, 0]);
    expectClose(runRef((x: k.Tensor) => x.remainder(3), [k.i32([2])], [[-7, 7]]).values, [2, 1]);
  });
});

describe("dtype promotion (PyTorch rules)", () => {
  const dtypeOf = (fn: (...a: k.Tensor[]) => k.Tensor, specs: k.InputSpec[], data: number[][]) => runRef(fn, specs, data).outputs[0]!.dtype;

  test("i32 + 0.5 → f32, i32 + 1 → i32, i32 + f32 → f32", () => {
    const r = runRef((x: k.Tensor) => x.add(0.5), [k.i32([2])], [[1, -2]]);
    expect(r.outputs[0]!.dtype).toBe("f32");
    expectClose(r.values, [1.5, -1.5]);
    expect(dtypeOf((x) => x.add(1), [k.i32([2])], [[1, 2]])).toBe("i32");
    expect(
      dtypeOf(
        (x, y) => x.add(y),
        [k.i32([2]), k.f32([2])],
        [
          [1, 2],
          [0.5, 0.5],
        ],
      ),
    ).toBe("f32");
    expect(dtypeOf((x) => x.mul(2), [k.f32([2])], [[1, 2]])).toBe("f32");
  });

  test("bool: + bool stays bool (or), + 1 gives i32, sum counts", () => {
    const r = runRef(
      (x: k.Tensor, y: k.Tensor) => x.add(y),
      [k.bool([4]), k.bool([4])],
      [
        [0, 1, 0, 1],
        [0, 0, 1, 1],
      ],
    );
    expect(r.outputs[0]!.dtype).toBe("bool");
    expect(r.values).toEqual([0, 1, 1, 1]);
    const n = runRef((x: k.Tensor) => x.add(1), [k.bool([2])], [[0, 1]]);
    expect(n.outputs[0]!.dtype).toBe("i32");
    expect(n.values).toEqual([1, 2]);
  });

  test("comparisons return bool and compare in the promoted type", () => {
    const r = runRef((x: k.Tensor) => x.lt(0.5), [k.i32([3])], [[0, 1, -1]]);
    expect(r.outputs[0]!.dtype).toBe("bool");
    expect(r.values).toEqual([1, 0, 1]);
    const a = [1, 2, 3, 2];
    const b = [2, 2, 2, 2];
    const specs = [k.f32([4]), k.f32([4])];
    const cmp = (fn: (x: k.Tensor, y: k.Tensor) => k.Tensor) => runRef(fn, specs, [a, b]).values;
    expect(cmp((x, y) => x.lt(y))).toEqual([1, 0, 0, 0]);
    expect(cmp((x, y) => x.le(y))).toEqual([1, 1, 0, 1]);
    expect(cmp((x, y) => x.gt(y))).toEqual([0, 0, 1, 0]);
    expect(cmp((x, y) => x.ge(y))).toEqual([0, 1, 1, 1]);
    expect(cmp((x, y) => x.eq(y))).toEqual([0, 1, 0, 1]);
    expect(cmp((x, y) => x.ne(y))).toEqual([1, 0, 1, 0]);
  });

  test("NaN compares false except ne", () => {
    const specs = [k.f32([2]), k.f32([2])];
    const data = [
      [NaN, NaN],
      [1, NaN],
    ];
    for (const op of ["lt", "le", "gt", "ge", "eq"] as const) expect(runRef((x: k.Tensor, y: k.Tensor) => x[op](y), specs, data).values, op).toEqual([0, 0]);
    expect(runRef((x: k.Tensor, y: k.Tensor) => x.ne(y), specs, data).values).toEqual([1, 1]);
  });

  test("cast: f32 → i32 truncates toward zero, → bool is != 0", () => {
    expect(runRef((x: k.Tensor) => x.cast("i32"), [k.f32([4])], [[2.7, -2.7, 0.2, -0]]).values).toEqual([2, -2, 0, 0]);
    expect(runRef((x: k.Tensor) => x.cast("bool"), [k.f32([3])], [[0, -0.5, 3]]).values).toEqual([0, 1, 1]);
    expectClose(runRef((x: k.Tensor) => x.float().mul(0.5), [k.i32([2])], [[3, -1]]).values, [1.5, -0.5]);
  });
});

describe("unary math", () => {
  const xs = [0.25, 1, 2.5, 7];
  const cases: [string, (x: k.Tensor) => k.Tensor, (v: number) => number][] = [
    ["exp", (x) => x.exp(), Math.exp],
    ["log", (x) => x.log(), Math.log],
    ["sqrt", (x) => x.sqrt(), Math.sqrt],
    ["rsqrt", (x) => x.rsqrt(), (v) => 1 / Math.sqrt(v)],
    ["neg", (x) => x.neg(), (v) => -v],
    ["reciprocal", (x) => x.reciprocal(), (v) => 1 / v],
    ["sin", (x) => x.sin(), Math.sin],
    ["cos", (x) => x.cos(), Math.cos],
    ["square", (x) => x.square(), (v) => v * v],
  ];
  test.each(cases)("%s matches Math", (_name, fn, ref) => {
    expectClose(runRef(fn, [k.f32([4])], [xs]).values, xs.map(ref), 1e-12, 1e-12);
  });

  test("abs and neg on f32 and i32", () => {
    expectClose(runRef((x: k.Tensor) => x.abs(), [k.f32([3])], [[-2.5, 0, 3]]).values, [2.5, 0, 3]);
    const r = runRef((x: k.Tensor) => x.abs().add(x.neg()), [k.i32([3])], [[-4, 0, 5]]);
    expect(r.outputs[0]!.dtype).toBe("i32");
    expect(r.values).toEqual([8, 0, 0]);
  });

  test("log/sqrt of negatives are NaN, log(0) is -inf", () => {
    expectClose(runRef((x: k.Tensor) => x.log(), [k.f32([2])], [[-1, 0]]).values, [NaN, -Infinity]);
    expectClose(runRef((x: k.Tensor) => x.sqrt(), [k.f32([1])], [[-4]]).values, [NaN]);
  });

  test("isnan / isinf", () => {
    const data = [[NaN, Infinity, -Infinity, 1]];
    expect(runRef((x: k.Tensor) => x.isnan(), [k.f32([4])], data).values).toEqual([1, 0, 0, 0]);
    expect(runRef((x: k.Tensor) => x.isinf(), [k.f32([4])], data).values).toEqual([0, 1, 1, 0]);
  });
});

describe("pow", () => {
  const base = [-2, -0.5, 0, 1.5, 3];
  test.each([2, 3, -1, -2, 5, 0])("integer exponent %d is exact for negative bases", (e) => {
    expectClose(
      runRef((x: k.Tensor) => x.pow(e), [k.f32([5])], [base]).values,
      base.map((b) => b ** e),
      1e-12,
      1e-12,
    );
  });

  test("x ** 0 is 1 even for inf and NaN; i32 stays i32", () => {
    expectClose(runRef((x: k.Tensor) => x.pow(0), [k.f32([3])], [[Infinity, NaN, 0]]).values, [1, 1, 1]);
    const r = runRef((x: k.Tensor) => x.pow(3), [k.i32([2])], [[-2, 3]]);
    expect(r.outputs[0]!.dtype).toBe("i32");
    expect(r.values).toEqual([-8, 27]);
  });

  test("fractional exponents: NaN for a negative base", () => {
    expectClose(runRef((x: k.Tensor) => x.pow(0.5), [k.f32([3])], [[4, 2, -1]]).values, [2, Math.SQRT2, NaN], 1e-12);
    expectClose(runRef((x: k.Tensor) => x.pow(2.5), [k.f32([3])], [[4, 0, -1]]).values, [32, 0, NaN], 1e-12, 1e-12);
  });

  test("tensor exponent: integral exponents of negative bases keep their sign", () => {
    const xs = [-2, -2, -2, 2, 0, 0, 5];
    const ys = [3, 2, 0.5, -1, 0, 2, 1.5];
    const expected = xs.map((x, i) => x ** ys[i]!);
    expect(Number.isNaN(expected[2])).toBe(true);
    expectClose(runRef((x: k.Tensor, y: k.Tensor) => x.pow(y), [k.f32([7]), k.f32([7])], [xs, ys]).values, expected, 1e-12, 1e-12);
  });
});

describe("maximum, minimum, clamp, where, logical ops", () => {
  test("maximum/minimum broadcast", () => {
    const a = [1, 5, -3, 4, 0, 2];
    const b = [2, 0, 1];
    const eb = broadcastLoop(b, [3], [2, 3]);
    expectClose(
      runRef((x: k.Tensor, y: k.Tensor) => k.maximum(x, y), [k.f32([2, 3]), k.f32([3])], [a, b]).values,
      a.map((v, i) => Math.max(v, eb[i]!)),
    );
    expectClose(
      runRef((x: k.Tensor, y: k.Tensor) => x.minimum(y), [k.f32([2, 3]), k.f32([3])], [a, b]).values,
      a.map((v, i) => Math.min(v, eb[i]!)),
    );
    const i = runRef((x: k.Tensor) => k.minimum(x, 2), [k.i32([3])], [[1, 2, 3]]);
    expect(i.outputs[0]!.dtype).toBe("i32");
    expect(i.values).toEqual([1, 2, 2]);
  });

  test("clamp", () => {
    expectClose(runRef((x: k.Tensor) => x.clamp(-1, 1), [k.f32([4])], [[-3, -0.5, 0.5, 3]]).values, [-1, -0.5, 0.5, 1]);
    expectClose(runRef((x: k.Tensor) => x.clamp(0), [k.f32([2])], [[-3, 3]]).values, [0, 3]);
  });

  test("where with tensors, scalars and a broadcast condition", () => {
    const c = [1, 0, 1];
    const a = [1, 2, 3, 4, 5, 6];
    const b = [-1, -2, -3, -4, -5, -6];
    const r = runRef((cond: k.Tensor, x: k.Tensor, y: k.Tensor) => k.where(cond, x, y), [k.bool([3]), k.f32([2, 3]), k.f32([2, 3])], [c, a, b]);
    expectClose(
      r.values,
      a.map((v, i) => (c[i % 3] ? v : b[i]!)),
    );
    const ints = runRef((cond: k.Tensor) => k.where(cond, 1, 0), [k.bool([3])], [c]);
    expect(ints.outputs[0]!.dtype).toBe("i32");
    expect(ints.values).toEqual([1, 0, 1]);
    const floats = runRef((cond: k.Tensor) => cond.where(1.5, 0), [k.bool([3])], [c]);
    expect(floats.outputs[0]!.dtype).toBe("f32");
    expectClose(floats.values, [1.5, 0, 1.5]);
    const mixed = runRef((cond: k.Tensor, y: k.Tensor) => k.where(cond, 0.5, y), [k.bool([3]), k.i32([3])], [c, [7, 8, 9]]);
    expect(mixed.outputs[0]!.dtype).toBe("f32");
    expectClose(mixed.values, [0.5, 8, 0.5]);
  });

  test("logical ops", () => {
    const a = [0, 0, 1, 1];
    const b = [0, 1, 0, 1];
    const specs = [k.bool([4]), k.bool([4])];
    expect(runRef((x: k.Tensor, y: k.Tensor) => x.logicalAnd(y), specs, [a, b]).values).toEqual([0, 0, 0, 1]);
    expect(runRef((x: k.Tensor, y: k.Tensor) => x.logicalOr(y), specs, [a, b]).values).toEqual([0, 1, 1, 1]);
    expect(runRef((x: k.Tensor, y: k.Tensor) => x.logicalXor(y), specs, [a, b]).values).toEqual([0, 1, 1, 0]);
    expect(runRef((x: k.Tensor) => x.logicalNot(), [k.f32([3])], [[0, 2, -1]]).values).toEqual([1, 0, 0]);
  });
});

/** erf by its Maclaurin series: exact to float64 rounding for |x| <= 3 with 60 terms. */
function erfSeries(x: number): number {
  let term = x;
  let total = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    total += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * total;
}

describe("activations", () => {
  const xs = [-4, -1.5, -0.3, 0, 0.2, 1, 2.5, 6];
  const run = (fn: (x: k.Tensor) => k.Tensor) => runRef(fn, [k.f32([xs.length])], [xs]).values;

  test("relu, leakyRelu", () => {
    expectClose(
      run((x) => x.relu()),
      xs.map((v) => Math.max(v, 0)),
    );
    expectClose(
      run((x) => x.leakyRelu()),
      xs.map((v) => (v > 0 ? v : 0.01 * v)),
    );
    expectClose(
      run((x) => x.leakyRelu(0.2)),
      xs.map((v) => (v > 0 ? v : 0.2 * v)),
    );
  });

  test("sigmoid, tanh, silu", () => {
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expectClose(
      run((x) => x.sigmoid()),
      xs.map(sig),
      1e-12,
    );
    expectClose(
      run((x) => x.tanh()),
      xs.map(Math.tanh),
      1e-12,
    );
    expectClose(
      run((x) => x.silu()),
      xs.map((v) => v * sig(v)),
      1e-12,
    );
  });

  test("tanh and sigmoid saturate without NaN", () => {
    const big = [-1000, 1000];
    expectClose(runRef((x: k.Tensor) => x.tanh(), [k.f32([2])], [big]).values, [-1, 1]);
    expectClose(runRef((x: k.Tensor) => x.sigmoid(), [k.f32([2])], [big]).values, [0, 1]);
  });

  test("softplus: log1p(exp(βx))/β, linear above the threshold", () => {
    expectClose(
      run((x) => x.softplus()),
      xs.map((v) => Math.log1p(Math.exp(v))),
      1e-12,
    );
    expectClose(
      run((x) => x.softplus(2, 3)),
      xs.map((v) => (2 * v > 3 ? v : Math.log1p(Math.exp(2 * v)) / 2)),
      1e-12,
    );
    expectClose(runRef((x: k.Tensor) => x.softplus(), [k.f32([2])], [[-800, 800]]).values, [0, 800]);
  });

  test("gelu exact matches x·Φ(x) (erf series) within the erf approximation's 1.5e-7", () => {
    expectClose(
      run((x) => x.gelu()),
      xs.map((v) => 0.5 * v * (1 + erfSeries(v / Math.SQRT2))),
      1e-6,
      0,
    );
    expectClose(
      run((x) => x.erf()),
      xs.map((v) => (Math.abs(v) > 3 ? Math.sign(v) : erfSeries(v))),
      2e-7,
      0,
    );
  });

  test("gelu tanh approximation", () => {
    const ref = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expectClose(
      run((x) => x.gelu("tanh")),
      xs.map(ref),
      1e-12,
    );
  });
});

describe("maskedFill and creation helpers", () => {
  test("maskedFill with a broadcast mask keeps x's dtype", () => {
    const r = runRef(
      (x: k.Tensor, m: k.Tensor) => x.maskedFill(m, -Infinity),
      [k.f32([2, 3]), k.bool([3])],
      [
        [1, 2, 3, 4, 5, 6],
        [0, 1, 0],
      ],
    );
    expect(r.values).toEqual([1, -Infinity, 3, 4, -Infinity, 6]);
    const i = runRef(
      (x: k.Tensor, m: k.Tensor) => k.maskedFill(x, m, 9),
      [k.i32([2]), k.bool([2])],
      [
        [1, 2],
        [1, 0],
      ],
    );
    expect(i.outputs[0]!.dtype).toBe("i32");
    expect(i.values).toEqual([9, 2]);
  });

  test("zeros/ones/full infer dtypes like torch; *Like follow x", () => {
    const r = runRef(
      (x: k.Tensor) => [k.zeros([2, 2]), k.ones([3], "i32"), k.full([2], 2.5), k.full([1], 7), k.full([1], true), k.onesLike(x), k.fullLike(x, 3), k.scalar(4)],
      [k.i32([2])],
      [[5, 6]],
    );
    expect(r.outputs.map((o) => [o.dtype, o.shape])).toEqual([
      ["f32", [2, 2]],
      ["i32", [3]],
      ["f32", [2]],
      ["i32", [1]],
      ["bool", [1]],
      ["i32", [2]],
      ["i32", [2]],
      ["i32", []],
    ]);
    expect(r.outputs.map((o) => Array.from(o.data))).toEqual([[0, 0, 0, 0], [1, 1, 1], [2.5, 2.5], [7], [1], [1, 1], [3, 3], [4]]);
  });

  test("arange(end), arange(start, end, step), fractional steps give f32", () => {
    const r = runRef((x: k.Tensor) => [k.arange(5), k.arange(2, 11, 3), k.arange(0, 1, 0.25), k.arange(5, 1, -2), k.arange(3, 3), x], [k.f32([1])], [[0]]);
    expect(r.outputs.map((o) => o.dtype)).toEqual(["i32", "i32", "f32", "i32", "i32", "f32"]);
    expect(r.outputs.slice(0, 5).map((o) => Array.from(o.data))).toEqual([[0, 1, 2, 3, 4], [2, 5, 8], [0, 0.25, 0.5, 0.75], [5, 3], []]);
  });
});
