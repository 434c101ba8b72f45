// SIMD lowering of one kernel-IR expression over four consecutive values of a loop variable
// (f32 → f32x4, i32 and bool → i32x4 with bool lanes 0/1). Loads and stores contiguous in
// that variable are one v128 access; anything else (strided or gathered indices, masks that
// vary per lane, idiv/mod, rng) runs the scalar lowering once per lane. exp2, log2 and sin are
// vector polynomials (module-helpers.ts), inlined: a call would spill live vectors.

import { indexDataRefs, indexVars, type IndexExpr, type IndexPred } from "../../compiler/kernel/index-expr.ts";
import type { ExprId, KExpr } from "../../compiler/kernel/kernel-ir.ts";
import { dtypeBytes, isBool, type DType } from "../../compiler/ir/dtype.ts";
import { SIMD_BINARY, WASM_MEMORY, isF32Value, laneOps } from "./dtypes.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { F32, I32, Op, Simd, V128 } from "./encoder.ts";
import { linearStride } from "../../compiler/kernel/index-expr.ts";
import { laneDivision } from "../../compiler/kernel/lane-axis.ts";
import { emitPred, type IndexEnv } from "./emit-index.ts";
import { emitAddress, emitScalarExpr, pushConstant, type ScalarCtx } from "./emit-scalar.ts";
import type { BufferPlace } from "./func-builder.ts";
import { emitExp2, emitLog2, emitSin, SIN_REDUCTION_LIMIT } from "./module-helpers.ts";

export const LANES = 4;

export interface VectorCtx extends Omit<ScalarCtx, "push"> {
  /** The variable whose four consecutive values the lanes hold; its local holds lane 0's value. */
  readonly vecVar: string;
  varies(id: ExprId): boolean;
  /** Pushes an operand as a vector (splatted when it does not vary). */
  pushVec(id: ExprId): void;
  /** Pushes one lane of an operand as a scalar. */
  pushLane(id: ExprId, lane: number): void;
  laneEnv(lane: number): IndexEnv;
  /** Whether every vector step starts at a multiple of 4 of `vecVar` (its loop starts at 0, not at a thread's chunk). */
  readonly laneAligned: boolean;
  /** Relaxed SIMD is on: polynomials may evaluate with `f32x4.relaxed_madd` (one rounding a step instead of two). */
  readonly fma: boolean;
  /** f32 negations not computed where they vary: their one use, an f32 add, subtracts their operand (emit-section's subtractedNegations). */
  readonly subtracted?: ReadonlySet<ExprId>;
}

/** Whether an index/predicate can be read as one contiguous vector: stride 1, no lane-varying gather. */
export function isContiguous(ctx: VectorCtx, index: IndexExpr, valid: IndexPred): boolean {
  if (linearStride(index, ctx.vecVar) !== 1) return false;
  for (const ref of indexDataRefs(index)) if (ctx.varies(ref)) return false;
  if (valid !== false)
    for (const c of valid) {
      if (indexVars(c.x).has(ctx.vecVar)) return false;
      for (const ref of indexDataRefs(c.x)) if (ctx.varies(ref)) return false;
    }
  return true;
}

/** Runs the scalar lowering of `e` once per lane into a vector. */
export function emitPerLane(ctx: VectorCtx, dtype: DType, scalar: (lane: ScalarCtx) => void): void {
  const { fb } = ctx;
  const tmp = fb.local(V128);
  fb.v128Zero().set(tmp);
  for (let lane = 0; lane < LANES; lane++) {
    fb.get(tmp);
    scalar({ ...ctx, env: ctx.laneEnv(lane), push: (id) => ctx.pushLane(id, lane) });
    fb.simdLane(laneOps(dtype).replace, lane).set(tmp);
  }
  fb.get(tmp);
}

