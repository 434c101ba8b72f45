// The functions every kernel module carries: host imports (Math.pow(2, x), Math.log2,
// Math.sin in float64; threefry2x32 uniforms) and wasm helpers (floor idiv/imod on i32 that
// never trap, a vector exp2). vexp2: 2^x = p(f) · 2^n with n = nearest(x), |f| ≤ 1/2, p the
// degree-6 minimax polynomial of e^(f ln 2) (1.9e-9 relative), 2^n applied as two
// exact power-of-two factors so subnormal results round once; measured ≤ 2 ulp vs Math.pow.
// f2h/h2f/f2b/b2f convert between f32 and the 16-bit floats' bit patterns in integer ops.

import { F32, F64, I32, Op, Simd, V128, type DefinedFunc, type FuncType, type ImportedFunc } from "./encoder.ts";
import { FuncBuilder } from "./func-builder.ts";
import type { HelperFuncs } from "./emit-scalar.ts";

const unaryF64: FuncType = { params: [F64], results: [F64] };

export const HOST_IMPORTS: readonly ImportedFunc[] = [
  { module: "rt", name: "exp2", type: unaryF64 },
  { module: "rt", name: "log2", type: unaryF64 },
  { module: "rt", name: "sin", type: unaryF64 },
  { module: "rt", name: "rng", type: { params: [I32, I32, I32], results: [F32] } },
];

export const HELPER_FUNCS: HelperFuncs = { exp2: 0, log2: 1, sin: 2, rng: 3, idiv: 4, imod: 5, vexp2: 6, vlog2: 7, f2h: 8, h2f: 9, f2b: 10, b2f: 11 };
/** Index of the first section function (after the imports and helpers). */
export const FIRST_SECTION_FUNC = 12;

// ---- 16-bit floats (runtime/artifact/half.ts holds the same rules in JS) ----

/** f32 → f16 bits, round to nearest even; beyond 65520 → ±inf; NaN → 0x7e00 with its sign. */
function f2h(): DefinedFunc {
  const fb = new FuncBuilder(1);
  const bits = fb.local(I32);
  const sign = fb.local(I32);
  const a = fb.local(I32);
  const m = fb.local(I32);
  fb.get(0).op(Op.i32ReinterpretF32).set(bits);
  fb.get(bits).i32(16).op(Op.i32ShrU).i32(0x8000).op(Op.i32And).set(sign);
  fb.get(bits).i32(0x7fffffff).op(Op.i32And).set(a);
  // inf or NaN
  fb.get(a).i32(0x7f800000).op(Op.i32GeU).open(Op.if);
  fb.get(sign).i32(0x7e00).i32(0x7c00).get(a).i32(0x7f800000).op(Op.i32GtU).op(Op.select).op(Op.i32Or).op(Op.return);
  fb.end();
  // 65520 (0x477ff000) and above round to inf
  fb.get(a).i32(0x477ff000).op(Op.i32GeU).open(Op.if).get(sign).i32(0x7c00).op(Op.i32Or).op(Op.return).end();
  // normal: rebias the exponent (127 → 15) and drop 13 mantissa bits, ties to even (a carry moves the exponent up)
  fb.get(a).i32(0x38800000).op(Op.i32GeU).open(Op.if);
  fb.get(a).i32(0x38000000).op(Op.i32Sub).set(m);
  fb.get(sign).get(m).i32(0xfff).op(Op.i32Add).get(m).i32(13).op(Op.i32ShrU).i32(1).op(Op.i32And).op(Op.i32Add).i32(13).op(Op.i32ShrU);
  fb.op(Op.i32Or).op(Op.return);
  fb.end();
  // subnormal or zero: |x| / 2^-24 rounded to the nearest even integer (exact scaling; 1024 is the smallest normal)
  fb.get(sign).get(0).op(Op.f32Abs).f32(16777216).op(Op.f32Mul).op(Op.f32Nearest).op(Op.i32TruncF32S).op(Op.i32Or);
  return { type: { params: [F32], results: [I32] }, locals: fb.locals, body: fb.body };
}

