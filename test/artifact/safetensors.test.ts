// runtime/artifact/safetensors.ts against the corpus of test/fixtures/safetensors (built byte by
// byte from the format's spec, never with our writer): every malformed file refused with one
// line naming the file and the problem, every valid file of every dtype read to the values
// derived by hand, conversions to the artifact dtypes, and the writer's byte layout.

import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { ArtifactInvalidError } from "../../runtime/artifact/manifest.ts";
import { convertTensor, decodeSafetensors, encodeSafetensors, readSafetensors } from "../../runtime/artifact/safetensors.ts";
import { numberToBfloat16, numberToHalf } from "../../runtime/artifact/safetensors-dtypes.ts";
import { corpusFiles, MALFORMED_DIR, malformedCases, VALID_DIR, validCases } from "../fixtures/safetensors/make-corpus.ts";

/** A safetensors file assembled by hand: header text, then the given data bytes. */
function handMade(headerJson: string, data: readonly number[]): Uint8Array {
  const padded = headerJson + " ".repeat((8 - (headerJson.length % 8)) % 8);
  const out = new Uint8Array(8 + padded.length + data.length);
  new DataView(out.buffer).setUint32(0, padded.length, true); // high 32 bits stay 0
  out.set(new TextEncoder().encode(padded), 8);
  out.set(data, 8 + padded.length);
  return out;
}

const refusal = (bytes: Uint8Array, name: string): ArtifactInvalidError => {
  try {
    readSafetensors(bytes, name);
  } catch (e) {
    return e as ArtifactInvalidError;
  }
  throw new Error(`${name} was accepted`);
};

describe("malformed corpus", () => {
  const cases = malformedCases();
  test("holds at least 60 files, and the committed copies are what make-corpus.ts builds", () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    const expected = JSON.parse(readFileSync(path.join(MALFORMED_DIR, "expected.json"), "utf8")) as Record<string, string>;
    expect(corpusFiles(MALFORMED_DIR)).toEqual(cases.map((c) => `${c.name}.safetensors`).sort());
    for (const c of cases) {
      expect(expected[`${c.name}.safetensors`]).toBe(c.error);
      expect(Buffer.compare(readFileSync(path.join(MALFORMED_DIR, `${c.name}.safetensors`)), c.bytes), c.name).toBe(0);
    }
  });

  test.each(cases.map((c) => [c.name, c] as const))("%s: refused in one line naming the file and the problem", (_, c) => {
    const e = refusal(c.bytes, `${c.name}.safetensors`);
    expect(e).toBeInstanceOf(ArtifactInvalidError);
    expect(e.message.startsWith(`${c.name}.safetensors: `)).toBe(true);
    expect(e.message).toContain(c.error);
    expect(e.message).not.toContain("\n");
    expect(e.message.length).toBeLessThan(300);
  });
});

describe("valid corpus", () => {
  const cases = validCases();
  test("the committed copies are what make-corpus.ts builds", () => {
    expect(corpusFiles(VALID_DIR)).toEqual(cases.map((c) => `${c.name}.safetensors`).sort());
    for (const c of cases) expect(Buffer.compare(readFileSync(path.join(VALID_DIR, `${c.name}.safetensors`)), c.bytes), c.name).toBe(0);
  });

  test.each(cases.map((c) => [c.name, c] as const))("%s: every tensor read to its hand-derived values", (_, c) => {
    const { tensors, metadata } = readSafetensors(c.bytes, `${c.name}.safetensors`);
    expect([...tensors.keys()].sort()).toEqual(Object.keys(c.tensors).sort());
    for (const [name, want] of Object.entries(c.tensors)) {
      const got = tensors.get(name)!;
      expect(got.dtype, name).toBe(want.dtype);
      expect(got.shape, name).toEqual(want.shape);
      expect(Array.from(got.data as ArrayLike<number | bigint>), name).toEqual(want.values);
    }
    expect({ ...metadata }).toEqual(c.metadata ?? {});
  });

  test("names that are special to JavaScript stay ordinary keys and pollute nothing", () => {
    const special = cases.find((c) => c.name === "special-names")!;
    const { tensors, metadata } = readSafetensors(special.bytes, "s.safetensors");
    expect(tensors.get("__proto__")!.dtype).toBe("f32");
    expect(tensors.get("constructor")!.dtype).toBe("i32");
    expect(Object.getPrototypeOf(metadata)).toBe(null);
    expect(Object.keys(metadata).sort()).toEqual(["__proto__", "format"]);
    const decoded = decodeSafetensors(special.bytes, "s.safetensors").tensors;
    expect(Object.getPrototypeOf(decoded)).toBe(null);
    expect(Object.keys(decoded).sort()).toEqual(["__proto__", "constructor", "e1", "e2"]);
    expect(({} as Record<string, unknown>)["dtype"]).toBeUndefined();
  });

  test("copies data out of a Node Buffer that views a larger pool", () => {
    const file = validCases().find((c) => c.name === "i32")!.bytes;
    const pool = Buffer.alloc(file.length + 16, 0xaa);
    pool.set(file, 16);
    const t = readSafetensors(pool.subarray(16), "p.safetensors").tensors.get("t")!;
    pool.fill(0);
    expect(Array.from(t.data as Int32Array)).toEqual([-1, -(2 ** 31)]);
  });
});

