// The op suite over f16 and bf16 on webgpu (test/targets/op-cases.ts describeHalfOpSuite):
// 16-bit values live one per u32 word (the low half holds the bit pattern), compute in f32
// and round per op in integer ops, so no shader-f16 adapter feature is needed. By default the
// bit-for-bit cases of both and f16's elementwise group (each new shader costs
// lavapipe seconds); KILN_FULL=1 runs every group. Skips without an adapter (test/util/webgpu-env.ts).

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { bfloat16BitsToNumber, halfBitsToNumber, numberToBfloat16Bits, numberToHalfBits } from "../../runtime/artifact/half.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { FULL } from "../util/full.ts";
import { caseGroups, describeHalfOpSuite } from "./op-cases.ts";
import { webGpuTestTarget } from "./test-targets.ts";

const env = await webGpuTestEnv();
const TIMEOUT_MS = 180_000;
const target = webGpuTestTarget(() => env.context!);
for (const dtype of ["f16", "bf16"] as const)
  describeHalfOpSuite(target, dtype, FULL ? caseGroups : dtype === "f16" ? ["elementwise"] : [], {
    skip: !env.available,
    timeoutMs: TIMEOUT_MS,
    mixed: FULL || dtype === "f16", // the bf16 AdamW step: ~13 s of shader compilation on a cold lavapipe cache
  });

describe.skipIf(!env.available)("webgpu 16-bit conversions (kiln_f2h/h2f/f2b/b2f) against runtime/artifact/half.ts", () => {
  const castRun = async (from: DType, to: DType, data: HostTensor["data"]): Promise<ArrayLike<number>> => {
    const b = new GraphBuilder(`cast_${from}_${to}`);
    const x = b.input("x", { dtype: from, shape: [data.length] });
    const g = b.build([{ name: "out", value: b.add({ op: "cast", x }, { dtype: to, shape: [data.length] }) }]);
    const out = await target.compile(g, { verify: true }).run({ x: { dtype: from, shape: [data.length], data } });
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