/** f16 bits → f32 (exact). */
function h2f(): DefinedFunc {
  const fb = new FuncBuilder(1);
  const e = fb.local(I32);
  const m = fb.local(I32);
  const s = fb.local(I32);
  const r = fb.local(F32);
  fb.get(0).i32(10).op(Op.i32ShrU).i32(0x1f).op(Op.i32And).set(e);
  fb.get(0).i32(0x3ff).op(Op.i32And).set(m);
  fb.get(0).i32(0x8000).op(Op.i32And).i32(16).op(Op.i32Shl).set(s);
  // subnormal or zero: m · 2^-24 with the sign
  fb.get(e).op(Op.i32Eqz).open(Op.if);
  fb.get(m)
    .op(Op.f32ConvertI32U)
    .f32(2 ** -24)
    .op(Op.f32Mul)
    .set(r);
  fb.get(r).op(Op.f32Neg).get(r).get(s).op(Op.select).op(Op.return);
  fb.end();
  // inf/NaN keep the all-ones exponent; normals rebias 15 → 127
  fb.get(s).get(m).i32(13).op(Op.i32Shl).op(Op.i32Or);
  fb.i32(0x7f800000).get(e).i32(112).op(Op.i32Add).i32(23).op(Op.i32Shl).get(e).i32(0x1f).op(Op.i32Eq).op(Op.select);
  fb.op(Op.i32Or).op(Op.f32ReinterpretI32);
  return { type: { params: [I32], results: [F32] }, locals: fb.locals, body: fb.body };
}

/** f32 → bf16 bits: the top half, round to nearest even; NaN stays a (quiet) NaN. */
function f2b(): DefinedFunc {
  const fb = new FuncBuilder(1);
  const bits = fb.local(I32);
  fb.get(0).op(Op.i32ReinterpretF32).set(bits);
  fb.get(bits).i32(0x7fffffff).op(Op.i32And).i32(0x7f800000).op(Op.i32GtU).open(Op.if);
  fb.get(bits).i32(16).op(Op.i32ShrU).i32(0x40).op(Op.i32Or).op(Op.return);
  fb.end();
  fb.get(bits).i32(0x7fff).op(Op.i32Add).get(bits).i32(16).op(Op.i32ShrU).i32(1).op(Op.i32And).op(Op.i32Add).i32(16).op(Op.i32ShrU);
  return { type: { params: [F32], results: [I32] }, locals: fb.locals, body: fb.body };
}

/** bf16 bits → f32 (exact: the high half). */
function b2f(): DefinedFunc {
  const fb = new FuncBuilder(1);
  fb.get(0).i32(16).op(Op.i32Shl).op(Op.f32ReinterpretI32);
  return { type: { params: [I32], results: [F32] }, locals: fb.locals, body: fb.body };
}

const binaryI32: FuncType = { params: [I32, I32], results: [I32] };

function idiv(): DefinedFunc {
  // floor(a / b); b = 0 → 0; b = -1 → -a (wraps, so INT_MIN // -1 = INT_MIN without a trap)
  const fb = new FuncBuilder(2);
  const q = fb.local(I32);
  fb.get(1).op(Op.i32Eqz).open(Op.if).i32(0).op(Op.return).end();
  fb.get(1).i32(-1).op(Op.i32Eq).open(Op.if).i32(0).get(0).op(Op.i32Sub).op(Op.return).end();
  fb.get(0).get(1).op(Op.i32DivS).set(q);
  // round toward -inf when the remainder is non-zero and the signs differ
  fb.get(q);
  fb.get(0).get(1).op(Op.i32RemS).i32(0).op(Op.i32Ne);
  fb.get(0).get(1).op(Op.i32Xor).i32(0).op(Op.i32LtS).op(Op.i32And);
  fb.op(Op.i32Sub);
  return { type: binaryI32, locals: fb.locals, body: fb.body };
}

function imod(): DefinedFunc {
  // a - b*floor(a/b): the remainder takes the divisor's sign; b ∈ {0, -1} → 0
  const fb = new FuncBuilder(2);
  const r = fb.local(I32);
  fb.get(1).op(Op.i32Eqz).get(1).i32(-1).op(Op.i32Eq).op(Op.i32Or).open(Op.if).i32(0).op(Op.return).end();
  fb.get(0).get(1).op(Op.i32RemS).set(r);
  fb.get(r).get(1).op(Op.i32Add).get(r);
  fb.get(r).i32(0).op(Op.i32Ne).get(r).get(1).op(Op.i32Xor).i32(0).op(Op.i32LtS).op(Op.i32And);
  fb.op(Op.select);
  return { type: binaryI32, locals: fb.locals, body: fb.body };
}

