// The op suite over f16 and bf16 on webgpu (test/targets/op-cases.ts describeHalfOpSuite):
// 16-bit values live two per u32 word (2 bytes each; a store is a whole word where one thread
// owns both halves, else an atomicAnd/atomicOr on its half: test/targets/webgpu-half-words.test.ts), compute in f32 and round per op in integer ops, so no shader-f16 adapter feature is
// needed. Then packed storage itself: bytes per element, odd lengths, a tiled matmul's stores,
// 16-bit tensors inside a binding pack, against the interpreter; and, where the device has
// shader-f16, the same with f16 tensors bound as array<f16> (k.compile's default there). By default the
// bit-for-bit cases of both and f16's elementwise group (each new shader costs
// lavapipe seconds); KILN_FULL=1 runs every group. Skips without an adapter (test/util/webgpu-env.ts).

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { bfloat16BitsToNumber, halfBitsToNumber, numberToBfloat16Bits, numberToHalfBits } from "../../runtime/artifact/half.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { FULL } from "../util/full.ts";
import { caseGroups, describeHalfOpSuite, halfCase, opCases, runCaseOnTarget, type OpCase } from "./op-cases.ts";
import { webGpuTestTarget } from "./test-targets.ts";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";

const env = await webGpuTestEnv();
const TIMEOUT_MS = 180_000;
const target = webGpuTestTarget(() => env.context!);
for (const dtype of ["f16", "bf16"] as const)
  describeHalfOpSuite(target, dtype, FULL ? caseGroups : dtype === "f16" ? ["elementwise"] : [], {
    skip: !env.available,
    timeoutMs: TIMEOUT_MS,
    mixed: FULL || dtype === "f16", // the bf16 AdamW step: ~13 s of shader compilation on a cold lavapipe cache
  });

// The same kernels with f16 tensors bound as array<f16> (`enable f16;`), where the device has shader-f16.
const hasF16 = env.available && env.context!.shaderF16;
if (env.available && !hasF16) console.log("webgpu-half-ops.test: the adapter has no shader-f16, skipping the array<f16> runs");
const f16Target = webGpuTestTarget(
  () => env.context!,
  () => ({ shaderF16: true }),
  "webgpu target, shader-f16 storage",
);
// Its checks: the conversions on every bit pattern, the packed-storage cases and the whole-range
// rounding test below run on it too (each new shader costs lavapipe time: not the whole suite).

for (const [storage, convTarget, available] of [
  ["u32 words", target, env.available],
  ["array<f16> (shader-f16)", f16Target, hasF16],
] as const)
  describe.skipIf(!available)(`webgpu 16-bit conversions (kiln_f2h/h2f/f2b/b2f) against runtime/artifact/half.ts, ${storage}`, () => {
    const castRun = async (from: DType, to: DType, data: HostTensor["data"]): Promise<ArrayLike<number>> => {
      const b = new GraphBuilder(`cast_${from}_${to}`);
      const x = b.input("x", { dtype: from, shape: [data.length] });
      const g = b.build([{ name: "out", value: b.add({ op: "cast", x }, { dtype: to, shape: [data.length] }) }]);
      const out = await convTarget.compile(g, { verify: true }).run({ x: { dtype: from, shape: [data.length], data } });
      return out["out"]!.data;
    };

    test(
      "every f16 and bf16 bit pattern widens to its exact f32 value",
      async () => {
        for (const [d, decode] of [
          ["f16", halfBitsToNumber],
          ["bf16", bfloat16BitsToNumber],
        ] as const) {
          const all = Uint16Array.from({ length: 0x10000 }, (_, i) => i);
          const got = await castRun(d, "f32", all);
          const wrong = Array.from(all).filter((bits, i) => !Object.is(got[i], decode(bits)) && !(Number.isNaN(got[i]) && Number.isNaN(decode(bits))));
          expect(wrong, d).toEqual([]);
        }
      },
      TIMEOUT_MS,
    );

    test(
      "f32 values round to f16 and bf16 bit patterns as half.ts rounds them: ties, subnormals, overflow",
      async () => {
        let seed = 11;
        const r = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
        const finite = (v: number): boolean => Number.isFinite(v);
        const values = [
          ...Array.from({ length: 3000 }, () => new Float32Array(Uint32Array.of((r() * 2 ** 32) >>> 0).buffer)[0]!).filter(finite),
          ...Array.from({ length: 1000 }, () => (r() * 2 - 1) * 2 ** -14),
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
          3.4e38,
          0,
          -0,
        ].filter((v) => Math.abs(v) === 0 || Math.abs(v) >= 2 ** -126); // f32 subnormals may flush to zero on a GPU
        const x = Float64Array.from(Float32Array.from(values));
        for (const [d, encode] of [
          ["f16", numberToHalfBits],
          ["bf16", numberToBfloat16Bits],
        ] as const) {
          const got = await castRun("f32", d, x);
          const wrong = Array.from(x).flatMap((v, i) => (got[i] === encode(v) ? [] : [[v, got[i], encode(v)]]));
          expect(wrong, d).toEqual([]);
        }
      },
      TIMEOUT_MS,
    );
  });