function emitVectorLoad(ctx: VectorCtx, e: Extract<KExpr, { op: "load" }>): void {
  const { fb } = ctx;
  const place = ctx.buffer(e.buffer);
  const perLane = (): void => emitPerLane(ctx, e.dtype, (lc) => emitScalarExpr(lc, e));
  if (isBool(place.dtype) || e.valid === false) return perLane();
  const stride = laneStride(ctx, e.index, place.dtype === e.dtype ? place.dtype : undefined);
  if (stride === undefined) {
    const division = ctx.laneAligned && place.dtype === e.dtype ? laneDivisionOf(ctx, e.index, place.dtype) : undefined;
    const laneMasked = e.valid.some((c) => indexVars(c.x).has(ctx.vecVar) || [...indexDataRefs(c.x)].some((r) => ctx.varies(r)));
    if (!division || laneMasked) return perLane();
    if (e.valid.length === 0) return divisionLoad(ctx, e.index, division, place);
    emitPred(fb, e.valid, ctx.env);
    fb.open(Op.if, V128);
    divisionLoad(ctx, e.index, division, place);
    fb.op(Op.else);
    fb.v128Zero();
    fb.end();
    return;
  }
  const load = (): void => {
    if (stride === 1) {
      const offset = emitAddress(ctx, e.index, 4);
      fb.simdMemAt(Simd.v128Load, 2, place, offset);
    } else stridedLoad(ctx, e.index, stride, place);
  };
  if (e.valid.length === 0) return load();
  const laneMasked = e.valid.some((c) => indexVars(c.x).has(ctx.vecVar) || [...indexDataRefs(c.x)].some((r) => ctx.varies(r)));
  if (laneMasked && !e.valid.every((c) => linearStride(c.x, ctx.vecVar) !== undefined && ![...indexDataRefs(c.x)].some((r) => ctx.varies(r)))) return perLane();
  // A mask linear in the lane holds on an interval of lanes: on every lane when it holds on
  // lanes 0 and 3 (then one access), else lane by lane (a window's edge, or all masked).
  emitPred(fb, e.valid, ctx.env);
  if (laneMasked) {
    emitPred(fb, e.valid, ctx.laneEnv(LANES - 1));
    fb.op(Op.i32And);
  }
  fb.open(Op.if, V128);
  load();
  fb.op(Op.else);
  if (laneMasked) perLane();
  else fb.v128Zero();
  fb.end();
}

/**
 * The element stride of `index` along the lanes where one address computed at lane 0 serves
 * every lane (0: the same element, 1: one v128 access, more: four accesses at constant
 * offsets); undefined where lanes need their own index (div/mod of the lane variable, a
 * gathered index varying per lane, a negative stride) or the element is not a 4-byte f32/i32.
 */
function laneStride(ctx: VectorCtx, index: IndexExpr, dtype: DType | undefined): number | undefined {
  if (dtype !== "f32" && dtype !== "i32") return undefined;
  const stride = linearStride(index, ctx.vecVar);
  if (stride === undefined || stride < 0) return undefined;
  for (const ref of indexDataRefs(index)) if (ctx.varies(ref)) return undefined;
  return stride;
}

/** laneDivision (compiler/kernel/lane-axis.ts) of a 4-byte element's index whose gathered values do not vary per lane. */
function laneDivisionOf(ctx: VectorCtx, index: IndexExpr, dtype: DType): ReturnType<typeof laneDivision> {
  if (dtype !== "f32" && dtype !== "i32") return undefined;
  for (const ref of indexDataRefs(index)) if (ctx.varies(ref)) return undefined;
  return laneDivision(index, ctx.vecVar);
}

/**
 * A load at coef·(v div 2) (or div 4) of lanes starting at a multiple of 4: lanes 0 and 1 read
 * lane 0's element, lanes 2 and 3 the one coef further, so two splat loads from lane 0's
 * address and a shuffle taking the low half of the first and the high half of the second (div
 * 4: every lane reads lane 0's element, one splat).
 */