/**
 * 2^f = e^(f ln 2) on |f| ≤ ½: a degree-6 polynomial fitted for the least maximum relative
 * error (1.9e-9, Lawson's iteration on 4000 Chebyshev points; scripts/exp2-minimax.py), one
 * degree and one multiply-add fewer than the degree-7 Taylor series it replaced (truncation 6e-9):
 * the exp of softmax's row pass is most of that kernel's instructions. Horner in f32 gives ≤ 1.2
 * ulp with mul + add, ≤ 0.94 ulp with fused multiply-adds, before the exact scaling by 2^n.
 */
const EXP2_POLY = [
  1.000000000554173, 0.6931472057374515, 0.24022646890605756, 0.05550328776558061, 0.0096184889587284, 0.001339993138457776, 0.0001534581195438325,
];

/** 1.5·2²³ (bits 0x4b400000): x + this rounds x (|x| < 2²²) to an integer held in the low mantissa bits. */
const EXP2_ROUND_MAGIC = 12582912;

function vexp2(): DefinedFunc {
  const fb = new FuncBuilder(1);
  emitExp2(fb, 0);
  return { type: { params: [V128], results: [V128] }, locals: fb.locals, body: fb.body };
}

/**
 * Pushes 2^x for the f32x4 in local `x` (which it overwrites); inlined in hot loops, where a call
 * would spill every live vector. With `fma` (relaxed SIMD on) the polynomial's Horner steps are
 * `f32x4.relaxed_madd`s: six instructions fewer, and the result may differ in the last bit from
 * the mul + add form (and between engines that fuse and engines that do not).
 */
export function emitExp2(fb: FuncBuilder, x: number, fma = false): void {
  const n = fb.local(V128);
  const f = fb.local(V128);
  const p = fb.local(V128);
  const sum = fb.local(V128);
  const n1 = fb.local(V128);
  const splat = (v: number): void => void fb.f32(v).simd(Simd.f32x4Splat);
  // clamp to [-151, 129]: beyond, the result is 0 or inf anyway. pmax/pmin (one instruction
  // each) return their first operand when it is NaN, so NaN passes through.
  fb.get(x);
  splat(-151);
  fb.simd(Simd.f32x4Pmax);
  splat(129);
  fb.simd(Simd.f32x4Pmin).set(x);
  // n = nearest(x) by adding 1.5·2²³ (round to nearest even at the add); the sum's low
  // mantissa bits hold n as an integer, so no float → int conversion is needed.
  fb.get(x);
  splat(EXP2_ROUND_MAGIC);
  fb.simd(Simd.f32x4Add).tee(n).set(sum);
  fb.get(n);
  splat(EXP2_ROUND_MAGIC);
  fb.simd(Simd.f32x4Sub).set(n);
  fb.get(x).get(n).simd(Simd.f32x4Sub).set(f);
  splat(EXP2_POLY[EXP2_POLY.length - 1]!);
  fb.set(p);
  for (let k = EXP2_POLY.length - 2; k >= 0; k--) {
    if (fma) {
      // relaxed_madd(a, b, c) = a·b + c
      fb.get(p).get(f);
      splat(EXP2_POLY[k]!);
      fb.simd(Simd.f32x4RelaxedMadd).set(p);
    } else {
      fb.get(p).get(f).simd(Simd.f32x4Mul);
      splat(EXP2_POLY[k]!);
      fb.simd(Simd.f32x4Add).set(p);
    }
  }
  // 2^n = 2^n1 · 2^(n − n1), n1 = floor(n / 2), each factor's exponent field shifted straight
  // out of the sum's bits (1.5·2²³ + n): the constant's own bits vanish in both shifts (its
  // low 9 bits are 0, and so are those of half of it), so n1 << 23 = (sum >> 1) << 23 and
  // n << 23 = sum << 23, modulo 2³²: no subtraction of the constant's bits, one splat fewer.
  fb.get(sum).i32(1).simd(Simd.i32x4ShrU).i32(23).simd(Simd.i32x4Shl).set(n1);
  const bias = (): void =>
    void fb
      .i32(127 << 23)
      .simd(Simd.i32x4Splat)
      .simd(Simd.i32x4Add);
  fb.get(p).get(n1);
  bias();
  fb.simd(Simd.f32x4Mul);
  fb.get(sum).i32(23).simd(Simd.i32x4Shl).get(n1).simd(Simd.i32x4Sub);
  bias();
  fb.simd(Simd.f32x4Mul);
}

