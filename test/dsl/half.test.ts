// f16 and bf16 in the DSL and the interpreter: PyTorch's promotion rules, the per-op rounding
// (values derived by hand from the formats: f16 keeps 11 significant bits, bf16 8), I/O of
// values and bit patterns, and the targets that refuse 16-bit graphs say so.

import { describe, expect, test } from "vitest";
import * as k from "kiln";

const run = async (fn: (...xs: k.Tensor[]) => unknown, specs: k.InputSpec[], inputs: unknown[], target = "reference") =>
  (await (await k.compile(fn as never, specs, { target })).run(inputs as never)) as unknown;
const dataOf = (out: unknown): number[] => Array.from((out as { data: ArrayLike<number> }).data);
const dtypeOf = (out: unknown): string => (out as { dtype: string }).dtype;

describe("f16 and bf16 in the DSL", () => {
  test("promotion follows PyTorch: a float scalar keeps the 16-bit dtype, f16 with f32 or bf16 is f32", () => {
    const g = k.traceFunction(
      "promote",
      ((h: k.Tensor, b: k.Tensor, f: k.Tensor, n: k.Tensor) => [
        h.add(0.5),
        h.add(f),
        h.add(b),
        n.add(h),
        h.exp(),
        n.float().mean(),
        h.mean(),
        h.half(),
        f.bfloat16(),
        h.to("f32"),
      ]) as never,
      [k.f16([2]), k.bf16([2]), k.f32([2]), k.i32([2])],
    ).graph;
    const dtypes = g.outputs.map((o) => g.nodes.find((n) => n.id === o.value)!.type.dtype);
    expect(dtypes).toEqual(["f16", "f32", "f32", "f16", "f16", "f32", "f16", "f16", "bf16", "f32"]);
  });

  test("the interpreter rounds every op's result (hand-derived values)", async () => {
    // 0.3 is 0.2999267578125 in f16; + 1024 rounds to 1024 (spacing 1 there); − 1024 is 0.
    // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: even (1) wins. exp(12) = 162754.8 > 65504: inf.
    // The sum accumulates in float64 and rounds once: 65504 + 65504 − 65504 never overflows.
    const outs = (await run(
      (x: k.Tensor, y: k.Tensor) => [x.add(1024).sub(1024), x.mul(0).add(1 + 2 ** -11), x.mul(0).add(12).exp(), y.sum()],
      [k.f16([1]), k.f16([3])],
      [[0.3], [65504, 65504, -65504]],
    )) as unknown[];
    expect(outs.map(dataOf)).toEqual([[0], [1], [Infinity], [65504]]);
    // bf16: 1024 + 0.3 rounds to 1024 (spacing 8); 1 + 2^-8 ties to 1; 3 · (1 + 2^-7) = 3.0234375 is
    // the tie between 193 and 194 steps of 2^-6 above 0: even (194 · 2^-6 = 3.03125) wins.
    const b = (await run(
      (x: k.Tensor) => [
        x.add(1024).sub(1024),
        x.mul(0).add(1 + 2 ** -8),
        x
          .mul(0)
          .add(1 + 2 ** -7)
          .mul(3),
      ],
      [k.bf16([1])],
      [[0.3]],
    )) as unknown[];
    expect(b.map(dataOf)).toEqual([[0], [1], [3.03125]]);
  });

  test("inputs as values round to the format; a Uint16Array is bit patterns; outputs are values in a Float32Array", async () => {
    const out = await run((x: k.Tensor) => x.mul(1), [k.f16([3])], [Float32Array.of(1 / 3, 65520, 2 ** -25)]);
    expect(dtypeOf(out)).toBe("f16");
    expect((out as { data: unknown }).data).toBeInstanceOf(Float32Array);
    expect(dataOf(out)).toEqual([0.333251953125, Infinity, 0]);
    expect(dataOf(await run((x: k.Tensor) => x.mul(1), [k.f16([2])], [Uint16Array.of(0x3c00, 0x0001)]))).toEqual([1, 2 ** -24]);
    expect(dataOf(await run((x: k.Tensor) => x.mul(1), [k.bf16([1])], [[1 / 3]], "js"))).toEqual([0.333984375]);
  });
});
