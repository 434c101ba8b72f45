// Scalar lowering of one kernel-IR expression to wasm: f32 values are wasm f32, i32 and bool
// are i32 (bool as 0/1). Semantics follow compiler/ir/interpret.ts: floor idiv/mod (zero
// divisor → 0, as the JS target), saturating f32→i32 (i32.trunc_sat, NaN → 0), NaN-
// propagating max; exp2 and log2 are the vector polynomials on one lane (≤ 2 and ≤ 4 ulp), sin
// calls the host's Math.sin in float64 (a call into JS costs ~100 ns), rng the host's
// threefry2x32 (bit-exact with the interpreter).

import type { ExprId, KExpr } from "../../compiler/kernel/kernel-ir.ts";
import { bounds, indexDataRefs } from "../../compiler/kernel/index-expr.ts";
import { dtypeBytes, halfOf, isBool, isFloat, type DType } from "../../compiler/ir/dtype.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import { needsHalfRounding } from "../../compiler/kernel/half-rounding.ts";
import { WASM_MEMORY, isF32Value } from "./dtypes.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { F32, Op, Simd, TRUNC_SAT_F32_S } from "./encoder.ts";
import { emitIndex, emitPred, type IndexEnv } from "./emit-index.ts";
import { valTypeOf, type BufferPlace, type FuncBuilder } from "./func-builder.ts";

/** Function indices every kernel module defines or imports (see build-module.ts). */
export interface HelperFuncs {
  readonly exp2: number;
  readonly log2: number;
  readonly sin: number;
  readonly rng: number;
  readonly idiv: number;
  readonly imod: number;
  readonly vexp2: number;
  readonly vlog2: number;
  /** f32 ↔ f16 / bf16 bit patterns (module-helpers.ts). */
  readonly f2h: number;
  readonly h2f: number;
  readonly f2b: number;
  readonly b2f: number;
}

/** After an f32 value of a 16-bit dtype is on the stack: its bit patterns (for a store). */
export function emitEncodeHalf(fb: FuncBuilder, helpers: HelperFuncs, d: DType): void {
  const half = halfOf(d);
  if (half !== undefined) fb.call(half === "f16" ? helpers.f2h : helpers.f2b);
}

/** After bit patterns of a 16-bit dtype are on the stack (a load): the value as f32. */
export function emitDecodeHalf(fb: FuncBuilder, helpers: HelperFuncs, d: DType): void {
  const half = halfOf(d);
  if (half !== undefined) fb.call(half === "f16" ? helpers.h2f : helpers.b2f);
}

/** Rounds the f32 on the stack to the 16-bit dtype `d` (nothing for other dtypes). */
export function emitRoundHalf(fb: FuncBuilder, helpers: HelperFuncs, d: DType): void {
  emitEncodeHalf(fb, helpers, d);
  emitDecodeHalf(fb, helpers, d);
}

export interface ScalarCtx {
  readonly fb: FuncBuilder;
  readonly exprs: readonly KExpr[];
  readonly helpers: HelperFuncs;
  readonly buffer: (id: number) => BufferPlace;
  /** Pushes the scalar value of an operand. */
  push(id: ExprId): void;
  readonly env: IndexEnv;
}

/**
 * Pushes the byte address (relative to the buffer base) of element `index`, less the byte
 * offset it returns, which the caller adds to the access's memarg offset: a positive constant
 * term whose removal leaves an address that cannot go negative (a register block's row and
 * column offsets then cost no instruction, and copies of a load share one address).
 */
export function emitAddress(ctx: Pick<ScalarCtx, "fb" | "env">, index: Parameters<typeof emitIndex>[1], bytes: number): number {
  const pointed = ctx.env.address?.(index, bytes);
  if (pointed !== undefined) return pointed;
  const rest = { ...index, constant: 0 };
  const fold = index.constant > 0 && index.terms.length > 0 && indexDataRefs(rest).size === 0 && bounds(rest)[0] >= 0;
  emitIndex(ctx.fb, fold ? rest : index, ctx.env);
  if (bytes === 4) ctx.fb.i32(2).op(Op.i32Shl);
  else if (bytes === 2) ctx.fb.i32(1).op(Op.i32Shl);
  return fold ? index.constant * bytes : 0;
}

export function emitScalarLoad(ctx: ScalarCtx, e: Extract<KExpr, { op: "load" }>): void {
  const { fb } = ctx;
  const place = ctx.buffer(e.buffer);
  const type = valTypeOf(place.dtype);
  const load = (): void => {
    const offset = emitAddress(ctx, e.index, dtypeBytes(place.dtype));
    fb.memAt(WASM_MEMORY[place.dtype].load, WASM_MEMORY[place.dtype].align, place, offset);
    emitDecodeHalf(fb, ctx.helpers, place.dtype);
  };
  if (e.valid === false) {
    if (type === F32) fb.f32(0);
    else fb.i32(0);
    return;
  }
  if (e.valid.length === 0) return load();
  // The load is skipped where the predicate fails: its address may be out of range there.
  emitPred(fb, e.valid, ctx.env);
  fb.open(Op.if, type);
  load();
  fb.op(Op.else);
  if (type === F32) fb.f32(0);
  else fb.i32(0);
  fb.end();
}

/** Pushes the scalar value of `e`; a 16-bit result is rounded to its format, as the interpreter rounds each op. */
export function emitScalarExpr(ctx: ScalarCtx, e: KExpr): void {
  emitScalarExprF32(ctx, e);
  if (needsHalfRounding(e, ctx.exprs)) emitRoundHalf(ctx.fb, ctx.helpers, e.dtype);
}

