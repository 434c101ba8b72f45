// The 16-bit float conversions (runtime/artifact/half.ts) against bit patterns derived by hand
// from the IEEE binary16 and bfloat16 layouts, and against PyTorch 1.13's own conversions and
// f16 ops (test/fixtures/torch/half.json, made by make-half.py in that folder).

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { bfloat16BitsToNumber, halfBitsToNumber, numberToBfloat16Bits, numberToHalfBits, roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";

const fixture = JSON.parse(readFileSync(new URL("../fixtures/torch/half.json", import.meta.url), "utf8")) as {
  f32bits: number[];
  f16: number[];
  bf16: number[];
  f16ops: Record<"a" | "b" | "add" | "mul" | "div", number[]>;
};
const f32FromBits = (bits: number): number => new Float32Array(Int32Array.of(bits).buffer)[0]!;

describe("f16 (IEEE binary16)", () => {
  test("hand-derived bit patterns", () => {
    expect(numberToHalfBits(1)).toBe(0x3c00); // exponent 15, mantissa 0
    expect(numberToHalfBits(-2)).toBe(0xc000);
    expect(numberToHalfBits(65504)).toBe(0x7bff); // max finite: (2 - 2^-10) · 2^15
    expect(numberToHalfBits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(numberToHalfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(numberToHalfBits(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(numberToHalfBits(1 / 3)).toBe(0x3555); // 0.0101010101|01… rounds down
    expect(numberToHalfBits(-0)).toBe(0x8000);
    expect(numberToHalfBits(Infinity)).toBe(0x7c00);
    expect(numberToHalfBits(-Infinity)).toBe(0xfc00);
    expect(numberToHalfBits(NaN)).toBe(0x7e00);
  });

  test("overflow: 65504 + 16 is the tie to 65536, which rounds to even = inf", () => {
    expect(roundToHalf(65519.999)).toBe(65504);
    expect(roundToHalf(65520)).toBe(Infinity);
    expect(roundToHalf(-65520)).toBe(-Infinity);
    expect(roundToHalf(1e300)).toBe(Infinity);
  });

  test("ties go to even, in normals and subnormals, without double rounding through f32", () => {
    expect(roundToHalf(1 + 2 ** -11)).toBe(1); // halfway between 1 and 1 + 2^-10: even (1) wins
    expect(roundToHalf(1 + 3 * 2 ** -11)).toBe(1 + 2 * 2 ** -10); // halfway, odd below: up
    expect(roundToHalf(2 ** -25)).toBe(0); // halfway between 0 and 2^-24
    expect(roundToHalf(3 * 2 ** -25)).toBe(2 * 2 ** -24); // halfway between 1 and 2 subnormal steps
    expect(roundToHalf(-(2 ** -26))).toBe(-0);
    expect(Object.is(roundToHalf(-(2 ** -26)), -0)).toBe(true);
    // Just above a tie, by less than an f32 ulp: rounding through f32 first would land on the
    // tie and go to even (1); rounding once goes up.
    expect(roundToHalf(1 + 2 ** -11 + 2 ** -40)).toBe(1 + 2 ** -10);
  });

  test("every bit pattern decodes and encodes back (NaNs to NaN)", () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = halfBitsToNumber(bits);
      const back = numberToHalfBits(v);
      if (Number.isNaN(v) ? !Number.isNaN(halfBitsToNumber(back)) : back !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  test("PyTorch's f32 → f16 conversion, bit for bit", () => {
    expect(fixture.f32bits.map((b) => numberToHalfBits(f32FromBits(b)))).toEqual(fixture.f16);
  });

  test("PyTorch's f16 add, mul, div: the float64 result rounded once", () => {
    const { a, b } = fixture.f16ops;
    const ops = { add: (x: number, y: number) => x + y, mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y };
    for (const [name, f] of Object.entries(ops)) {
      const got = a.map((bits, i) => numberToHalfBits(f(halfBitsToNumber(bits), halfBitsToNumber(b[i]!))));
      expect(got, name).toEqual(fixture.f16ops[name as keyof typeof ops]);
    }
  });
});

describe("bf16 (bfloat16)", () => {
  test("hand-derived bit patterns", () => {
    expect(numberToBfloat16Bits(1)).toBe(0x3f80); // f32 0x3f800000's top half
    expect(numberToBfloat16Bits(-2)).toBe(0xc000);
    expect(numberToBfloat16Bits(1 / 3)).toBe(0x3eab); // 0x3eaaaaab: the dropped 0xaaab > half rounds up
    expect(numberToBfloat16Bits(2 ** -133)).toBe(0x0001); // smallest subnormal
    expect(numberToBfloat16Bits(2 ** -126)).toBe(0x0080); // smallest normal
    expect(numberToBfloat16Bits((2 - 2 ** -7) * 2 ** 127)).toBe(0x7f7f); // max finite
    expect(numberToBfloat16Bits(NaN)).toBe(0x7fc0);
    expect(bfloat16BitsToNumber(0x7f80)).toBe(Infinity);
  });

  test("ties to even, overflow to inf", () => {
    expect(roundToBfloat16(1 + 2 ** -8)).toBe(1); // halfway: even wins
    expect(roundToBfloat16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
    const max = (2 - 2 ** -7) * 2 ** 127;
    expect(roundToBfloat16(max + 2 ** 119)).toBe(Infinity); // the tie above max: even is 2^128 = inf
    expect(roundToBfloat16(max + 2 ** 118)).toBe(max);
    expect(roundToBfloat16(-1e39)).toBe(-Infinity);
  });

  test("every bit pattern decodes and encodes back (NaNs to NaN)", () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = bfloat16BitsToNumber(bits);
      const back = numberToBfloat16Bits(v);
      if (Number.isNaN(v) ? !Number.isNaN(bfloat16BitsToNumber(back)) : back !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  test("PyTorch's f32 → bf16 conversion, bit for bit", () => {
    expect(fixture.f32bits.map((b) => numberToBfloat16Bits(f32FromBits(b)))).toEqual(fixture.bf16);
  });
});
