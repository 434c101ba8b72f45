// The element types of the safetensors format: their names in a file header, byte sizes,
// the typed array each is read into, and the bit-exact half-precision conversions (F16 and
// BF16 widen to f32 exactly; writing rounds to nearest, ties to even, as PyTorch's .half() does).

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
      for (let i = 0; i < halves.length; i++) out[i] = halfToNumber(halves[i]!);
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

/** IEEE binary16 bits → its value (exact in f32 and f64). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

const f32Scratch = new Float32Array(1);
const f32Bits = new Uint32Array(f32Scratch.buffer);

/** A number → binary16 bits: rounded to f32 first, then to nearest half (ties to even); overflow → ±inf. */
export function numberToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = f32Bits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value / 2^-24 = (mantissa | implicit 1) · 2^(e - 14).
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mantissa | 0x800000;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++; // a carry into the exponent is right, up to inf
  return sign | half;
}

/** A number → bfloat16 bits: the top half of its f32 bits, rounded to nearest even; NaN stays NaN. */
export function numberToBfloat16(value: number): number {
  f32Scratch[0] = value;
  const x = f32Bits[0]!;
  if (Number.isNaN(value)) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
