// The element types of the safetensors format: their names in a file header, byte sizes,
// the typed array each is read into, and the bit-exact half-precision conversions (F16 and
// BF16 widen to f32 exactly; writing rounds to nearest, ties to even, as PyTorch's .half() does).

import { halfBitsToNumber } from "./half.ts";

/** A tensor's element type, as Kiln names it (lowercase); the file says F32, BF16, I64… */
export type SafetensorsDType = "f64" | "f32" | "f16" | "bf16" | "i64" | "i32" | "i16" | "i8" | "u64" | "u32" | "u16" | "u8" | "bool";

/** What a tensor's elements are held in: half-precision floats are widened into a Float32Array. */
export type SafetensorsData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

export interface DTypeInfo {
  readonly fileName: string;
  readonly bytes: number;
  readonly kind: "float" | "int" | "bool";
}

export const DTYPE_INFO = {
  f64: { fileName: "F64", bytes: 8, kind: "float" },
  f32: { fileName: "F32", bytes: 4, kind: "float" },
  f16: { fileName: "F16", bytes: 2, kind: "float" },
  bf16: { fileName: "BF16", bytes: 2, kind: "float" },
  i64: { fileName: "I64", bytes: 8, kind: "int" },
  i32: { fileName: "I32", bytes: 4, kind: "int" },
  i16: { fileName: "I16", bytes: 2, kind: "int" },
  i8: { fileName: "I8", bytes: 1, kind: "int" },
  u64: { fileName: "U64", bytes: 8, kind: "int" },
  u32: { fileName: "U32", bytes: 4, kind: "int" },
  u16: { fileName: "U16", bytes: 2, kind: "int" },
  u8: { fileName: "U8", bytes: 1, kind: "int" },
  bool: { fileName: "BOOL", bytes: 1, kind: "bool" },
} as const satisfies Record<SafetensorsDType, DTypeInfo>;

export const SAFETENSORS_DTYPES = Object.keys(DTYPE_INFO) as readonly SafetensorsDType[];

const BY_FILE_NAME: ReadonlyMap<string, SafetensorsDType> = new Map(SAFETENSORS_DTYPES.map((d) => [DTYPE_INFO[d].fileName, d]));

/** The dtype a header's "dtype" field names; undefined for one Kiln does not read (F8_E4M3, C64…). */
export const dtypeFromFileName = (name: string): SafetensorsDType | undefined => BY_FILE_NAME.get(name);

const littleEndianHost = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * Decodes little-endian element bytes into a fresh typed array (never a view of `raw`, so the
 * result does not pin the file's buffer). `raw.length` must be a multiple of the element size.
 */
export function decodeElements(dtype: SafetensorsDType, raw: Uint8Array): SafetensorsData {
  const copy = new Uint8Array(raw.length);
  copy.set(raw);
  const size = DTYPE_INFO[dtype].bytes;
  if (!littleEndianHost && size > 1) for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  const buffer = copy.buffer;
  switch (dtype) {
    case "f64":
      return new Float64Array(buffer);
    case "f32":
      return new Float32Array(buffer);
    case "f16": {
      const halves = new Uint16Array(buffer);
      const out = new Float32Array(halves.length);
      for (let i = 0; i < halves.length; i++) out[i] = halfBitsToNumber(halves[i]!);
      return out;
    }
    case "bf16": {
      const halves = new Uint16Array(buffer);
      const widened = new Uint32Array(halves.length);
      for (let i = 0; i < halves.length; i++) widened[i] = halves[i]! << 16;
      return new Float32Array(widened.buffer);
    }
    case "i64":
      return new BigInt64Array(buffer);
    case "i32":
      return new Int32Array(buffer);
    case "i16":
      return new Int16Array(buffer);
    case "i8":
      return new Int8Array(buffer);
    case "u64":
      return new BigUint64Array(buffer);
    case "u32":
      return new Uint32Array(buffer);
    case "u16":
      return new Uint16Array(buffer);
    case "u8":
    case "bool":
      return copy;
  }
}

// The 16-bit conversions live in half.ts (one definition; rounding once, ties to even); the
// names this module exported stay as aliases.
export { halfBitsToNumber as halfToNumber, numberToBfloat16Bits as numberToBfloat16, numberToHalfBits as numberToHalf } from "./half.ts";