describe.skipIf(!env.available)("webgpu packed 16-bit storage: two elements per u32 word", () => {
  const exact = { atol: 0, rtol: 0, group: "elementwise" as const };
  const h = (dtype: "f16" | "bf16", shape: number[]): k.InputSpec => (dtype === "f16" ? k.f16(shape) : k.bf16(shape));

  test("a 16-bit tensor takes 2 bytes per element on the device (an odd length rounds up to a whole word)", () => {
    for (const n of [1, 7, 1001]) {
      for (const dtype of ["f16", "bf16", "f32"] as const) {
        const b = new GraphBuilder(`bytes_${dtype}_${n}`);
        const x = b.input("x", { dtype, shape: [n] });
        const y = b.input("y", { dtype, shape: [n] });
        const g = b.build([{ name: "out", value: b.add({ op: "mul", x, y }, { dtype, shape: [n] }) }]);
        const { artifact } = compileWebGpu(g, { limits: env.context!.limits });
        const want = dtype === "f32" ? 4 * n : 4 * Math.ceil(n / 2);
        for (const buffer of artifact.buffers) expect(artifact.memory.slotBytes[buffer.slot], `${dtype}[${n}] ${buffer.name}`).toBe(want);
      }
    }
  });

  const cases: OpCase[] = (["f16", "bf16"] as const).flatMap((dtype) => [
    // Odd lengths: the last word's high half is padding; neighbours share every other word.
    ...[1, 3, 257].map((n) => ({
      ...exact,
      name: `x * y + x, length ${n} [${dtype}]`,
      fn: (x: k.Tensor, y: k.Tensor) => x.mul(y).add(x),
      specs: [h(dtype, [n]), h(dtype, [n])],
      range: [-8, 8] as [number, number],
    })),
    // A strided read and a transposed store: elements of one word come from different threads.
    { ...exact, name: `transpose of a 5x3 [${dtype}]`, fn: (x: k.Tensor) => x.transpose(0, 1).add(0), specs: [h(dtype, [5, 3])] },
    // The tiled matmul form's stores (and its 16-bit operand loads).
    halfCase(opCases.find((c) => c.name === "matmul 2-d, odd sizes")!, dtype),
  ]);
  const target = webGpuTestTarget(() => env.context!);
  test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, target), TIMEOUT_MS);
  // The f16 ones bound as array<f16> (no atomics; the same 2 bytes per element).
  test.skipIf(!hasF16).each(cases.filter((c) => c.name.includes("[f16]") && !c.name.includes("length 1 ")).map((c) => [c.name, c] as const))(
    "%s, array<f16>",
    (_name, c) => runCaseOnTarget(c, f16Target),
    TIMEOUT_MS,
  );
  test.skipIf(!hasF16)("shaderF16: f16 buffers bind as array<f16> behind `enable f16;`, bf16 stays in u32 words", () => {
    const b = new GraphBuilder("f16_storage");
    const x = b.input("x", { dtype: "f16", shape: [7] });
    const y = b.input("y", { dtype: "bf16", shape: [7] });
    const g = b.build([
      { name: "out", value: b.add({ op: "neg", x }, { dtype: "f16", shape: [7] }) },
      { name: "outb", value: b.add({ op: "neg", x: y }, { dtype: "bf16", shape: [7] }) },
    ]);
    const { artifact } = compileWebGpu(g, { limits: env.context!.limits, shaderF16: true });
    expect(artifact.kernels.length).toBe(1); // both negations fused
    const source = artifact.kernels[0]!.source;
    expect(source).toMatch(/^\/\/ [^\n]*\nenable f16;\n/);
    expect(source).toMatch(/read> g\d+: array<f16>; \/\/ x\n/);
    expect(source).toMatch(/read_write> g\d+: array<f16>; \/\/ out\n/);
    expect(source).toMatch(/read> g\d+: array<u32>; \/\/ y\n/);
    expect(source).toMatch(/read_write> g\d+: array<u32>; \/\/ outb\n/); // whole words: one thread stores both halves
    expect(artifact.memory.slotBytes[artifact.buffers.find((bb) => bb.name === "out")!.slot]).toBe(16);
  });

  // Ten 16-bit inputs under a 4-binding limit: most go into one pack, at 256-byte offsets.
  const packed = webGpuTestTarget(
    () => env.context!,
    ({ limits }) => ({
      limits: {
        maxStorageBuffersPerShaderStage: 4,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
      },
    }),
    undefined,
    (compiled) => expect(compiled.artifact.kernels[0]!.source).toMatch(/array<u32>; \/\/ arg\d+, arg\d+/), // a pack: one binding, several tensors
  );
  test(
    "16-bit tensors of odd length in a binding pack",
    async () => {
      const sum = (...xs: k.Tensor[]): k.Tensor[] => [xs.reduce((a, b) => a.add(b)), xs[0]!.mul(xs[1]!)];
      for (const dtype of ["f16", "bf16"] as const)
        await runCaseOnTarget(
          { ...exact, name: `sum of ten [${dtype}]`, fn: sum, specs: Array.from({ length: 10 }, () => h(dtype, [5])), range: [-4, 4] },
          packed,
        );
    },
    TIMEOUT_MS,
  );
});