describe("conversion to the artifact dtypes", () => {
  const read = (name: string) => readSafetensors(validCases().find((c) => c.name === name)!.bytes, `${name}.safetensors`).tensors.get("t")!;

  test("floats of every width become f32 (F16/BF16 exactly), small integers i32, BOOL bool", () => {
    expect(Array.from(convertTensor(read("f16"), "f32", "t", "f"))).toEqual([1, -2, 65504, 2 ** -24, 1365 / 4096, -Infinity]);
    expect(Array.from(convertTensor(read("bf16"), "f32", "t", "f"))).toEqual([1, -3, 0.333984375, 2 ** -133]);
    expect(Array.from(convertTensor(read("f64"), "f32", "t", "f"))).toEqual([1.5, Math.fround(-0.1)]);
    expect(Array.from(convertTensor(read("i8"), "i32", "t", "f"))).toEqual([-128, -1, 127]);
    expect(Array.from(convertTensor(read("u16"), "f32", "t", "f"))).toEqual([65535]);
    expect(Array.from(convertTensor(read("bool"), "bool", "t", "f"))).toEqual([1, 0, 0, 1]);
  });

  test("a lossy integer conversion names the tensor, the element and its value", () => {
    expect(() => convertTensor(read("i64"), "i32", "fc1.idx", "ckpt.safetensors")).toThrow(
      'ckpt.safetensors: tensor "fc1.idx": I64 element 1 is 1099511627776, outside i32\'s range [-2147483648, 2147483647]',
    );
    expect(() => convertTensor(read("u32"), "i32", "t", "f")).toThrow("U32 element 0 is 4294967295, outside i32's range");
    expect(() => convertTensor(read("u64"), "f32", "t", "f")).toThrow("U64 element 0 is 18446744073709551615, which f32 cannot hold exactly");
    expect(() => convertTensor(read("f32"), "i32", "t", "f")).toThrow("is F32, cannot load into i32");
    expect(() => convertTensor(read("i32"), "bool", "t", "f")).toThrow("is I32, cannot load into bool");
  });

  test("decodeSafetensors: I64 labels that fit become i32", () => {
    const file = handMade('{"y":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}', [3, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(decodeSafetensors(file, "y.safetensors").tensors["y"]).toEqual({ dtype: "i32", shape: [2], data: Int32Array.of(3, -2) });
  });
});

describe("encodeSafetensors", () => {
  test("lays out header and data exactly as the spec says, tensors in name order", () => {
    const file = encodeSafetensors({
      w: { dtype: "f32", shape: [2], data: Float32Array.of(1.5, -2) },
      b: { dtype: "i32", shape: [], data: Int32Array.of(-1) },
      m: { dtype: "bool", shape: [3], data: Uint8Array.of(1, 0, 1) },
    });
    // 1.5f = 0x3fc00000, -2f = 0xc0000000 (little-endian bytes); -1 = 0xffffffff.
    const expected = handMade(
      '{"b":{"dtype":"I32","shape":[],"data_offsets":[0,4]},"m":{"dtype":"BOOL","shape":[3],"data_offsets":[4,7]},"w":{"dtype":"F32","shape":[2],"data_offsets":[7,15]}}',
      [0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0],
    );
    expect(Array.from(file)).toEqual(Array.from(expected));
  });

  test("writes each valid corpus file's tensors back to the same bytes a hand-made file of them has", () => {
    for (const name of ["f64", "f16", "bf16", "i64", "i16", "i8", "u8", "u16", "u32", "u64", "bool"]) {
      const c = validCases().find((v) => v.name === name)!;
      const t = readSafetensors(c.bytes, name).tensors.get("t")!;
      expect(Buffer.compare(encodeSafetensors(new Map([["t", t]])), c.bytes), name).toBe(0);
    }
  });

  test("rounds to half precision to nearest, ties to even, as IEEE 754 says", () => {
    expect(numberToHalf(1 / 3)).toBe(0x3555);
    expect(numberToHalf(65504)).toBe(0x7bff);
    expect(numberToHalf(65520)).toBe(0x7c00); // halfway to 65536: even rounds up, to inf
    expect(numberToHalf(2 ** -25)).toBe(0); // halfway between 0 and the smallest subnormal: even is 0
    expect(numberToHalf(1.5 * 2 ** -25)).toBe(1);
    expect(numberToHalf(-0)).toBe(0x8000);
    expect(numberToHalf(NaN) & 0x7c00).toBe(0x7c00);
    expect(numberToBfloat16(1 / 3)).toBe(0x3eab);
    expect(numberToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // halfway: even (0x3f80) wins
    expect(numberToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  test("a tensor named __proto__ round-trips; metadata stays a flat string map", () => {
    const tensors = new Map([["__proto__", { dtype: "f32" as const, shape: [1], data: [2] }]]);
    const back = readSafetensors(encodeSafetensors(tensors, { epoch: "3" }), "p");
    expect(back.tensors.get("__proto__")!.data[0]).toBe(2);
    expect({ ...back.metadata }).toEqual({ epoch: "3" });
  });

  test("refuses values its dtype cannot hold, naming the tensor", () => {
    expect(() => encodeSafetensors({ a: { dtype: "i8", shape: [1], data: [200] } })).toThrow('tensor "a": element 0 is 200, not an integer in i8\'s range');
    expect(() => encodeSafetensors({ a: { dtype: "f32", shape: [2], data: [1] } })).toThrow('tensor "a": 1 elements, its shape [2] needs 2');
    expect(() => encodeSafetensors({ __metadata__: { dtype: "f32", shape: [], data: [1] } })).toThrow("cannot be named __metadata__");
  });
});

describe("f16 and bf16 tensors of 16-bit artifact dtypes", () => {
  test("values write rounded once; a Uint16Array of bit patterns writes as it is; both read back into f16/bf16 inputs as bits", () => {
    const bits = Uint16Array.of(0x3c00, 0x7bff, 0x0001, 0xfc00, 0x3555);
    const file = encodeSafetensors({
      values: { dtype: "f16", shape: [3], data: Float64Array.of(1 + 2 ** -11 + 2 ** -40, 65520, 1 / 3) },
      bits: { dtype: "f16", shape: [5], data: bits },
      b: { dtype: "bf16", shape: [2], data: Uint16Array.of(0x3f80, 0x3eab) },
    });
    const tensors = Object.fromEntries(readSafetensors(file, "f.safetensors").tensors);
    // decodeSafetensors keeps them 16-bit: the artifact dtypes f16 and bf16, as bit patterns.
    const decoded = decodeSafetensors(file, "f.safetensors").tensors;
    expect([decoded["bits"]!.dtype, decoded["b"]!.dtype]).toEqual(["f16", "bf16"]);
    expect(Array.from(decoded["bits"]!.data)).toEqual(Array.from(bits));
    // 1 + 2^-11 + 2^-40 rounds up once (through f32 it would tie and go to even, 1); 65520 → inf.
    expect(Array.from(convertTensor(tensors.values!, "f16", "values", "f"))).toEqual([0x3c01, 0x7c00, 0x3555]);
    expect(Array.from(convertTensor(tensors.bits!, "f16", "bits", "f"))).toEqual(Array.from(bits));
    expect(Array.from(convertTensor(tensors.b!, "bf16", "b", "f"))).toEqual([0x3f80, 0x3eab]);
    // F16 into bf16 rounds: 1/3 as f16 (0x3555 = 0.333251953125) is 0x3eab in bf16.
    expect(Array.from(convertTensor(tensors.bits!, "bf16", "bits", "f")).at(-1)).toBe(0x3eab);
    expect(() => convertTensor({ dtype: "i32", shape: [1], data: Int32Array.of(1) }, "f16", "n", "f.safetensors")).toThrow(/cannot load into f16/);
  });
});
