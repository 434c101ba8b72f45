// The dtype table against facts that do not come from it: typed array element sizes, the
// IEEE/two's-complement ranges, and the artifact format's own dtype list.

import { describe, expect, test } from "vitest";
import {
  DTYPES,
  DTYPE_TABLE,
  allocHostArray,
  dtypeBytes,
  dtypeInfo,
  fitsDType,
  hostArrayFrom,
  isBool,
  isDType,
  isFloat,
  isInt,
  promoteDTypes,
  halfOf,
  roundToDType,
  typedArrayFrom,
  valuesOfStorage,
  typedArrayFor,
  type DType,
} from "../../compiler/ir/dtype.ts";
import { ARTIFACT_DTYPES, artifactArrayFrom, artifactDTypeBytes, type ArtifactDType } from "../../runtime/artifact/format.ts";

// Type-level: the compiler's and the artifact format's dtype unions are the same set, so a
// dtype added to one and not the other fails `npm run typecheck`.
type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameDTypes: Equal<DType, ArtifactDType> = true;

describe("dtype table", () => {
  test("the artifact format lists the same dtypes", () => {
    expect(sameDTypes).toBe(true);
    expect([...DTYPES].sort()).toEqual(Object.keys(ARTIFACT_DTYPES).sort());
  });

  test.each(DTYPES)("%s: bytes match the typed arrays' BYTES_PER_ELEMENT", (d) => {
    expect(dtypeBytes(d)).toBe(typedArrayFor(d).BYTES_PER_ELEMENT);
    expect(artifactDTypeBytes(d)).toBe(dtypeBytes(d));
    expect(ARTIFACT_DTYPES[d].array).toBe(typedArrayFor(d));
    expect(dtypeInfo(d).js.storage).toBe(typedArrayFor(d).name);
  });

  test("sizes and kinds, by hand", () => {
    expect([dtypeBytes("f32"), dtypeBytes("f16"), dtypeBytes("bf16"), dtypeBytes("i32"), dtypeBytes("bool")]).toEqual([4, 2, 2, 4, 1]);
    expect(DTYPES.filter(isFloat)).toEqual(["f32", "f16", "bf16"]);
    expect(DTYPES.filter(isInt)).toEqual(["i32"]);
    expect(DTYPES.filter(isBool)).toEqual(["bool"]);
    for (const d of DTYPES) expect(DTYPE_TABLE[d].name).toBe(d);
  });

  test("host arrays: f32 widens to float64, others keep their storage", () => {
    expect(allocHostArray("f32", 3)).toBeInstanceOf(Float64Array);
    expect(allocHostArray("i32", 3)).toBeInstanceOf(Int32Array);
    expect(allocHostArray("bool", 3)).toBeInstanceOf(Uint8Array);
    expect(Array.from(hostArrayFrom("i32", [1, -2, 3]))).toEqual([1, -2, 3]);
    expect(hostArrayFrom("f32", [0.1])[0]).toBe(0.1); // not rounded to f32
    expect(allocHostArray("f16", 3)).toBeInstanceOf(Float64Array);
    expect(allocHostArray("bf16", 3)).toBeInstanceOf(Float64Array);
  });

  test("16-bit floats: runtimes hold bit patterns, the host holds values", () => {
    expect(halfOf("f16")).toBe("f16");
    expect(halfOf("f32")).toBeUndefined();
    expect(Array.from(typedArrayFrom("f16", [1, -2, 65520]))).toEqual([0x3c00, 0xc000, 0x7c00]);
    expect(Array.from(typedArrayFrom("bf16", [1, 1 / 3]))).toEqual([0x3f80, 0x3eab]);
    expect(Array.from(valuesOfStorage("f16", Uint16Array.of(0x3c00, 0x0001)))).toEqual([1, 2 ** -24]);
    expect(Array.from(artifactArrayFrom("f16", Uint16Array.of(0x3555)))).toEqual([0x3555]); // bits stay bits
    expect(Array.from(artifactArrayFrom("f16", Float32Array.of(1 / 3)))).toEqual([0x3555]); // values round
    const v = Float64Array.of(1 + 2 ** -11, 65520, 0.1);
    roundToDType("f16", v);
    expect(Array.from(v)).toEqual([1, Infinity, 0.0999755859375]);
    const w = Float64Array.of(0.1);
    roundToDType("f32", w);
    expect(w[0]).toBe(0.1); // the interpreter keeps f32 values in float64
  });

  test("ranges: i32 is two's complement 32-bit, bool is 0/1", () => {
    expect(dtypeInfo("i32").lowest).toBe(-(2 ** 31));
    expect(dtypeInfo("i32").highest).toBe(2 ** 31 - 1);
    expect(fitsDType(2 ** 31 - 1, "i32")).toBe(true);
    expect(fitsDType(2 ** 31, "i32")).toBe(false);
    expect(fitsDType(1.5, "i32")).toBe(false);
    expect(fitsDType(2, "bool")).toBe(false);
    expect(fitsDType(1, "bool")).toBe(true);
    expect(fitsDType(1.5, "f32")).toBe(true);
  });

  test("promotion follows PyTorch: bool < i32 < f16 = bf16 < f32; f16 with bf16 is f32", () => {
    expect(promoteDTypes("f16", "f32")).toBe("f32");
    expect(promoteDTypes("bf16", "f16")).toBe("f32");
    expect(promoteDTypes("f16", "bf16")).toBe("f32");
    expect(promoteDTypes("i32", "bf16")).toBe("bf16");
    expect(promoteDTypes("f16", "f16")).toBe("f16");
    expect(promoteDTypes("bool", "f16")).toBe("f16");
    expect(promoteDTypes("bool", "i32")).toBe("i32");
    expect(promoteDTypes("i32", "f32")).toBe("f32");
    expect(promoteDTypes("f32", "bool")).toBe("f32");
    expect(promoteDTypes("bool", "bool")).toBe("bool");
  });

  test("isDType accepts table names only", () => {
    expect(DTYPES.every(isDType)).toBe(true);
    expect(isDType("f16")).toBe(true);
    expect(isDType("f64")).toBe(false);
    expect(isDType("toString")).toBe(false);
  });
});