function divisionLoad(ctx: VectorCtx, index: IndexExpr, division: NonNullable<ReturnType<typeof laneDivision>>, place: BufferPlace): void {
  const { fb } = ctx;
  const offset = emitAddress(ctx, index, 4);
  if (division.divisor === 4) {
    fb.simdMemAt(Simd.v128Load32Splat, 2, place, offset);
    return;
  }
  const addr = fb.local(I32);
  fb.set(addr);
  fb.get(addr).simdMemAt(Simd.v128Load32Splat, 2, place, offset);
  fb.get(addr).simdMemAt(Simd.v128Load32Splat, 2, place, offset + 4 * division.coef);
  fb.shuffle([0, 1, 2, 3, 0, 1, 2, 3, 24, 25, 26, 27, 28, 29, 30, 31]);
}

/** Bytes of 4-byte lanes a0…a3 of the first vector and b0…b3 of the second, for i8x16.shuffle. */
const laneBytes = (lanes: readonly number[]): number[] => lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);

/**
 * Stride 2 and 3 as two overlapping v128 loads and a shuffle: elements 0…3 and `second`…second+3
 * hold lanes 0·s…3·s (stride 2: 0, 2 | 4, 6 of 3…6; stride 3: 0, 3 | 6, 9 of 6…9).
 */
const STRIDE_SHUFFLES: Readonly<Record<number, { readonly second: number; readonly bytes: readonly number[] }>> = {
  2: { second: 3, bytes: laneBytes([0, 2, 5, 7]) },
  3: { second: 6, bytes: laneBytes([0, 3, 4, 7]) },
};

/** Four scalar loads from one address (lane 0's) at byte offsets base + lane·stride·4, as a vector (strides 2 and 3: two loads and a shuffle). */
function stridedLoad(ctx: VectorCtx, index: IndexExpr, stride: number, place: BufferPlace): void {
  const { fb } = ctx;
  const mem = WASM_MEMORY[place.dtype];
  const lanes = laneOps(place.dtype);
  if (stride === 0) {
    const offset = emitAddress(ctx, index, 4);
    fb.simdMemAt(Simd.v128Load32Splat, 2, place, offset);
    return;
  }
  const offset = emitAddress(ctx, index, 4);
  const addr = fb.local(I32);
  fb.set(addr);
  const gather = STRIDE_SHUFFLES[stride];
  if (gather && dtypeBytes(place.dtype) === 4) {
    // two v128 loads covering elements 0…3 and then the last lanes' (no element past lane 3's), one shuffle
    fb.get(addr).simdMemAt(Simd.v128Load, 0, place, offset);
    fb.get(addr).simdMemAt(Simd.v128Load, 0, place, offset + 4 * gather.second);
    fb.shuffle(gather.bytes);
    return;
  }
  const v = fb.local(V128);
  fb.get(addr).memAt(mem.load, mem.align, place, offset).simd(lanes.splat).set(v);
  for (let lane = 1; lane < LANES; lane++) {
    fb.get(v)
      .get(addr)
      .memAt(mem.load, mem.align, place, offset + lane * stride * 4);
    fb.simdLane(lanes.replace, lane).set(v);
  }
  fb.get(v);
}

/** Turns a 0/1 lane vector into an all-ones mask (and back: the same negation). */
const negateI32 = (ctx: VectorCtx): void => void ctx.fb.simd(Simd.i32x4Neg);

