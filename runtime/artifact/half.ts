// The two 16-bit float formats, exactly: IEEE binary16 ("f16": 1 sign, 5 exponent, 10
// mantissa bits; max finite 65504, smallest subnormal 2^-24) and bfloat16 ("bf16": f32's
// 8-bit exponent with 7 mantissa bits). Rounding a number (a float64) to either format rounds
// ONCE, to nearest with ties to even, overflow to ±inf, gradual underflow through the
// subnormals, NaN kept; no detour through f32, so there is no double rounding. Decoding bits
// is exact (every f16 and bf16 value is an f32 and an f64). The compiler's interpreter and the
// runtimes (which hold 16-bit tensors as Uint16Array bit patterns) both use this module.

/** A format's facts: significand bits (with the implicit 1), the smallest normal exponent, and the largest finite value. */
interface HalfFormat {
  readonly precision: number;
  readonly minExponent: number;
  readonly maxFinite: number;
}

const F16: HalfFormat = { precision: 11, minExponent: -14, maxFinite: 65504 };
const BF16: HalfFormat = { precision: 8, minExponent: -126, maxFinite: (2 - 2 ** -7) * 2 ** 127 };

/** floor(log2 a) for a finite a > 0, exactly (Math.log2 may be off by one near powers of two). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

/** The integer nearest y ≥ 0, ties to even. */
function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f; // exact: y and f share their exponent range
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

function roundTo(x: number, fmt: HalfFormat): number {
  if (x === 0 || !Number.isFinite(x)) return x; // ±0, ±inf and NaN are values of both formats
  const a = Math.abs(x);
  // The spacing of representable values around a: 2^(e - precision + 1), fixed below the normals.
  const quantum = 2 ** (Math.max(exponentOf(a), fmt.minExponent) - fmt.precision + 1);
  const v = roundHalfEven(a / quantum) * quantum; // a / quantum is exact: a power-of-two scaling
  const r = v > fmt.maxFinite ? Infinity : v;
  return x < 0 ? -r : r;
}

/** x rounded to the nearest f16 value (ties to even; beyond 65504 + 16 → ±inf; below 2^-25 → ±0). */
export const roundToHalf = (x: number): number => roundTo(x, F16);
/** x rounded to the nearest bf16 value (ties to even; overflow → ±inf). */
export const roundToBfloat16 = (x: number): number => roundTo(x, BF16);

/** f16 bits → value. */
export function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mantissa) * 2 ** (exponent - 25);
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** bf16 bits → value (the top half of an f32). */
export function bfloat16BitsToNumber(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratch[0]!;
}

/** x → f16 bits, rounded once (see roundToHalf); NaN → the quiet NaN 0x7e00 (its sign kept). */
export function numberToHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const v = roundToHalf(x);
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | (a / 2 ** -24); // subnormal (or zero): the mantissa counts 2^-24s
  const e = exponentOf(a);
  return sign | ((e + 15) << 10) | (a / 2 ** (e - 10) - 1024);
}

/** x → bf16 bits, rounded once (see roundToBfloat16); NaN → the quiet NaN 0x7fc0. */
export function numberToBfloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fc0;
  scratch[0] = roundToBfloat16(x); // exact: a bf16 value is an f32 whose low 16 bits are zero
  return scratchBits[0]! >>> 16;
}

/** The 16-bit float formats by the name the dtype tables give them. */
export type HalfDType = "f16" | "bf16";

/** Values → bit patterns of `d` (a fresh Uint16Array). */
export function encodeHalf(d: HalfDType, values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  const encode = d === "f16" ? numberToHalfBits : numberToBfloat16Bits;
  for (let i = 0; i < values.length; i++) out[i] = encode(values[i]!);
  return out;
}

/** Bit patterns of `d` → their values, into `out` (a fresh Float64Array when absent). */
export function decodeHalf<T extends Float32Array | Float64Array = Float64Array>(d: HalfDType, bits: ArrayLike<number>, out?: T): T {
  const into = out ?? (new Float64Array(bits.length) as T);
  const decode = d === "f16" ? halfBitsToNumber : bfloat16BitsToNumber;
  for (let i = 0; i < bits.length; i++) into[i] = decode(bits[i]!);
  return into;
}

/** Rounds every element of `values` to `d` in place. */
export function roundHalfInPlace(d: HalfDType, values: Float64Array | Float32Array): void {
  const round = d === "f16" ? roundToHalf : roundToBfloat16;
  for (let i = 0; i < values.length; i++) values[i] = round(values[i]!);
}
