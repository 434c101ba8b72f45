// The one table of element types. Every fact that depends on a dtype — its size, whether it
// is a float, the typed array that holds it, how each backend stores it — is read from here,
// so adding a dtype (f16, bf16) is a compile error at each table and exhaustive switch that
// must handle it, instead of a silent wrong branch of a `d === "f32" ? … : …` ternary.
//
// The artifact format (runtime/artifact/format.ts) spells the same names in its own type,
// because the runtime never imports compiler/; test/ir/dtype.test.ts holds the two equal.

import { assertNever } from "../util/errors.ts";
import { decodeHalf, encodeHalf, roundHalfInPlace, type HalfDType } from "../../runtime/artifact/half.ts";

export type DType = "f32" | "f16" | "bf16" | "i32" | "bool";

/** What arithmetic a dtype takes: IEEE float, two's-complement integer, or 0/1 logic. */
export type DTypeKind = "float" | "int" | "bool";

type TypedArrayConstructor = Float32ArrayConstructor | Uint16ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor;
type HostArrayConstructor = Float64ArrayConstructor | Int32ArrayConstructor | Uint8ArrayConstructor;

export interface DTypeInfo {
  readonly name: DType;
  /** Bytes per element in device and artifact memory (bool takes a whole byte). */
  readonly bytes: number;
  readonly kind: DTypeKind;
  /** The typed array a runtime stores it in; its BYTES_PER_ELEMENT equals `bytes`. */
  readonly typedArray: TypedArrayConstructor;
  /**
   * A 16-bit float: runtimes hold its IEEE binary16 or bfloat16 bit patterns in a Uint16Array
   * (runtime/artifact/half.ts encodes and decodes them), backends compute on it in f32, and the
   * interpreter rounds every result to it. Absent for the others.
   */
  readonly half?: HalfDType;
  /** The typed array the reference interpreter and the DSL hold it in (floats widened to f64). */
  readonly hostArray: HostArrayConstructor;
  /** Type-promotion order (PyTorch's bool < int < float): the higher of two operands wins. */
  readonly promotionRank: number;
  /** Smallest value (the identity of max), and largest. */
  readonly lowest: number;
  readonly highest: number;
  /** How each backend spells it: `value` in registers, `storage` in buffers/memory. */
  readonly wgsl: { readonly value: string; readonly storage: string };
  readonly cuda: { readonly value: string; readonly storage: string };
  /** WebAssembly value type in locals; memory width follows `bytes`. */
  readonly wasm: { readonly value: "f32" | "i32" };
  /** Name of `typedArray`, as generated JavaScript and TypeScript loaders spell it. */
  readonly js: { readonly storage: "Float32Array" | "Uint16Array" | "Int32Array" | "Uint8Array" };
}

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;

export const DTYPE_TABLE = {
  f32: {
    name: "f32",
    bytes: 4,
    kind: "float",
    typedArray: Float32Array,
    hostArray: Float64Array,
    promotionRank: 3,
    lowest: -Infinity,
    highest: Infinity,
    wgsl: { value: "f32", storage: "f32" },
    cuda: { value: "float", storage: "float" },
    wasm: { value: "f32" },
    js: { storage: "Float32Array" },
  },
  // The 16-bit floats compute in f32 registers on every backend and are stored as 16 bits
  // (docs/dtypes.md): WGSL packs two to a u32 word (works without shader-f16; the adapter's
  // shader-f16, which lavapipe has, is not used yet), CUDA in __half / __nv_bfloat16 (CUDA's
  // headers, or the prelude's stand-ins where NVRTC has none). Both
  // rank below f32 in promotion and equal to each other: f16 with bf16 promotes to f32
  // (promoteDTypes), as in PyTorch.
  f16: {
    name: "f16",
    bytes: 2,
    kind: "float",
    typedArray: Uint16Array,
    half: "f16",
    hostArray: Float64Array,
    promotionRank: 2,
    lowest: -Infinity,
    highest: Infinity,
    wgsl: { value: "f32", storage: "u32" },
    cuda: { value: "float", storage: "__half" },
    wasm: { value: "f32" },
    js: { storage: "Uint16Array" },
  },
  bf16: {
    name: "bf16",
    bytes: 2,
    kind: "float",
    typedArray: Uint16Array,
    half: "bf16",
    hostArray: Float64Array,
    promotionRank: 2,
    lowest: -Infinity,
    highest: Infinity,
    wgsl: { value: "f32", storage: "u32" },
    cuda: { value: "float", storage: "__nv_bfloat16" },
    wasm: { value: "f32" },
    js: { storage: "Uint16Array" },
  },
  i32: {
    name: "i32",
    bytes: 4,
    kind: "int",
    typedArray: Int32Array,
    hostArray: Int32Array,
    promotionRank: 1,
    lowest: I32_MIN,
    highest: I32_MAX,
    wgsl: { value: "i32", storage: "i32" },
    cuda: { value: "int", storage: "int" },
    wasm: { value: "i32" },
    js: { storage: "Int32Array" },
  },
  bool: {
    name: "bool",
    bytes: 1,
    kind: "bool",
    typedArray: Uint8Array,
    hostArray: Uint8Array,
    promotionRank: 0,
    lowest: 0,
    highest: 1,
    // WGSL's bool is not host-shareable: a buffer holds it as a u32 word (0 or 1).
    wgsl: { value: "bool", storage: "u32" },
    cuda: { value: "bool", storage: "unsigned char" },
    wasm: { value: "i32" },
    js: { storage: "Uint8Array" },
  },
} as const satisfies { readonly [D in DType]: DTypeInfo & { readonly name: D } };

