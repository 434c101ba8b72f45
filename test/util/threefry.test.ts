// threefry2x32-20 against the Random123 known-answer vectors (kat_vectors), and the rng
// value formula built on it.

import { describe, expect, test } from "vitest";
import { rngUniform, rngValueAt, threefry2x32 } from "../../compiler/util/threefry.ts";

describe("threefry2x32 (20 rounds)", () => {
  // Random123 kat_vectors, "threefry2x32 20": ctr0 ctr1 key0 key1 -> out0 out1.
  const katVectors: ReadonlyArray<{ ctr: [number, number]; key: [number, number]; expected: [number, number] }> = [
    { ctr: [0x00000000, 0x00000000], key: [0x00000000, 0x00000000], expected: [0x6b200159, 0x99ba4efe] },
    { ctr: [0xffffffff, 0xffffffff], key: [0xffffffff, 0xffffffff], expected: [0x1cb996fc, 0xbb002be7] },
    { ctr: [0x243f6a88, 0x85a308d3], key: [0x13198a2e, 0x03707344], expected: [0xc4923a9c, 0x483df7a0] },
  ];
  test.each(katVectors)("known answer for key $key ctr $ctr", ({ ctr, key, expected }) => {
    expect(threefry2x32(key[0], key[1], ctr[0], ctr[1])).toEqual(expected);
  });

  test("outputs are unsigned 32-bit words", () => {
    for (let i = 0; i < 100; i++) {
      for (const w of threefry2x32(i * 2654435761, ~i, i, -i)) {
        expect(Number.isInteger(w) && w >= 0 && w <= 0xffffffff).toBe(true);
      }
    }
  });

  test("negative (signed) inputs mean their u32 bit patterns", () => {
    expect(threefry2x32(-1, -1, -1, -1)).toEqual([0x1cb996fc, 0xbb002be7]);
  });
});

describe("rng value formula", () => {
  test("value = (first word >>> 8) / 2^24 with key (seed, stream), counter (index, 0)", () => {
    // Hand-derived from the KAT vector key=(0,0), ctr=(0,0): 0x6b200159 >>> 8 = 0x6b2001.
    expect(rngValueAt(0, 0, 0)).toBe(0x6b2001 / 16777216);
    for (const [seed, stream, index] of [
      [7, 0, 3],
      [-5, 2, 1000],
      [123456, 9, 0],
    ] as const) {
      const word = threefry2x32(seed >>> 0, stream, index, 0)[0];
      expect(rngValueAt(seed, stream, index)).toBe(Math.floor(word / 256) * 2 ** -24);
    }
  });

  test("rngUniform lists the values at flat indices 0..count-1, all in [0, 1)", () => {
    const values = rngUniform(42, 3, 1000);
    expect(values.length).toBe(1000);
    values.forEach((v, i) => {
      expect(v).toBe(rngValueAt(42, 3, i));
      expect(v >= 0 && v < 1).toBe(true);
    });
    // The unrolled int32 loop agrees with the block function for signed seeds and high streams too.
    for (const [seed, stream] of [
      [-5, 7],
      [0x7fffffff, 0xfffffff0],
    ] as const)
      rngUniform(seed, stream, 300).forEach((v, i) => expect(v).toBe(rngValueAt(seed, stream, i)));
  });

  test("uniform moments over 10k samples: mean ≈ 1/2, variance ≈ 1/12", () => {
    const values = rngUniform(1, 0, 10000);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
    // Standard error of the mean is sqrt(1/12/10000) ≈ 0.0029: allow ~5 sigma.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.015);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.005);
  });

  test("streams and seeds give different sequences", () => {
    const a = rngUniform(5, 0, 64);
    expect(rngUniform(5, 0, 64)).toEqual(a);
    expect(rngUniform(5, 1, 64)).not.toEqual(a);
    expect(rngUniform(6, 0, 64)).not.toEqual(a);
  });
});