function emitScalarExprF32(ctx: ScalarCtx, e: KExpr): void {
  const { fb } = ctx;
  const dt = (id: ExprId): DType => ctx.exprs[id]!.dtype;
  switch (e.op) {
    case "const":
      pushConstant(fb, e.value, e.dtype);
      return;
    case "load":
      return emitScalarLoad(ctx, e);
    case "index":
      return emitIndex(fb, e.index, ctx.env);
    case "valid":
      return emitPred(fb, e.pred, ctx.env);
    case "rng":
      ctx.push(e.seed);
      fb.i32(e.stream);
      emitIndex(fb, e.counter, ctx.env);
      fb.call(ctx.helpers.rng);
      return;
    case "reduce_sum":
    case "reduce_max":
    case "softmax_sum":
    case "softmax_max":
    case "softmax_norm":
      return bug("wasm: a reduce is not a scalar expression");
    case "neg":
      if (isF32Value(e.dtype)) {
        ctx.push(e.x);
        fb.op(Op.f32Neg);
      } else {
        fb.i32(0);
        ctx.push(e.x);
        fb.op(Op.i32Sub);
      }
      return;
    case "exp2":
    case "log2":
      // The vector polynomial on one lane: as accurate, and far cheaper than a call into JS.
      ctx.push(e.x);
      fb.simd(Simd.f32x4Splat)
        .call(e.op === "exp2" ? ctx.helpers.vexp2 : ctx.helpers.vlog2)
        .simdLane(Simd.f32x4ExtractLane, 0);
      return;
    case "sin":
      ctx.push(e.x);
      fb.op(Op.f64PromoteF32).call(ctx.helpers.sin).op(Op.f32DemoteF64);
      return;
    case "sqrt":
      ctx.push(e.x);
      fb.op(Op.f32Sqrt);
      return;
    case "recip":
      fb.f32(1);
      ctx.push(e.x);
      fb.op(Op.f32Div);
      return;
    case "cast":
      return emitCast(ctx, dt(e.x), e.dtype, () => ctx.push(e.x));
    case "where":
      ctx.push(e.x);
      ctx.push(e.y);
      ctx.push(e.cond);
      fb.op(Op.select);
      return;
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq":
    case "idiv":
    case "mod":
      return emitScalarBinary(ctx, e.op, dt(e.x), e.x, e.y);
    default:
      return assertNever(e, "kernel expr");
  }
}

/** Pushes a constant as its dtype's wasm value (bool as 0/1, i32 wrapped). */
export function pushConstant(fb: FuncBuilder, value: number, dtype: DType): void {
  switch (dtype) {
    case "f32":
      fb.f32(value);
      return;
    case "f16":
      fb.f32(roundToHalf(value));
      return;
    case "bf16":
      fb.f32(roundToBfloat16(value));
      return;
    case "i32":
      fb.i32(value | 0);
      return;
    case "bool":
      fb.i32(value !== 0 ? 1 : 0);
      return;
    default:
      return assertNever(dtype, "dtype");
  }
}

export function emitCast(ctx: Pick<ScalarCtx, "fb">, from: DType, to: DType, push: () => void): void {
  const { fb } = ctx;
  push();
  if (from === to) return;
  switch (to) {
    case "bool":
      if (isF32Value(from)) fb.f32(0).op(Op.f32Ne);
      else fb.i32(0).op(Op.i32Ne);
      return;
    case "f32":
    case "f16":
    case "bf16":
      if (isF32Value(from)) return;
      fb.op(isBool(from) ? Op.f32ConvertI32U : Op.f32ConvertI32S);
      return;
    case "i32":
      if (isF32Value(from)) fb.body.u8(0xfc).u32(TRUNC_SAT_F32_S); // saturating, NaN → 0
      return; // bool → i32: already 0/1
    default:
      return assertNever(to, "dtype");
  }
}

function emitScalarBinary(ctx: ScalarCtx, op: "add" | "mul" | "max" | "cmplt" | "cmpeq" | "idiv" | "mod", dtype: DType, x: ExprId, y: ExprId): void {
  const { fb } = ctx;
  const both = (): void => {
    ctx.push(x);
    ctx.push(y);
  };
  const f = isFloat(dtype);
  const b = isBool(dtype);
  switch (op) {
    case "add":
      both();
      fb.op(f ? Op.f32Add : b ? Op.i32Or : Op.i32Add);
      return;
    case "mul":
      both();
      fb.op(f ? Op.f32Mul : b ? Op.i32And : Op.i32Mul);
      return;
    case "max":
      if (f) {
        both();
        fb.op(Op.f32Max);
      } else if (b) {
        both();
        fb.op(Op.i32Or);
      } else {
        both();
        ctx.push(x);
        ctx.push(y);
        fb.op(Op.i32GtS).op(Op.select);
      }
      return;
    case "cmplt":
      both();
      fb.op(f ? Op.f32Lt : b ? Op.i32LtU : Op.i32LtS);
      return;
    case "cmpeq":
      both();
      fb.op(f ? Op.f32Eq : Op.i32Eq);
      return;
    case "idiv":
    case "mod":
      both();
      fb.call(op === "idiv" ? ctx.helpers.idiv : ctx.helpers.imod);
      return;
    default:
      return assertNever(op, "binary op");
  }
}