/** Every dtype, in promotion order from the table's declaration. */
export const DTYPES: readonly DType[] = Object.keys(DTYPE_TABLE) as DType[];

export const dtypeInfo = (d: DType): DTypeInfo => DTYPE_TABLE[d];
export const isDType = (s: string): s is DType => Object.hasOwn(DTYPE_TABLE, s);
export const dtypeKind = (d: DType): DTypeKind => DTYPE_TABLE[d].kind;
export const isFloat = (d: DType): boolean => DTYPE_TABLE[d].kind === "float";
export const isInt = (d: DType): boolean => DTYPE_TABLE[d].kind === "int";
export const isBool = (d: DType): boolean => DTYPE_TABLE[d].kind === "bool";
/** float or int: takes arithmetic (bool takes logic). */
export const isNumeric = (d: DType): boolean => DTYPE_TABLE[d].kind !== "bool";
export const dtypeBytes = (d: DType): number => DTYPE_TABLE[d].bytes;
export const typedArrayFor = (d: DType): TypedArrayConstructor => DTYPE_TABLE[d].typedArray;
export const hostArrayFor = (d: DType): HostArrayConstructor => DTYPE_TABLE[d].hostArray;

/**
 * The dtype two operands promote to (PyTorch's order bool < i32 < f16 = bf16 < f32): the
 * higher rank wins; two different dtypes of one rank (f16 with bf16) meet in f32.
 */
export function promoteDTypes(a: DType, b: DType): DType {
  const ra = DTYPE_TABLE[a].promotionRank;
  const rb = DTYPE_TABLE[b].promotionRank;
  if (ra === rb && a !== b) return "f32";
  return ra >= rb ? a : b;
}

/** The 16-bit float format of `d`, or undefined for f32/i32/bool. */
export const halfOf = (d: DType): HalfDType | undefined => (DTYPE_TABLE[d] as DTypeInfo).half;

/** Rounds float64 values to what `d` can hold, in place (the interpreter's per-op rounding; only 16-bit floats change). */
export function roundToDType(d: DType, values: Float64Array | Float32Array | Int32Array | Uint8Array): void {
  const half = halfOf(d);
  if (half !== undefined) roundHalfInPlace(half, values as Float64Array);
}

/** Whether `value` is representable in `d` exactly (a const, a pad value, a fill). */
export function fitsDType(value: number, d: DType): boolean {
  const kind = DTYPE_TABLE[d].kind;
  switch (kind) {
    case "float":
      return true;
    case "int":
      return Number.isInteger(value) && value >= DTYPE_TABLE[d].lowest && value <= DTYPE_TABLE[d].highest;
    case "bool":
      return value === 0 || value === 1;
    default:
      return assertNever(kind, "dtype kind");
  }
}

/** A fresh zero-filled array of `d`'s host storage type (what the interpreter and the DSL hold). */
export const allocHostArray = (d: DType, length: number): Float64Array | Int32Array | Uint8Array => new DTYPE_TABLE[d].hostArray(length);
/** `data` copied into `d`'s host storage type. */
// `new Ctor(arrayLike)` converts element by element like `Ctor.from`, without the iterator protocol (a typed array is copied in bulk).
export const hostArrayFrom = (d: DType, data: ArrayLike<number>): Float64Array | Int32Array | Uint8Array => new DTYPE_TABLE[d].hostArray(data);
/** `data` (values) converted into `d`'s device storage type (the typed array a runtime holds; 16-bit floats as rounded bit patterns). */
export function typedArrayFrom(d: DType, data: ArrayLike<number>): Float32Array | Uint16Array | Int32Array | Uint8Array {
  const half = halfOf(d);
  return half !== undefined ? encodeHalf(half, data) : new DTYPE_TABLE[d].typedArray(data);
}

/** A runtime's storage of `d` back to values (16-bit floats decoded into a fresh Float64Array; others returned as they are). */
export function valuesOfStorage(
  d: DType,
  data: Float32Array | Uint16Array | Int32Array | Uint8Array | Float64Array,
): Float32Array | Float64Array | Int32Array | Uint8Array {
  const half = halfOf(d);
  if (half === undefined) return data as Float32Array | Float64Array | Int32Array | Uint8Array;
  return data instanceof Uint16Array ? decodeHalf(half, data) : (data as Float32Array | Float64Array);
}
