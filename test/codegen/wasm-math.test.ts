// The wasm target's math against independent references: the exp2 and log2 polynomials vs
// Math.pow / Math.log2 (≤ 2 and ≤ 4 ulp of the f32 result, subnormals, overflow and special
// values included), sin vs Math.sin, floor idiv/mod vs hand-written floor arithmetic,
// saturating casts, NaN-propagating max, and the rng vs compiler/util/threefry.ts bit for bit.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { Graph, NodeSpec, ValueId } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { rngValueAt } from "../../compiler/util/threefry.ts";
import { decodeBase64, WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { hostMath } from "../../runtime/wasm/host-math.ts";
import { relaxedSimdAvailable } from "../../runtime/wasm/engine.ts";
import { bfloat16BitsToNumber, halfBitsToNumber, numberToBfloat16Bits, numberToHalfBits } from "../../runtime/artifact/half.ts";

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

/** out = op(x) (or op(x, y)) over one input vector per operand; runs with and without SIMD. */
function unaryGraph(op: NodeSpec["op"], dtype: DType, n: number, outDtype: DType = dtype, binary = false): Graph {
  const b = new GraphBuilder(`g_${op}`);
  const x = b.input("x", { dtype, shape: [n] });
  const y = binary ? b.input("y", { dtype, shape: [n] }) : undefined;
  const spec = (binary ? { op, x, y } : { op, x }) as NodeSpec;
  const out: ValueId = b.add(spec, { dtype: outDtype, shape: [n] });
  return b.build([{ name: "out", value: out }]);
}

/** Code paths: scalar, SIMD with mul + add, SIMD with relaxed_madd where the engine has it (exp2's Horner steps). */
type MathPath = "scalar" | "simd" | "relaxed simd";

async function run(g: Graph, inputs: Record<string, HostTensor>, path: MathPath): Promise<ArrayLike<number>> {
  const opts = { raw: true, simd: path !== "scalar", relaxedSimd: path === "relaxed simd" && relaxedSimdAvailable() };
  const r = await WasmArtifactRunner.create(compileWasm(g, opts).artifact, { threads: 1 });
  runners.push(r);
  return r.run(inputs)["out"]!.data;
}

const f32Tensor = (data: ArrayLike<number>): HostTensor => ({
  dtype: "f32",
  shape: [data.length],
  data: Float64Array.from(Float32Array.from(Array.from(data))),
});
const i32Tensor = (data: readonly number[]): HostTensor => ({ dtype: "i32", shape: [data.length], data: Int32Array.from(data) });

/** Distance in units in the last place of f32 between two f32 values (finite or equal infinities). */
function ulps(a: number, b: number): number {
  if (a === b) return 0;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return Infinity;
  const bits = (v: number): number => {
    const i = new Int32Array(Float32Array.of(v).buffer)[0]!;
    return i < 0 ? -(i & 0x7fffffff) : i;
  };
  return Math.abs(bits(a) - bits(b));
}

describe.each(["scalar", "simd", "relaxed simd"] as const)("wasm math (%s)", (simd) => {
  test("exp2 within 2 ulp of Math.pow(2, x) rounded to f32, over [-160, 140] plus NaN and ±inf", async () => {
    const xs: number[] = [];
    for (let i = 0; i <= 6000; i++) xs.push(-160 + (300 * i) / 6000 + 0.0137 * Math.sin(i));
    xs.push(NaN, Infinity, -Infinity, 0, -0, 127.99, 128, -126, -149, -149.5);
    const got = await run(unaryGraph("exp2", "f32", xs.length), { x: f32Tensor(xs) }, simd);
    const input = Float32Array.from(xs);
    let worst = 0;
    input.forEach((x, i) => {
      const want = Math.fround(Math.pow(2, x));
      if (Number.isNaN(want)) expect(got[i]).toBeNaN();
      else if (want === 0 || Math.abs(want) < 2 ** -126) expect(Math.abs(got[i]! - want)).toBeLessThanOrEqual(2 * 2 ** -149);
      else worst = Math.max(worst, ulps(got[i]!, want));
    });
    expect(worst).toBeLessThanOrEqual(2);
  });

  test("log2 within 4 ulp of Math.log2 over 1e-44 … 3e38 (subnormals included); 0 → -inf, x < 0 and NaN → NaN, inf → inf", async () => {
    const xs: number[] = [];
    for (let i = 0; i <= 4000; i++) xs.push(Math.pow(2, -146 + (273 * i) / 4000) * (1 + 0.3 * Math.sin(i)));
    for (let i = 0; i <= 400; i++) xs.push(0.5 + i / 400); // around 1, where log2 is small
    xs.push(0, -0, -1, -1e-30, NaN, Infinity, 1, 2, 0.70710677, 0.7071068);
    const got = await run(unaryGraph("log2", "f32", xs.length), { x: f32Tensor(xs) }, simd);
    let worst = 0;
    Float32Array.from(xs).forEach((x, i) => {
      const want = Math.fround(Math.log2(x));
      if (Number.isNaN(want)) expect(got[i]).toBeNaN();
      else worst = Math.max(worst, ulps(got[i]!, want));
    });
    expect(worst).toBeLessThanOrEqual(4);
  });

  test("sin: within 3e-7 of Math.sin up to |x| = 8192 (the vector polynomial), Math.sin itself past it; NaN for ±inf and NaN", async () => {
    const ys: number[] = [];
    for (let i = 0; i <= 3000; i++) ys.push((i - 1500) * 0.0137 + 0.001 * Math.sin(i)); // ±20
    for (let i = 0; i <= 500; i++) ys.push((i - 250) * 32.77); // ±8192
    ys.push(0, -0, Math.PI, -Math.PI / 2, 1e5, -3e7, 1e30, Infinity, -Infinity, NaN);
    const sin = await run(unaryGraph("sin", "f32", ys.length), { x: f32Tensor(ys) }, simd);
    Float32Array.from(ys).forEach((y, i) => {
      const want = Math.fround(Math.sin(y));
      if (Number.isNaN(want)) expect(sin[i]).toBeNaN();
      else if (Math.abs(y) > 8192) expect(sin[i]).toBe(want);
      else expect(Math.abs(sin[i]! - want)).toBeLessThanOrEqual(3e-7);
    });
  });

  test("idiv and mod on i32 floor toward -inf (Python semantics), including INT32_MIN // -1", async () => {
    const a = [-7, 7, -7, 7, 0, -1, 5, -2147483648, 2147483647, -9, 9, 13];
    const b = [2, -2, -2, 2, 3, 4, -3, -1, 7, 3, -3, 13];
    const q = await run(unaryGraph("idiv", "i32", a.length, "i32", true), { x: i32Tensor(a), y: i32Tensor(b) }, simd);
    const m = await run(unaryGraph("mod", "i32", a.length, "i32", true), { x: i32Tensor(a), y: i32Tensor(b) }, simd);
    a.forEach((ai, i) => {
      const bi = b[i]!;
      expect(q[i]).toBe(Math.floor(ai / bi) | 0);
      expect(m[i]).toBe(ai - bi * Math.floor(ai / bi));
    });
  });

  test("f32 → i32 cast truncates and saturates, NaN → 0; max propagates NaN", async () => {
    const xs = [1.9, -1.9, 3e9, -3e9, NaN, Infinity, -Infinity, 0.5, -0.5, 2147483520];
    const c = await run(unaryGraph("cast", "f32", xs.length, "i32"), { x: f32Tensor(xs) }, simd);
    expect(Array.from(c)).toEqual([1, -1, 2147483647, -2147483648, 0, 2147483647, -2147483648, 0, 0, 2147483520]);
    const ys = [NaN, 1, -0, 2, 3, NaN, 0, -5];
    const zs = [1, NaN, 0, 1, 4, NaN, -0, -6];
    const mx = await run(unaryGraph("max", "f32", ys.length, "f32", true), { x: f32Tensor(ys), y: f32Tensor(zs) }, simd);
    expect(Array.from(mx).map((v) => (Number.isNaN(v) ? "nan" : v))).toEqual(["nan", "nan", 0, 2, 4, "nan", 0, -5]);
  });

  test("max against a constant (a ReLU's max(x, 0): pmax, plus +0 for −0) equals Math.max lane for lane, signed zeros and NaN included", async () => {
    // 18 values: four vectors and a scalar remainder of two
    const xs = [NaN, -0, 0, -1e-45, 1e-45, -1, 1, Infinity, -Infinity, 2.5, -2.5, 3e38, -3e38, 1.5, -0, NaN, 0.25, -0];
    for (const c of [0, -0, 2.5, -1, Infinity]) {
      const g = k.traceFunction("max_const", ((x: k.Tensor) => x.maximum(c)) as never, [k.f32([xs.length])]).graph;
      const got = await run(g, { x: f32Tensor(xs) }, simd);
      xs.forEach((x, i) => {
        const want = Math.max(Math.fround(x), c);
        expect(Number.isNaN(want) ? Number.isNaN(got[i]!) : Object.is(got[i], want), `max(${x}, ${c}) = ${got[i]}`).toBe(true);
      });
    }
  });

  test("x + (−y) and (−y) + x (an SGD update's form; one f32x4.sub under SIMD) equal Math.fround(x − y) lane for lane, signed zeros, infinities, NaN and subnormals included", async () => {
    // 18 values: four vectors and a scalar remainder of two
    const xs = [NaN, -0, 0, -1e-45, 1e-45, -1, 1, Infinity, -Infinity, 2.5, -0, 3e38, -3e38, 1.5, 0, 7, 0.25, -0];
    const ys = [1, 0, -0, 1e-45, 1e-45, -1, 3, Infinity, 1, NaN, -0, -3e38, 3e38, 1.5e-7, 0, -7, Infinity, 0];
    const specs = [k.f32([xs.length]), k.f32([xs.length])];
    const forms = {
      "x + (−y)": (x: k.Tensor, y: k.Tensor) => x.add(y.neg()),
      "(−y) + x": (x: k.Tensor, y: k.Tensor) => y.neg().add(x),
      "x + (−y) with −y used twice (kept)": (x: k.Tensor, y: k.Tensor) => x.add(y.neg()).mul(y.neg().add(3)).add(y.neg().mul(0)),
    };
    for (const [name, fn] of Object.entries(forms)) {
      const g = k.traceFunction("sub", fn as never, specs).graph;
      const got = await run(g, { x: f32Tensor(xs), y: f32Tensor(ys) }, simd);
      xs.forEach((xv, i) => {
        const [x, y] = [Math.fround(xv), Math.fround(ys[i]!)];
        const d = Math.fround(x - y);
        const want = name.endsWith("(kept)") ? Math.fround(Math.fround(d * Math.fround(3 - y)) + Math.fround(-y * 0)) : d;
        expect(Number.isNaN(want) ? Number.isNaN(got[i]!) : Object.is(got[i], want), `${name} at x = ${x}, y = ${y}: ${got[i]}`).toBe(true);
      });
      // the form: no f32x4.neg where the negation's only use is the add (0xfd 0xe1 0x01; f32x4.sub is 0xfd 0xe5 0x01)
      if (simd === "scalar" || name.endsWith("(kept)")) continue;
      const bytes = compileWasm(g, { raw: true, relaxedSimd: false }).artifact.kernels.map((kk) => decodeBase64(kk.source));
      const has = (op: number): boolean => bytes.some((b) => b.some((v, i) => v === 0xfd && b[i + 1] === op && b[i + 2] === 0x01));
      expect([has(0xe1), has(0xe5)]).toEqual([false, true]);
    }
  });

  test("rng values equal compiler/util/threefry.ts bit for bit", async () => {
    const b = new GraphBuilder("g_rng");
    const seed = b.input("seed", { dtype: "i32", shape: [] });
    const out = b.add({ op: "rng", seed, stream: 7 }, { dtype: "f32", shape: [3, 41] });
    const got = await run(b.build([{ name: "out", value: out }]), { seed: { dtype: "i32", shape: [], data: Int32Array.of(-12345) } }, simd);
    for (let i = 0; i < 3 * 41; i++) expect(got[i]).toBe(rngValueAt(-12345, 7, i));
  });
});

test("the host math source's threefry equals compiler/util/threefry.ts", () => {
  const rt = hostMath();
  for (const [seed, stream] of [
    [0, 0],
    [42, 1],
    [-1, 0x7fffffff],
    [123456789, 3],
  ] as const)
    for (let i = 0; i < 50; i++) expect(rt.rng(seed, stream, i * 977)).toBe(rngValueAt(seed, stream, i * 977));
});

describe("wasm 16-bit conversions (module-helpers f2h/h2f/f2b/b2f) against runtime/artifact/half.ts", () => {
  // A cast f32 → f16/bf16 stores through f2h/f2b; a cast back loads through h2f/b2f.
  const castGraph = (from: DType, to: DType, n: number): Graph => {
    const b = new GraphBuilder(`cast_${from}_${to}`);
    const x = b.input("x", { dtype: from, shape: [n] });
    return b.build([{ name: "out", value: b.add({ op: "cast", x }, { dtype: to, shape: [n] }) }]);
  };
  const bitsOf = (out: ArrayLike<number>): number[] => Array.from(out);

  test("every f16 and bf16 bit pattern widens to its exact f32 value", async () => {
    for (const [d, decode] of [
      ["f16", halfBitsToNumber],
      ["bf16", bfloat16BitsToNumber],
    ] as const) {
      const all = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
      const got = await run(castGraph(d, "f32", all.length), { x: { dtype: d, shape: [all.length], data: all } }, "scalar");
      const wrong = Array.from(all).filter((bits, i) => !Object.is(got[i], Math.fround(decode(bits))) && !(Number.isNaN(got[i]) && Number.isNaN(decode(bits))));
      expect(wrong, d).toEqual([]);
    }
  });

  test("f32 values round to f16 and bf16 bit patterns as half.ts rounds them: ties, subnormals, overflow, NaN", async () => {
    const rand = (seed: number) => () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const r = rand(9);
    const values = [
      ...Array.from({ length: 3000 }, () => new Float32Array(Uint32Array.of((r() * 2 ** 32) >>> 0).buffer)[0]!), // any f32 bit pattern
      ...Array.from({ length: 1000 }, () => (r() * 2 - 1) * 2 ** -14), // f16 subnormals
      65504,
      65519.99,
      65520,
      -65520,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -25,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      3.3895313892515355e38,
      3.4e38,
      Infinity,
      -Infinity,
      NaN,
      0,
      -0,
    ];
    const x = Float64Array.from(Float32Array.from(values));
    for (const [d, encode] of [
      ["f16", numberToHalfBits],
      ["bf16", numberToBfloat16Bits],
    ] as const) {
      const got = bitsOf(await run(castGraph("f32", d, x.length), { x: { dtype: "f32", shape: [x.length], data: x } }, "scalar"));
      const want = Array.from(x, (v) => encode(v));
      const wrong = want.flatMap((w, i) =>
        got[i] === w || (Number.isNaN(x[i]!) && (got[i]! & 0x7fff) > (d === "f16" ? 0x7c00 : 0x7f80)) ? [] : [[x[i], got[i], w]],
      );
      expect(wrong, d).toEqual([]);
    }
  });
});