/**
 * Pushes log2(x) for the f32x4 in local `x`: x = m·2^e with m in [√½, √2) (subnormals scaled
 * by 2^23 first), ln m = 2·atanh(s) = 2(s + s³/3 + … + s⁹/9) with s = (m−1)/(m+1), |s| ≤ 0.172
 * (truncation < 3e-9 relative), log2 x = e + ln m / ln 2. x = 0 → −inf, x < 0 → NaN, inf → inf,
 * NaN → NaN. Measured ≤ 4 ulp vs Math.log2 (the worst case: cancellation in e + ln m/ln 2 just
 * below x = √½).
 */
export function emitLog2(fb: FuncBuilder, x: number): void {
  const small = fb.local(V128);
  const bits = fb.local(V128);
  const e = fb.local(V128);
  const m = fb.local(V128);
  const big = fb.local(V128);
  const s = fb.local(V128);
  const s2 = fb.local(V128);
  const r = fb.local(V128);
  const f = (v: number): void => void fb.f32(v).simd(Simd.f32x4Splat);
  const i = (v: number): void => void fb.i32(v).simd(Simd.i32x4Splat);
  fb.get(x);
  f(2 ** -126);
  fb.simd(Simd.f32x4Lt).set(small);
  fb.get(x);
  f(2 ** 23);
  fb.simd(Simd.f32x4Mul).get(x).get(small).simd(Simd.v128Bitselect).set(bits);
  fb.get(bits).i32(23).simd(Simd.i32x4ShrS);
  i(127);
  fb.simd(Simd.i32x4Sub).get(small);
  i(23);
  fb.simd(Simd.v128And).simd(Simd.i32x4Sub).set(e);
  fb.get(bits);
  i(0x007fffff);
  fb.simd(Simd.v128And);
  i(0x3f800000);
  fb.simd(Simd.v128Or).set(m);
  f(Math.SQRT2);
  fb.get(m).simd(Simd.f32x4Lt).set(big);
  fb.get(m);
  f(0.5);
  fb.simd(Simd.f32x4Mul).get(m).get(big).simd(Simd.v128Bitselect).set(m);
  fb.get(e).get(big).simd(Simd.i32x4Sub).set(e);
  fb.get(m);
  f(1);
  fb.simd(Simd.f32x4Sub).get(m);
  f(1);
  fb.simd(Simd.f32x4Add).simd(Simd.f32x4Div).tee(s).get(s).simd(Simd.f32x4Mul).set(s2);
  const coefs = [2, 2 / 3, 2 / 5, 2 / 7, 2 / 9];
  f(coefs[coefs.length - 1]!);
  for (let c = coefs.length - 2; c >= 0; c--) {
    fb.get(s2).simd(Simd.f32x4Mul);
    f(coefs[c]!);
    fb.simd(Simd.f32x4Add);
  }
  fb.get(s).simd(Simd.f32x4Mul);
  f(1 / Math.LN2);
  fb.simd(Simd.f32x4Mul).get(e).simd(Simd.f32x4ConvertI32x4S).simd(Simd.f32x4Add).set(r);
  // special values, last one wins: 0 → -inf, inf → inf, x < 0 → NaN, NaN → NaN
  const pick = (pushValue: () => void, pushMask: () => void): void => {
    pushValue();
    fb.get(r);
    pushMask();
    fb.simd(Simd.v128Bitselect).set(r);
  };
  pick(
    () => f(-Infinity),
    () => (fb.get(x), f(0), fb.simd(Simd.f32x4Eq)),
  );
  pick(
    () => f(Infinity),
    () => (fb.get(x), f(Infinity), fb.simd(Simd.f32x4Eq)),
  );
  pick(
    () => f(NaN),
    () => (fb.get(x), f(0), fb.simd(Simd.f32x4Lt)),
  );
  pick(
    () => fb.get(x),
    () => fb.get(x).get(x).simd(Simd.f32x4Ne),
  );
  fb.get(r);
}

/** |x| past which the f32 range reduction of sin loses accuracy: callers fall back to Math.sin. */
export const SIN_REDUCTION_LIMIT = 8192;

/**
 * Pushes sin(x) for the f32x4 in local `x` when every |x| ≤ SIN_REDUCTION_LIMIT: r = x − n·π/2
 * with n = nearest(2x/π) (Cody–Waite, π/2 split in three f32 parts), then ±sin r or ±cos r by
 * n mod 4, Taylor polynomials to r⁹ and r¹⁰ on |r| ≤ π/4 (truncation < 2e-9). Absolute error
 * ≤ 3e-7 up to the limit (tested against Math.sin); inf and NaN give NaN.
 */