export function emitVectorExpr(ctx: VectorCtx, e: KExpr): void {
  const { fb } = ctx;
  const dt = (id: ExprId): DType => ctx.exprs[id]!.dtype;
  const perLane = (): void => emitPerLane(ctx, e.dtype, (lc) => emitScalarExpr(lc, e));
  switch (e.op) {
    case "const":
      pushConstant(fb, e.value, e.dtype);
      fb.simd(laneOps(e.dtype).splat);
      return;
    case "load":
      return emitVectorLoad(ctx, e);
    case "index": {
      const stride = linearStride(e.index, ctx.vecVar);
      if (stride === undefined || [...indexDataRefs(e.index)].some((r) => ctx.varies(r))) return perLane();
      emitScalarExpr({ ...ctx, push: (id) => ctx.pushLane(id, 0) }, e);
      fb.simd(Simd.i32x4Splat)
        .v128I32([0, stride, 2 * stride, 3 * stride])
        .simd(Simd.i32x4Add);
      return;
    }
    case "sin": {
      // The polynomial unless some lane is past the range reduction's limit (then Math.sin per lane).
      const x = fb.local(V128);
      const out = fb.local(V128);
      ctx.pushVec(e.x);
      fb.set(x);
      // any lane with limit < |x| (NaN compares false: the polynomial gives NaN for it anyway)
      fb.f32(SIN_REDUCTION_LIMIT).simd(Simd.f32x4Splat).get(x).simd(Simd.f32x4Abs).simd(Simd.f32x4Lt).simd(Simd.v128AnyTrue);
      fb.open(Op.if);
      perLane();
      fb.set(out);
      fb.op(Op.else);
      emitSin(fb, x);
      fb.set(out);
      fb.end();
      fb.get(out);
      return;
    }
    case "valid":
    case "rng":
    case "idiv":
    case "mod":
      return perLane();
    case "reduce_sum":
    case "reduce_max":
    case "softmax_sum":
    case "softmax_max":
    case "softmax_norm":
      return perLane(); // unreachable: reductions are accumulated by the section emitter
    case "neg":
      ctx.pushVec(e.x);
      fb.simd(laneOps(e.dtype).neg);
      return;
    case "exp2":
    case "log2": {
      const x = fb.local(V128);
      ctx.pushVec(e.x);
      fb.set(x);
      if (e.op === "exp2") emitExp2(fb, x, ctx.fma);
      else emitLog2(fb, x);
      return;
    }
    case "sqrt":
      ctx.pushVec(e.x);
      fb.simd(Simd.f32x4Sqrt);
      return;
    case "recip":
      fb.f32(1).simd(Simd.f32x4Splat);
      ctx.pushVec(e.x);
      fb.simd(Simd.f32x4Div);
      return;
    case "cast":
      return emitVectorCast(ctx, dt(e.x), e.dtype, e.x);
    case "where":
      ctx.pushVec(e.x);
      ctx.pushVec(e.y);
      ctx.pushVec(e.cond);
      negateI32(ctx);
      fb.simd(Simd.v128Bitselect);
      return;
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq": {
      const d = dt(e.x);
      if (e.op === "max" && d === "f32" && maxWithConstant(ctx, e.x, e.y)) return;
      if (e.op === "add" && d === "f32" && addAsSub(ctx, e.x, e.y)) return;
      if (e.op === "cmplt" && isBool(d)) {
        // x < y on 0/1 is y & ~x
        ctx.pushVec(e.y);
        ctx.pushVec(e.x);
        fb.simd(Simd.v128AndNot);
        return;
      }
      ctx.pushVec(e.x);
      ctx.pushVec(e.y);
      fb.simd(SIMD_BINARY[d][e.op]);
      if (e.op === "cmplt" || e.op === "cmpeq") negateI32(ctx);
      return;
    }
    default:
      return assertNever(e, "kernel expr");
  }
}

/** x + (−y) (or (−y) + x) as f32x4.sub(x, y) where the negation is one emit-section leaves uncomputed (`subtracted`). */
function addAsSub(ctx: VectorCtx, a: ExprId, b: ExprId): boolean {
  const [x, negated] = ctx.subtracted?.has(b) && ctx.varies(b) ? [a, b] : ctx.subtracted?.has(a) && ctx.varies(a) ? [b, a] : [];
  if (x === undefined || negated === undefined) return false;
  const neg = ctx.exprs[negated]!;
  if (neg.op !== "neg") return bug(`wasm: subtracted %${negated} is a ${neg.op}, not a neg`);
  ctx.pushVec(x);
  ctx.pushVec(neg.x);
  ctx.fb.simd(Simd.f32x4Sub);
  return true;
}

