// The functions every kernel module carries: host imports (Math.pow(2, x), Math.log2,
// Math.sin in float64; threefry2x32 uniforms) and wasm helpers (floor idiv/imod on i32 that
// never trap, a vector exp2). vexp2: 2^x = p(f) · 2^n with n = nearest(x), |f| ≤ 1/2, p the
// degree-7 Taylor polynomial of e^(f ln 2) (truncation < 6e-9 relative), 2^n applied as two
// exact power-of-two factors so subnormal results round once; measured ≤ 2 ulp vs Math.pow.

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

export const HELPER_FUNCS: HelperFuncs = { exp2: 0, log2: 1, sin: 2, rng: 3, idiv: 4, imod: 5, vexp2: 6 };
/** Index of the first section function (after the imports and helpers). */
export const FIRST_SECTION_FUNC = 7;

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

const EXP2_TAYLOR = [1, 0.6931471805599453, 0.2402265069591007, 0.05550410866482158, 0.009618129107628477, 0.0013333558146428443, 0.00015403530393381606, 1.525273380405984e-5];

function vexp2(): DefinedFunc {
  const fb = new FuncBuilder(1);
  emitExp2(fb, 0);
  return { type: { params: [V128], results: [V128] }, locals: fb.locals, body: fb.body };
}

/** Pushes 2^x for the f32x4 in local `x` (which it overwrites); inlined in hot loops, where a call would spill every live vector. */
export function emitExp2(fb: FuncBuilder, x: number): void {
  const n = fb.local(V128);
  const f = fb.local(V128);
  const p = fb.local(V128);
  const ni = fb.local(V128);
  const n1 = fb.local(V128);
  const splat = (v: number): void => void fb.f32(v).simd(Simd.f32x4Splat);
  // clamp to [-151, 129]: beyond, the result is 0 or inf anyway (NaN passes through max/min)
  fb.get(x);
  splat(-151);
  fb.simd(Simd.f32x4Max);
  splat(129);
  fb.simd(Simd.f32x4Min).tee(x).simd(Simd.f32x4Nearest).set(n);
  fb.get(x).get(n).simd(Simd.f32x4Sub).set(f);
  splat(EXP2_TAYLOR[EXP2_TAYLOR.length - 1]!);
  fb.set(p);
  for (let k = EXP2_TAYLOR.length - 2; k >= 0; k--) {
    fb.get(p).get(f).simd(Simd.f32x4Mul);
    splat(EXP2_TAYLOR[k]!);
    fb.simd(Simd.f32x4Add).set(p);
  }
  fb.get(n).simd(Simd.i32x4TruncSatF32x4S).tee(ni).i32(1).simd(Simd.i32x4ShrS).set(n1);
  const scale = (pushExp: () => void): void => {
    pushExp();
    fb.i32(127).simd(Simd.i32x4Splat).simd(Simd.i32x4Add).i32(23).simd(Simd.i32x4Shl);
  };
  fb.get(p);
  scale(() => fb.get(n1));
  fb.simd(Simd.f32x4Mul);
  scale(() => fb.get(ni).get(n1).simd(Simd.i32x4Sub));
  fb.simd(Simd.f32x4Mul);
}

export const helperFuncs = (): DefinedFunc[] => [idiv(), imod(), vexp2()];

/** The host functions a kernel module imports as `rt.*`. */
export interface HostMath {
  readonly exp2: (x: number) => number;
  readonly log2: (x: number) => number;
  readonly sin: (x: number) => number;
  readonly rng: (seed: number, stream: number, counter: number) => number;
}