export function emitSin(fb: FuncBuilder, x: number): void {
  const n = fb.local(V128);
  const r = fb.local(V128);
  const r2 = fb.local(V128);
  const q = fb.local(V128);
  const sinR = fb.local(V128);
  const f = (v: number): void => void fb.f32(v).simd(Simd.f32x4Splat);
  const i = (v: number): void => void fb.i32(v).simd(Simd.i32x4Splat);
  fb.get(x);
  f(2 / Math.PI);
  fb.simd(Simd.f32x4Mul).simd(Simd.f32x4Nearest).set(n);
  fb.get(x).set(r);
  for (const part of [1.5703125, 4.837512969970703125e-4, 7.549789954891882e-8]) {
    fb.get(r).get(n);
    f(part);
    fb.simd(Simd.f32x4Mul).simd(Simd.f32x4Sub).set(r);
  }
  fb.get(r).get(r).simd(Simd.f32x4Mul).set(r2);
  const horner = (coefs: readonly number[]): void => {
    f(coefs[coefs.length - 1]!);
    for (let c = coefs.length - 2; c >= 0; c--) {
      fb.get(r2).simd(Simd.f32x4Mul);
      f(coefs[c]!);
      fb.simd(Simd.f32x4Add);
    }
  };
  // sin r = r + r·r²·(−1/6 + r²/120 − r⁴/5040 + r⁶/362880)
  horner([-1 / 6, 1 / 120, -1 / 5040, 1 / 362880]);
  fb.get(r2).simd(Simd.f32x4Mul).get(r).simd(Simd.f32x4Mul).get(r).simd(Simd.f32x4Add).set(sinR);
  // cos r = 1 + r²·(−1/2 + r²/24 − r⁴/720 + r⁶/40320 − r⁸/3628800)
  horner([-1 / 2, 1 / 24, -1 / 720, 1 / 40320, -1 / 3628800]);
  fb.get(r2).simd(Simd.f32x4Mul);
  f(1);
  fb.simd(Simd.f32x4Add);
  fb.get(n).simd(Simd.i32x4TruncSatF32x4S).set(q);
  // odd quadrants take cos r; quadrants 2 and 3 flip the sign
  fb.get(sinR).get(q);
  i(1);
  fb.simd(Simd.v128And).v128Zero().simd(Simd.i32x4Ne).simd(Simd.v128Bitselect);
  fb.get(q);
  i(2);
  fb.simd(Simd.v128And).i32(30).simd(Simd.i32x4Shl).simd(Simd.v128Xor);
}

function vlog2(): DefinedFunc {
  const fb = new FuncBuilder(1);
  emitLog2(fb, 0);
  return { type: { params: [V128], results: [V128] }, locals: fb.locals, body: fb.body };
}

const unaryV128: FuncType = { params: [V128], results: [V128] };

/**
 * The helper functions every kernel module carries, after the host imports, in index order:
 * each one's type and its builder. A module holds the ones its sections call and a stub of the
 * same type for the others (render-program.ts).
 */
const HELPERS: readonly { readonly type: FuncType; readonly build: () => DefinedFunc }[] = [
  { type: binaryI32, build: idiv },
  { type: binaryI32, build: imod },
  { type: unaryV128, build: vexp2 },
  { type: unaryV128, build: vlog2 },
  { type: { params: [F32], results: [I32] }, build: f2h },
  { type: { params: [I32], results: [F32] }, build: h2f },
  { type: { params: [F32], results: [I32] }, build: f2b },
  { type: { params: [I32], results: [F32] }, build: b2f },
];

/** How many helper functions a module carries. */
export const HELPER_COUNT = HELPERS.length;

/** Helper `i`'s type. */
export const helperType = (i: number): FuncType => HELPERS[i]!.type;

/**
 * Helper `i`, built once when a section first calls it: it never changes, and a big program
 * renders hundreds of modules (assembleModule only reads a function's body). Helpers no section
 * calls are never built (a cold start ran the 16-bit conversions' builders for nothing).
 */
const built: (DefinedFunc | undefined)[] = [];
export const helperFunc = (i: number): DefinedFunc => (built[i] ??= HELPERS[i]!.build());

/** The host functions a kernel module imports as `rt.*`. */
export interface HostMath {
  readonly exp2: (x: number) => number;
  readonly log2: (x: number) => number;
  readonly sin: (x: number) => number;
  readonly rng: (seed: number, stream: number, counter: number) => number;
}