/**
 * max(x, c) of f32 lanes against a constant c that is neither NaN nor −0 (a ReLU's max(x, 0)) as
 * f32x4.pmax(x, c) — `x < c ? c : x`, one maxps where f32x4.max's NaN and signed-zero handling
 * takes about seven instructions on x64: a NaN x fails the compare and passes through; for
 * c = +0, x = −0 also passes, and adding +0 turns it into max's +0 (x + 0 = x for every other
 * x, NaN stays NaN). False (nothing emitted) where neither operand is such a constant.
 */
function maxWithConstant(ctx: VectorCtx, a: ExprId, b: ExprId): boolean {
  const isConst = (id: ExprId): number | undefined => {
    const e = ctx.exprs[id]!;
    return e.op === "const" && !ctx.varies(id) && !Number.isNaN(e.value) && !Object.is(e.value, -0) ? e.value : undefined;
  };
  const cb = isConst(b);
  const [x, c] = cb !== undefined ? [a, cb] : [b, isConst(a)];
  if (c === undefined || !ctx.varies(x)) return false;
  const { fb } = ctx;
  ctx.pushVec(x);
  fb.f32(Math.fround(c)).simd(Simd.f32x4Splat);
  fb.simd(Simd.f32x4Pmax);
  if (c === 0) fb.f32(0).simd(Simd.f32x4Splat).simd(Simd.f32x4Add);
  return true;
}

function emitVectorCast(ctx: VectorCtx, from: DType, to: DType, x: ExprId): void {
  const { fb } = ctx;
  ctx.pushVec(x);
  if (from === to) return;
  switch (to) {
    case "bool":
      fb.v128Zero().simd(isF32Value(from) ? Simd.f32x4Ne : Simd.i32x4Ne);
      negateI32(ctx);
      return;
    case "f32":
    case "f16":
    case "bf16":
      if (isF32Value(from)) return;
      // bool 0/1 converts unsigned, i32 signed
      fb.simd(isBool(from) ? Simd.f32x4ConvertI32x4U : Simd.f32x4ConvertI32x4S);
      return;
    case "i32":
      if (isF32Value(from)) fb.simd(Simd.i32x4TruncSatF32x4S); // bool → i32: already 0/1
      return;
    default:
      return assertNever(to, "dtype");
  }
}

/** Stores a vector value at a store index (one v128 store when contiguous, else per lane). */
export function emitVectorStore(ctx: VectorCtx, buffer: number, index: IndexExpr, value: ExprId): void {
  const { fb } = ctx;
  const place = ctx.buffer(buffer);
  if (!isBool(place.dtype) && isContiguous(ctx, index, [])) {
    const offset = emitAddress(ctx, index, 4);
    ctx.pushVec(value);
    fb.simdMemAt(Simd.v128Store, 2, place, offset);
    return;
  }
  const stride = isBool(place.dtype) ? undefined : laneStride(ctx, index, place.dtype);
  if (stride !== undefined && stride > 0) {
    // one address (lane 0's), four stores at constant offsets (a transposing copy's scatter)
    const addr = fb.local(I32);
    const offset = emitAddress(ctx, index, 4);
    fb.set(addr);
    for (let lane = 0; lane < LANES; lane++) {
      fb.get(addr);
      ctx.pushLane(value, lane);
      fb.memAt(WASM_MEMORY[place.dtype].store, WASM_MEMORY[place.dtype].align, place, offset + lane * stride * 4);
    }
    return;
  }
  for (let lane = 0; lane < LANES; lane++) {
    const offset = emitAddress({ fb, env: ctx.laneEnv(lane) }, index, dtypeBytes(place.dtype));
    ctx.pushLane(value, lane);
    fb.memAt(WASM_MEMORY[place.dtype].store, WASM_MEMORY[place.dtype].align, place, offset);
  }
}

/** Pushes lane `lane` of a vector local as a scalar. */
export function extractLane(ctx: Pick<VectorCtx, "fb">, local: number, dtype: DType, lane: number): void {
  ctx.fb.get(local).simdLane(laneOps(dtype).extract, lane);
}

export const splatOp = (dtype: DType): number => laneOps(dtype).splat;
export { F32, I32 };