describe.skipIf(!hasF16)("k.compile on webgpu uses shader-f16 where the device has it", () => {
  test(
    "f16 tensors bind as array<f16> by default, packed u32 words with shaderF16: false; both exact",
    async () => {
      const fn = (x: k.Tensor, y: k.Tensor): k.Tensor => x.mul(y).add(x);
      const specs = [k.f16([5]), k.f16([5])];
      const x = Float32Array.of(1.5, -2.25, 1000, 0.0999, -7);
      const y = Float32Array.of(3, 0.5, 70, -2, 1e-3);
      // Hand-rounded: every product and sum rounds to f16 (11 significant bits).
      const want = Array.from(x, (xi, i) =>
        halfBitsToNumber(
          numberToHalfBits(
            halfBitsToNumber(numberToHalfBits(halfBitsToNumber(numberToHalfBits(xi)) * halfBitsToNumber(numberToHalfBits(y[i]!)))) +
              halfBitsToNumber(numberToHalfBits(xi)),
          ),
        ),
      );
      for (const shaderF16 of [undefined, false] as const) {
        const exe = await k.compile(fn as never, specs, { target: "webgpu", ...(shaderF16 === false ? { shaderF16 } : {}) });
        expect(
          exe.artifact!.kernels.some((kk) => kk.source.includes("array<f16>")),
          String(shaderF16),
        ).toBe(shaderF16 === undefined);
        // Values in, values out (a Float32Array of the f16 results).
        const out = (await exe.run([x, y] as never)) as unknown as { data: ArrayLike<number> };
        expect(Array.from(out.data), String(shaderF16)).toEqual(want);
      }
    },
    TIMEOUT_MS,
  );
});

describe.skipIf(!env.available)("webgpu f16 rounding after each op (kiln_rh) on the whole range", () => {
  // 4096 pairs of finite f16 bit patterns (subnormals, the largest values, both signs): every
  // product and sum is exact in float64, so half.ts rounds it once; the kernel must agree bit for bit.
  test(
    "products and sums of random f16 pairs round as half.ts rounds them",
    async () => {
      let seed = 5;
      const next = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
      const finite = (): number => {
        for (;;) {
          const bits = next() & 0xffff;
          if ((bits & 0x7c00) !== 0x7c00) return bits;
        }
      };
      const n = 4096;
      const x = Uint16Array.from({ length: n }, finite);
      const y = Uint16Array.from({ length: n }, finite);
      const b = new GraphBuilder("rh_range");
      const xi = b.input("x", { dtype: "f16", shape: [n] });
      const yi = b.input("y", { dtype: "f16", shape: [n] });
      const g = b.build([
        { name: "prod", value: b.add({ op: "mul", x: xi, y: yi }, { dtype: "f16", shape: [n] }) },
        { name: "sum", value: b.add({ op: "add", x: xi, y: yi }, { dtype: "f16", shape: [n] }) },
      ]);
      const want = {
        prod: Array.from(x, (v, i) => numberToHalfBits(halfBitsToNumber(v) * halfBitsToNumber(y[i]!))),
        sum: Array.from(x, (v, i) => numberToHalfBits(halfBitsToNumber(v) + halfBitsToNumber(y[i]!))),
      };
      for (const t of hasF16 ? [target, f16Target] : [target]) {
        const out = await t.compile(g, { verify: true }).run({ x: { dtype: "f16", shape: [n], data: x }, y: { dtype: "f16", shape: [n], data: y } });
        for (const name of ["prod", "sum"] as const) {
          const got = out[name]!.data;
          // +0 and -0 are distinct patterns; both sides give IEEE's sign.
          const wrong = want[name].flatMap((w, i) => (got[i] === w ? [] : [[x[i], y[i], got[i], w]]));
          expect(wrong.slice(0, 5), `${name} (${t.label ?? t.name})`).toEqual([]);
        }
      }
    },
    TIMEOUT_MS,
  );
});
