// One kernel-IR section → one wasm function `(lo, hi, tid)` that runs iterations [lo, hi) of
// the section's outermost real loop (the split worker threads share). The loop tree is the
// shared schedule (compiler/kernel/schedule.ts); on top of it two SIMD regions:
//   A. the innermost domain loop, when every store is contiguous in it: four iterations per
//      step as f32x4/i32x4 (reductions inside keep one vector accumulator per lane), a
//      scalar loop for the remainder;
//   B. a reduction outside A over a contiguous innermost variable: four partial accumulators,
//      combined across lanes at the end (the summation order differs from the interpreter's).

import { reduceElements, scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { vectorPaysWithScatter } from "../../compiler/kernel/lane-axis.ts";
import { reduceRange } from "../../compiler/kernel/key-range.ts";
import { exprOperands, exprOwnVars, isReduceExpr, softmaxGroups, type ExprId, type KExpr, type Section, type Store } from "../../compiler/kernel/kernel-ir.ts";
import { onlineSoftmax, valueRuns, vectorOnlineStep } from "./emit-online-softmax.ts";
import { dtypeBytes, dtypeInfo, halfOf, isBool } from "../../compiler/ir/dtype.ts";
import { SIMD_BINARY, WASM_MEMORY, isF32Value, laneOps } from "./dtypes.ts";
import { assertNever, bug } from "../../compiler/util/errors.ts";
import { I32, Op, Simd, V128, type DefinedFunc, type ValType } from "./encoder.ts";
import {
  bounds,
  constIndex,
  fromAtom,
  indexDataRefs,
  indexKey,
  indexVars,
  linearStride,
  predKey,
  substitute,
  substitutePred,
  type IndexExpr,
  type IndexVar,
} from "../../compiler/kernel/index-expr.ts";
import { emitIndex, type IndexEnv } from "./emit-index.ts";
import { emitAddress, emitEncodeHalf, emitRoundHalf, emitScalarExpr, pushConstant, type HelperFuncs, type ScalarCtx } from "./emit-scalar.ts";
import { emitVectorExpr, emitVectorStore, extractLane, LANES, splatOp, type VectorCtx } from "./emit-vector.ts";
import { FuncBuilder, valTypeOf, type BufferPlace, type Relocation } from "./func-builder.ts";

/** −inf's f32 bits as an ordered i32 (orderedMaxStep's identity): 0xff800000 ^ 0x7fffffff. */
const ORDERED_NEG_INF = 0xff800000 ^ 0x7fffffff;

export interface SectionOptions {
  /** Emit SIMD regions (default true); false gives the scalar lowering only. */
  readonly simd?: boolean;
  /**
   * Accumulate vector `reduce_sum`s of products with `f32x4.relaxed_madd` (default false: the
   * caller knows whether the engine has relaxed SIMD). FMA rounds once where mul + add rounds
   * twice, so results may differ in the last bit between engines and from the mul + add path.
   */
  readonly fma?: boolean;
}

/**
 * Loops that stop at a symbolic batch's rows (compiler/kernel/symbolic-bound.ts, rowBounds):
 * each named variable runs ceil(extent × n / max) iterations, n read from the size buffer at
 * `sizeAt` when the function starts. The split variable is not among them: the runner bounds it.
 */
export interface RowLimits {
  readonly sizeAt: number;
  readonly max: number;
  readonly vars: ReadonlyMap<string, number>;
}

export interface SectionFunc {
  readonly func: DefinedFunc;
  /** Iterations of the outermost real loop: the range callers split across threads (1 when none). */
  readonly splitExtent: number;
  /** A rough count of innermost iterations (decides whether threading pays). */
  readonly work: number;
  /**
   * LANES when the split loop itself runs four iterations per vector step (its remainder
   * scalar), else 1: threads' chunks must then start at multiples of it, or an iteration
   * would take the scalar path in one split and the vector path (relaxed_madd) in another.
   */
  readonly splitGrain: number;
  /** The memarg offsets in the body that hold buffer bases (FuncBuilder.memAt). */
  readonly relocations: readonly Relocation[];
  /** The function indices the body calls (helpers and host imports). */
  readonly calls: ReadonlySet<number>;
}

interface Region {
  readonly vecVar: string;
  varies(id: ExprId): boolean;
  readonly splats: Map<ExprId, number>;
  readonly needsSplat: Set<ExprId>;
  /** A step that may start anywhere (the overlapping last step): no lane-division loads. */
  readonly unaligned?: boolean;
}

/** Reduction loops of at most this many iterations are written out… */
const UNROLL_EXTENT = 4;
/** A register block with more accumulators than this is wide (block-contraction.ts's 6 × 8: 12). */
const WIDE_ACCUMULATORS = 8;
/** …up to this many copies of a reduction's body. */
const UNROLL_COPIES = 16;

const isReduce = isReduceExpr;

export function emitSection(
  s: Section,
  buffer: (id: number) => BufferPlace,
  helpers: HelperFuncs,
  name: string,
  opts: SectionOptions = {},
  rows?: RowLimits,
  /** A `form prologue` section's function: called as `(i, i + 1, tid)` at the start of each iteration i of the split loop. */
  prologueFunc?: number,
): SectionFunc {
  const exprs = s.exprs;
  // A section with 16-bit values takes the scalar lowering: f32 lanes over 16-bit memory (load
  // and convert, round per op) are not written yet.
  const hasHalf = exprs.some((e) => halfOf(e.dtype) !== undefined) || s.stores.some((st) => halfOf(buffer(st.buffer).dtype) !== undefined);
  const simd = opts.simd !== false && !hasHalf;
  const fusedMuls = simd && opts.fma === true ? fusableProducts(s) : new Set<ExprId>();
  const subtracted = simd ? subtractedNegations(s) : new Set<ExprId>();
  // Per reduction, the first store whose value is computed from it (a wide block stores its sums there first).
  // One walk for all stores, in order: an expression an earlier store reached has every
  // reduction under it assigned already, so a later store need not walk it again.
  const firstStoreOf = new Map<ExprId, Store>();
  const reached = new Set<ExprId>();
  for (const st of s.stores) {
    const walk = (id: ExprId): void => {
      if (reached.has(id)) return;
      reached.add(id);
      const e = exprs[id]!;
      if (e.op === "reduce_sum" || e.op === "reduce_max") firstStoreOf.set(id, st);
      if (!isReduceExpr(e)) for (const o of exprOperands(e)) walk(o);
    };
    walk(st.value);
  }
  const items = scheduleSection(s);
  const fb = new FuncBuilder(3);
  const LO = 0;
  const HI = 1;

  const free: Set<string>[] = [];
  exprs.forEach((e, id) => {
    const vs = exprOwnVars(e);
    for (const o of exprOperands(e)) for (const v of free[o]!) vs.add(v);
    if (isReduce(e)) for (const v of e.vars) vs.delete(v.name);
    free[id] = vs;
  });

  const realDomain = s.domain.filter((v) => v.extent > 1);
  const splitVar = realDomain[0];
  let splitGrain = 1;
  const innermostVar = realDomain[realDomain.length - 1];

  const varLocals = new Map<string, number>();
  const varLocal = (name: string): number => {
    let l = varLocals.get(name);
    if (l === undefined) {
      l = fb.local(I32);
      varLocals.set(name, l);
    }
    return l;
  };
  const scalarLocals = new Map<ExprId, number>();
  const vecLocals = new Map<ExprId, number>();
  const localFor = (map: Map<ExprId, number>, id: ExprId, type: ValType): number => {
    let l = map.get(id);
    if (l === undefined) {
      l = fb.local(type);
      map.set(id, l);
    }
    return l;
  };
  const scalarLocal = (id: ExprId): number => localFor(scalarLocals, id, valTypeOf(exprs[id]!.dtype));
  const vecLocal = (id: ExprId): number => localFor(vecLocals, id, V128);

  // Row limits: computed once, ceil(extent × n / max) (n ≤ max, so within the extent).
  const rowLimit = new Map<string, number>();
  for (const [v, extent] of rows?.vars ?? []) {
    if (v === splitVar?.name) continue;
    const l = fb.local(I32);
    fb.i32(0)
      .mem(Op.i32Load, 2, rows!.sizeAt)
      .i32(extent)
      .op(Op.i32Mul)
      .i32(rows!.max - 1)
      .op(Op.i32Add)
      .i32(rows!.max)
      .op(Op.i32DivS)
      .set(l);
    rowLimit.set(v, l);
  }
  /** Pushes a loop's limit: the row limit where it has one, else its extent. */
  const limitOf = (v: { name: string; extent: number }): (() => void) => {
    const l = rowLimit.get(v.name);
    return l === undefined ? () => void fb.i32(v.extent) : () => void fb.get(l);
  };

  let region: Region | undefined;
  const reuse = simd ? planRowReuse(s, free, buffer, splitVar?.name, innermostVar, rowLimit) : undefined;
  /** Set once the reduction has stored its body into the output row (its code comes first). */
  let reuseStored = false;

  /**
   * Inside a register block's k loop: a running byte address per group of loads that differ
   * only in their constant term (a left operand's rows, a panel's two vectors), advanced by
   * the group's stride each step, so a step's loads cost no index arithmetic.
   */
  let pointers: { readonly k: string; readonly groups: Map<string, { readonly local: number; readonly step: number }> } | undefined;
  const pointerKey = (index: IndexExpr, k: string, bytes: number): { key: string; rest: IndexExpr; step: number } | undefined => {
    const stride = linearStride(index, k);
    if (stride === undefined || stride <= 0 || index.constant < 0 || indexDataRefs(index).size > 0) return undefined;
    const rest = { ...substitute(index, new Map([[k, constIndex(0)]])), constant: 0 };
    if (bounds(rest)[0] < 0) return undefined;
    return { key: `${indexKey(rest)}|${bytes}`, rest, step: stride * bytes };
  };
  /**
   * The address groups of a reduction's loads along k (keyed by everything but k and the
   * constant), or undefined unless every use of k is an unmasked load from one lane-0 address.
   */
  const addressGroups = (
    item: Extract<ScheduleItem, { kind: "reduce" }>,
    k: string,
  ): Map<string, { rest: IndexExpr; step: number; bytes: number }> | undefined => {
    const groups = new Map<string, { rest: IndexExpr; step: number; bytes: number }>();
    for (const it of item.body) {
      if (it.kind !== "expr") return undefined;
      const e = exprs[it.id]!;
      if (!exprOwnVars(e).has(k)) continue;
      if (e.op !== "load" || e.valid === false || e.valid.length > 0) return undefined;
      const place = buffer(e.buffer);
      // a load the region computes lane by lane would read k from its (unmaintained) local
      if (region?.varies(it.id) && (place.dtype !== e.dtype || (e.dtype !== "f32" && e.dtype !== "i32") || (linearStride(e.index, region.vecVar) ?? -1) < 0))
        return undefined;
      const bytes = dtypeBytes(place.dtype);
      const p = pointerKey(e.index, k, bytes);
      if (!p || (groups.has(p.key) && groups.get(p.key)!.step !== p.step)) return undefined;
      groups.set(p.key, { rest: p.rest, step: p.step, bytes });
    }
    return groups.size > 0 ? groups : undefined;
  };
  const pointerAddress = (index: IndexExpr, bytes: number): number | undefined => {
    if (!pointers || !indexVars(index).has(pointers.k)) return undefined;
    const p = pointerKey(index, pointers.k, bytes);
    const group = p && pointers.groups.get(p.key);
    if (!group || group.step !== p!.step) return undefined;
    fb.get(group.local);
    return index.constant * bytes;
  };

  // One environment per lane for the whole section (its functions read `region` when called):
  // made per address emitted, the object and its closures were the render's largest self time.
  const envs: IndexEnv[] = [];
  const laneEnv = (lane: number): IndexEnv => {
    const pushVar = (name: string): void => {
      fb.get(varLocal(name));
      if (lane > 0 && region?.vecVar === name) fb.i32(lane).op(Op.i32Add);
    };
    const pushData = (ref: ExprId): void => {
      if (region?.varies(ref)) extractLane({ fb }, vecLocals.get(ref) ?? bug(`wasm: vector ${ref} not computed`), "i32", lane);
      else fb.get(scalarLocals.get(ref) ?? bug(`wasm: scalar ${ref} not computed`));
    };
    return lane === 0 ? { address: pointerAddress, pushVar, pushData } : { pushVar, pushData };
  };
  const env = (lane: number): IndexEnv => (envs[lane] ??= laneEnv(lane));
  const pushScalar = (id: ExprId): void => void fb.get(scalarLocals.get(id) ?? bug(`wasm: scalar ${id} not computed in ${name}`));
  let scalarCtxOnce: ScalarCtx | undefined;
  const scalarCtx = (): ScalarCtx => (scalarCtxOnce ??= { fb, exprs, helpers, buffer, push: pushScalar, env: env(0) });
  // One vector context per region (a Region is never changed: an unaligned one is a copy), not one per expression and store emitted.
  const vectorCtxs = new Map<Region, VectorCtx>();
  const vectorCtx = (r: Region): VectorCtx => {
    let ctx = vectorCtxs.get(r);
    if (!ctx) vectorCtxs.set(r, (ctx = makeVectorCtx(r)));
    return ctx;
  };
  const makeVectorCtx = (r: Region): VectorCtx => ({
    fb,
    exprs,
    helpers,
    buffer,
    env: env(0),
    vecVar: r.vecVar,
    laneAligned: r.vecVar !== splitVar?.name && r.unaligned !== true,
    fma: opts.fma === true,
    subtracted,
    varies: r.varies,
    laneEnv: env,
    pushVec: (id) => {
      if (r.varies(id)) return void fb.get(vecLocals.get(id) ?? bug(`wasm: vector ${id} not computed in ${name}`));
      const splat = r.splats.get(id);
      if (splat !== undefined) fb.get(splat);
      else pushScalar(id), fb.simd(splatOp(exprs[id]!.dtype));
    },
    pushLane: (id, lane) => (r.varies(id) ? extractLane({ fb }, vecLocals.get(id)!, exprs[id]!.dtype, lane) : pushScalar(id)),
  });

  const splatInto = (r: Region, id: ExprId): void => {
    const l = fb.local(V128);
    pushScalar(id);
    fb.simd(splatOp(exprs[id]!.dtype)).set(l);
    r.splats.set(id, l);
  };

  /** Expressions computed inside `body` (including reductions and their bodies). */
  const placedIn = (body: readonly ScheduleItem[], into = new Set<ExprId>()): Set<ExprId> => {
    for (const it of body) {
      if (it.kind === "expr") into.add(it.id);
      else if (it.kind === "reduce") {
        it.reduces.forEach((r) => into.add(r));
        placedIn(it.body, into);
      } else if (it.kind === "loop") placedIn(it.body, into);
    }
    return into;
  };
  const storesIn = (body: readonly ScheduleItem[], into: ExprId[] = []): ExprId[] => {
    for (const it of body) {
      if (it.kind === "store") into.push(it.value);
      else if (it.kind === "loop" || it.kind === "reduce") storesIn(it.body, into);
    }
    return into;
  };

  /** Opens a vector region over `vecVar` for `body`: splats of values computed outside it. */
  const openRegion = (vecVar: string, body: readonly ScheduleItem[], extra: readonly ExprId[] = []): Region => {
    const varies = (id: ExprId): boolean => free[id]!.has(vecVar);
    const inside = placedIn(body);
    const needsSplat = new Set<ExprId>();
    for (const id of inside) if (varies(id)) for (const o of exprOperands(exprs[id]!)) if (!varies(o)) needsSplat.add(o);
    for (const v of [...storesIn(body), ...extra]) if (!varies(v)) needsSplat.add(v);
    const r: Region = { vecVar, varies, splats: new Map(), needsSplat };
    for (const id of needsSplat) if (!inside.has(id) && scalarLocals.has(id)) splatInto(r, id);
    return r;
  };

  /**
   * Within one step of a SIMD region holding two or more reductions: each vector value by its
   * structure (loads and lane-wise ops, the written-out reduction variables' values put in),
   * so a later written-out reduction reuses what an earlier one computed — a max-pool's count
   * of the window's maxima re-reads the window the max read. Cleared by a store; off inside a
   * reduction that loops (its values change per iteration).
   */
  let memo: Map<string, number> | undefined;
  /** The written-out reduction variables' values where the body is being emitted. */
  const unrolledAt = new Map<string, number>();
  const memoKey = (id: ExprId): string | undefined => {
    const e = exprs[id]!;
    if (!region?.varies(id)) return [...free[id]!].some((v) => unrolledAt.has(v)) ? undefined : `s${id}`;
    const at = (): Map<string, IndexExpr> => new Map([...unrolledAt].map(([n, v]) => [n, constIndex(v)]));
    const ops = (...xs: ExprId[]): string | undefined => {
      const keys = xs.map(memoKey);
      return keys.some((x) => x === undefined) ? undefined : `${e.op}|${e.dtype}|${keys.join("|")}`;
    };
    switch (e.op) {
      case "load":
        if (e.valid === false || exprOperands(e).length > 0) return undefined;
        return `load|${e.dtype}|${e.buffer}|${indexKey(substitute(e.index, at()))}|${predKey(substitutePred(e.valid, at()))}`;
      case "where":
        return ops(e.cond, e.x, e.y);
      case "const":
      case "index":
      case "valid":
      case "rng":
      case "reduce_sum":
      case "reduce_max":
      case "softmax_sum":
      case "softmax_max":
      case "softmax_norm":
        return undefined;
      default:
        return "y" in e ? ops(e.x, e.y) : ops(e.x);
    }
  };
  /** Runs `f` (a reduction that loops) with the memo off. */
  const withoutMemo = (f: () => void): void => {
    const saved = memo;
    memo = undefined;
    f();
    memo = saved;
  };
  /** Emits one step of a SIMD region's body, with a memo where it holds two or more reductions. */
  const regionStep = (body: readonly ScheduleItem[]): void => {
    const saved = memo;
    memo = body.filter((it) => it.kind === "reduce").length >= 2 ? new Map() : undefined;
    emitItems(body);
    memo = saved;
  };

  const emitExprItem = (id: ExprId): void => {
    const e = exprs[id]!;
    if (region?.varies(id) && fusedMuls.has(id)) return; // computed by the reduction's relaxed_madd
    if (region?.varies(id) && subtracted.has(id)) return; // its add is an f32x4.sub of its operand
    if (reuse && reuseStored && id === reuse.elem && region?.vecVar === reuse.colVar) {
      // this element's value is in the output already, stored by the row's reduction
      const offset = emitAddress({ fb, env: env(0) }, reuse.store.index, 4);
      fb.simdMemAt(Simd.v128Load, 2, buffer(reuse.store.buffer), offset).set(vecLocal(id));
      return;
    }
    if (region?.varies(id)) {
      const key = memo && memoKey(id);
      const seen = key === undefined ? undefined : memo!.get(key);
      if (seen !== undefined) {
        fb.get(seen).set(vecLocal(id));
        return;
      }
      emitVectorExpr(vectorCtx(region), e);
      fb.set(vecLocal(id));
      if (key !== undefined) {
        const l = fb.local(V128);
        fb.get(vecLocal(id)).set(l);
        memo!.set(key, l);
      }
      return;
    }
    if (region?.needsSplat.has(id) && e.op === "load" && e.valid !== false && e.valid.length === 0 && !isBool(e.dtype)) {
      // Load straight into all four lanes (a matmul's left operand); lane 0 is the scalar.
      const place = buffer(e.buffer);
      const splat = fb.local(V128);
      const offset = emitAddress({ fb, env: env(0) }, e.index, 4);
      fb.simdMemAt(Simd.v128Load32Splat, 2, place, offset).tee(splat);
      fb.simdLane(laneOps(e.dtype).extract, 0).set(scalarLocal(id));
      region.splats.set(id, splat);
      return;
    }
    emitScalarExpr(scalarCtx(), e);
    fb.set(scalarLocal(id));
    if (region?.needsSplat.has(id)) splatInto(region, id);
  };

  const emitStore = (item: Extract<ScheduleItem, { kind: "store" }>): void => {
    memo?.clear();
    if (region) return emitVectorStore(vectorCtx(region), item.buffer, item.index, item.value);
    const place = buffer(item.buffer);
    const offset = emitAddress({ fb, env: env(0) }, item.index, dtypeBytes(place.dtype));
    pushScalar(item.value);
    emitEncodeHalf(fb, helpers, place.dtype);
    fb.memAt(WASM_MEMORY[place.dtype].store, WASM_MEMORY[place.dtype].align, place, offset);
  };

  const loopBounds = (name: string, extent: number): [() => void, () => void] =>
    name === splitVar?.name ? [() => fb.get(LO), () => fb.get(HI)] : [() => fb.i32(0), limitOf({ name, extent })];

  const emitLoop = (item: Extract<ScheduleItem, { kind: "loop" }>): void => {
    const v = item.v;
    if (v.extent === 1) return emitItems(item.body);
    const [start, limit] = loopBounds(v.name, v.extent);
    const vl = varLocal(v.name);
    if (prologueFunc !== undefined && v === splitVar) {
      // The prologue (a column-panel pack, compiler/kernel/panel-prologue.ts) over this iteration, then the iteration.
      if (v === innermostVar) bug(`wasm: ${name}'s prologue needs a split loop outside its innermost one`);
      start();
      fb.forLoop(vl, limit, 1, () => {
        fb.get(vl).get(vl).i32(1).op(Op.i32Add).get(2).call(prologueFunc);
        emitItems(item.body);
      });
      return;
    }
    const contiguous = s.stores.every((st) => linearStride(st.index, v.name) === 1);
    // An online softmax's rows stay scalar: its key loop is no lane-wise expression. (A fused
    // attention backward's rows, plain reductions, run four per f32x4.)
    if (
      !simd ||
      region ||
      s.exprs.some((e) => e.op === "softmax_sum") ||
      v !== innermostVar ||
      v.extent < LANES ||
      !(contiguous || vectorPaysWithScatter(s, v)) ||
      rowReductionsInside(item)
    ) {
      start();
      fb.forLoop(vl, limit, 1, () => emitItems(item.body));
      return;
    }
    const r = openRegion(v.name, item.body);
    region = r;
    if (v === splitVar) splitGrain = LANES;
    if (v.extent === LANES && v !== splitVar && !rowLimit.has(v.name)) {
      fb.i32(0).set(vl);
      regionStep(item.body);
      region = undefined;
      return;
    }
    start();
    fb.forLoop(vl, limit, LANES, () => regionStep(item.body), LANES);
    if (overlapsTail(v)) {
      // the last four elements again as one more vector step (those before the remainder
      // computed twice, to the same values) instead of a scalar loop over the remainder
      fb.i32(v.extent - LANES).set(vl);
      region = { ...r, unaligned: true };
      regionStep(item.body);
      region = undefined;
      return;
    }
    region = undefined;
    fb.get(vl);
    fb.forLoop(vl, limit, 1, () => emitItems(item.body));
  };

  /**
   * Whether region A over `v` ends with an overlapping vector step instead of a scalar
   * remainder: an extent past 4 and not a multiple of it (a 14-wide row: 3 steps + 2 scalar
   * iterations become 4 steps, a 7-wide one 1 + 3 become 2), where a step may run twice over
   * an element: a loop threads do not split (a chunk's last step would write its neighbour's
   * elements), of fixed extent, every store along v (an element's own), and no buffer read at
   * the address of one written (an in-place update would read its own new values).
   */
  const overlapsTail = (v: IndexVar): boolean => {
    if (v === splitVar || rowLimit.has(v.name) || v.extent <= LANES || v.extent % LANES === 0 || reuse !== undefined) return false;
    if (!s.stores.every((st) => (linearStride(st.index, v.name) ?? 0) >= 1)) return false;
    const written = new Set(s.stores.map((st) => buffer(st.buffer).base));
    return !exprs.some((e) => e.op === "load" && written.has(buffer(e.buffer).base));
  };

  /**
   * Whether `loop` holds a reduction that streams along its own variable but not along the
   * loop's (row sums/max of a row-major matrix): region B over the reduction then beats four
   * strided gathers per step of region A over the loop.
   */
  const rowReductionsInside = (loop: Extract<ScheduleItem, { kind: "loop" }>): boolean =>
    loop.body.some((it) => {
      if (it.kind !== "reduce") return false;
      const vars = it.vars.filter((v) => v.extent > 1);
      if (!reduceVectorizable(it, vars)) return false;
      return it.body.every((b) => {
        const e = exprs[(b as { id: ExprId }).id]!;
        return e.op !== "load" || linearStride(e.index, loop.v.name) !== 1;
      });
    });

  const identity = (e: KExpr, vector: boolean): void => {
    // bool max is or: its identity is 0 (false), the dtype's lowest value
    pushConstant(fb, e.op === "reduce_sum" ? 0 : dtypeInfo(e.dtype).lowest, e.dtype);
    if (vector) fb.simd(splatOp(e.dtype));
  };

  const scalarStep = (e: KExpr, acc: number, pushBody: () => void): void => {
    fb.get(acc);
    pushBody();
    if (isBool(e.dtype)) fb.op(Op.i32Or);
    else if (e.op === "reduce_sum") fb.op(isF32Value(e.dtype) ? Op.f32Add : Op.i32Add);
    else if (isF32Value(e.dtype)) fb.op(Op.f32Max);
    else {
      const t = fb.local(I32);
      fb.set(t).get(t).get(acc).get(t).op(Op.i32GtS).op(Op.select); // acc > t ? acc : t
    }
    fb.set(acc);
  };

  // SIMD_BINARY's add/max: bool's are v128.or, like a scalar bool reduce
  const vectorStepOp = (e: KExpr): number => SIMD_BINARY[e.dtype][e.op === "reduce_sum" ? "add" : "max"];

  /** acc = acc ⊕ body over four lanes; a fused product becomes one relaxed_madd. */
  const vectorStep = (r: Region, e: Extract<KExpr, { op: "reduce_sum" | "reduce_max" }>, acc: number): void => {
    const vc = vectorCtx(r);
    const body = exprs[e.body]!;
    if (fusedMuls.has(e.body) && r.varies(e.body) && body.op === "mul") {
      vc.pushVec(body.x);
      vc.pushVec(body.y);
      fb.get(acc).simd(Simd.f32x4RelaxedMadd).set(acc);
      return;
    }
    fb.get(acc);
    vc.pushVec(e.body);
    fb.simd(vectorStepOp(e)).set(acc);
  };

  /** Pushes the f32x4 bits in `t` mapped to i32s in the same order: x ^ ((x >> 31) & 0x7fffffff) (−0 below +0). */
  const pushOrdered = (t: number): void => {
    fb.get(t).i32(31).simd(Simd.i32x4ShrS).i32(0x7fffffff).simd(Simd.i32x4Splat).simd(Simd.v128And).get(t).simd(Simd.v128Xor);
  };

  /**
   * acc = max(acc, body) for an f32 max over a row (region B): on the bits mapped to ordered
   * i32s, one i32x4.max_s, where f32x4.max (NaN-propagating, −0 < +0) is eight instructions in
   * V8 on x64 with a long dependency chain — softmax's max pass of a 4096×1024 input went from
   * 1.03 to ~0.6 ms. NaNs (whose mapped order depends on their sign) are collected apart, in
   * `nan`, so the result is f32.max's exactly, ±0 included.
   */
  const orderedMaxStep = (r: Region, e: KExpr & { readonly body: ExprId }, acc: number, nan: number, t: number): void => {
    vectorCtx(r).pushVec(e.body);
    fb.set(t).get(acc);
    pushOrdered(t);
    fb.simd(Simd.i32x4MaxS).set(acc);
    fb.get(nan).get(t).get(t).simd(Simd.f32x4Ne).simd(Simd.v128Or).set(nan);
  };

  const nestLoops = (vars: readonly { name: string; extent: number }[], body: () => void): void => {
    if (vars.length === 0) return body();
    const [v, ...rest] = vars;
    fb.i32(0);
    fb.forLoop(varLocal(v!.name), limitOf(v!), 1, () => nestLoops(rest, body));
  };

  /**
   * A loop of a reduction over one variable whose steps outside a range add nothing (a causal
   * mask: compiler/kernel/key-range.ts), from max(0, lo) to min(limit, hi); in a vector region
   * the range of all four lanes (the bounds are affine: their extremes at lanes 0 and 3).
   * False where there is no such range (the caller loops over the whole extent).
   */
  const rangedLoop = (vars: readonly IndexVar[], members: readonly ExprId[], body: () => void): boolean => {
    const range = reduceRange(s, vars, members);
    if (!range) return false;
    const v = range.v;
    /** Pushes the smaller (`op` i32LtS) or larger (i32GtS) of the two i32 values in locals a and b. */
    const pick = (a: number, b: number, op: typeof Op.i32LtS | typeof Op.i32GtS): void => void fb.get(a).get(b).get(a).get(b).op(op).op(Op.select);
    /** Pushes x's bound over the lanes (op i32GtS: the largest) clamped by `clamp` (the other way). */
    const bound = (x: IndexExpr, op: typeof Op.i32LtS | typeof Op.i32GtS, clamp: () => void): void => {
      const [t, u] = [fb.local(I32), fb.local(I32)];
      emitIndex(fb, x, env(0));
      fb.set(t);
      if (region) {
        emitIndex(fb, x, env(LANES - 1));
        fb.set(u);
        pick(t, u, op);
        fb.set(t);
      }
      clamp();
      fb.set(u);
      pick(t, u, op === Op.i32GtS ? Op.i32LtS : Op.i32GtS);
    };
    const limit = fb.local(I32);
    if (range.hi) bound(range.hi, Op.i32GtS, limitOf(v));
    else limitOf(v)();
    fb.set(limit);
    if (range.lo) bound(range.lo, Op.i32LtS, () => void fb.i32(0));
    else fb.i32(0);
    fb.forLoop(varLocal(v.name), () => void fb.get(limit), 1, body);
    return true;
  };

  /**
   * nestLoops with loops of at most UNROLL_EXTENT iterations written out (up to UNROLL_COPIES
   * copies of the body in all): a 2×2 pool window or a 3-tap overlap-add costs more in loop
   * control than in its body.
   */
  const unrolledLoops = (vars: readonly { name: string; extent: number }[], body: () => void, copies = 1): void => {
    if (vars.length === 0) return body();
    const [v, ...rest] = vars;
    if (v!.extent <= UNROLL_EXTENT && copies * v!.extent <= UNROLL_COPIES && !rowLimit.has(v!.name)) {
      for (let i = 0; i < v!.extent; i++) {
        fb.i32(i).set(varLocal(v!.name));
        unrolledAt.set(v!.name, i);
        unrolledLoops(rest, body, copies * v!.extent);
      }
      unrolledAt.delete(v!.name);
      return;
    }
    withoutMemo(() => {
      fb.i32(0);
      fb.forLoop(varLocal(v!.name), limitOf(v!), 1, () => unrolledLoops(rest, body, copies));
    });
  };

  const emitReduce = (item: Extract<ScheduleItem, { kind: "reduce" }>): void => {
    const groups = softmaxGroups(s, item.reduces);
    if (groups.size > 0) return emitSoftmaxSums(item, groups);
    const members = item.reduces.map((id) => ({ id, e: exprs[id]! as Extract<KExpr, { op: "reduce_sum" | "reduce_max" }> }));
    const loopVars = item.vars.filter((v) => v.extent > 1);
    if (simd && !region && reduceVectorizable(item, loopVars)) return emitReduceVectorized(item, loopVars, members);
    const accs = members.map(({ id, e }) => {
      const vector = region?.varies(id) ?? false;
      const acc = vector ? vecLocal(id) : scalarLocal(id);
      identity(e, vector);
      fb.set(acc);
      return { id, e, acc, vector };
    });
    const kv = loopVars.length === 1 ? loopVars[0]! : undefined;
    const running = kv && region && accs.length >= 4 && accs.every((a) => a.vector) && kv.extent > UNROLL_EXTENT ? addressGroups(item, kv.name) : undefined;
    const step = (): void => {
      if (running && accs.length > WIDE_ACCUMULATORS) return interleavedStep(item, accs);
      emitItems(item.body);
      for (const a of accs) {
        if (a.vector) vectorStep(region!, a.e, a.acc);
        else scalarStep(a.e, a.acc, () => pushScalar(a.e.body));
      }
    };
    if (memo && (running || (loopVars.length === 1 && loopVars[0]!.extent > UNROLL_EXTENT))) {
      // a loop over k (a register block's, or a ranged one): its values change per iteration
      withoutMemo(() => emitReduceLoop(item, kv, running, step));
    } else emitReduceLoop(item, kv, running, step);
    if (running && accs.length > WIDE_ACCUMULATORS) {
      // A wide block's sums are first stored as they are, each where the output it feeds will
      // go, then used: when the first use of a sum after the k loop was an expression (a bias
      // add), V8 scheduled all of a step's loads above its FMAs and spilled accumulators (a
      // GEMM + bias, 6 × 8 block, 256 steps of k: 26.5 GFLOP/s against 56 with the stores, one
      // thread; a store as first use, a plain matmul's, kept the good order). The epilogue's
      // store then writes over it; block-contraction's wideRows makes sure the section reads no
      // buffer it stores. (A write to a v128 global nothing reads did the same for V8's
      // schedule; the store needs no module-level state.)
      for (const a of accs) {
        const st = firstStoreOf.get(a.id);
        if (st && buffer(st.buffer).dtype === "f32") emitVectorStore(vectorCtx(region!), st.buffer, st.index, a.id);
      }
    }
    // A 16-bit sum accumulates in f32 and rounds once (max picks one of its 16-bit operands).
    for (const a of accs)
      if (!a.vector && a.e.op === "reduce_sum" && halfOf(a.e.dtype) !== undefined) {
        fb.get(a.acc);
        emitRoundHalf(fb, helpers, a.e.dtype);
        fb.set(a.acc);
      }
    if (region) for (const a of accs) if (!a.vector && region.needsSplat.has(a.id)) splatInto(region, a.id);
  };

  /**
   * `list` with the expressions just before a wide register block's reduction (more than
   * WIDE_ACCUMULATORS members) that the reduction does not read moved to just after it: an epilogue's loads (a ReLU
   * gradient's pre-activation and bias, read per output) computed before the k loop stay live
   * across it, and a 6 × 8 block has no vector register to spare (the MLP step's hidden
   * gradient spilled in its k loop: 1.46 -> 2.89 ms). Expressions are pure and no store lies
   * between them and the reduction, so moving them past its loop changes no value.
   */
  const deferPastBlocks = (list: readonly ScheduleItem[]): readonly ScheduleItem[] => {
    if (!list.some((it) => it.kind === "reduce" && it.reduces.length > WIDE_ACCUMULATORS)) return list;
    const out: ScheduleItem[] = [];
    for (const item of list) {
      if (item.kind !== "reduce" || item.reduces.length <= WIDE_ACCUMULATORS) {
        out.push(item);
        continue;
      }
      const needed = new Set<ExprId>();
      const need = (id: ExprId): void => {
        if (needed.has(id)) return;
        needed.add(id);
        for (const o of exprOperands(exprs[id]!)) need(o);
      };
      const visit = (items: readonly ScheduleItem[]): void => {
        for (const it of items) {
          if (it.kind === "expr") need(it.id);
          else if (it.kind === "store") need(it.value);
          else visit(it.body);
        }
      };
      visit(item.body);
      for (const id of item.reduces) for (const o of exprOperands(exprs[id]!)) need(o);
      let start = out.length;
      while (start > 0 && out[start - 1]!.kind === "expr") start--;
      const before = out.splice(start);
      out.push(...before.filter((it) => needed.has((it as Extract<ScheduleItem, { kind: "expr" }>).id)), item);
      out.push(...before.filter((it) => !needed.has((it as Extract<ScheduleItem, { kind: "expr" }>).id)));
    }
    return out;
  };

  /**
   * One step of a register block's k loop (every body item an expression: addressGroups), each
   * accumulator's operands loaded just before its update rather than all loads first: V8 keeps
   * the wasm order of loads, so a 6 × 8 block loading its six splats and two panel vectors up
   * front holds 20 vectors live (12 accumulators + 8) and spills, where loading each row's
   * splat before its two updates needs 15 (12 + the two panel vectors + one splat), which fit
   * x64's 16 vector registers beside V8's scratch register.
   */
  const interleavedStep = (
    item: Extract<ScheduleItem, { kind: "reduce" }>,
    accs: readonly { readonly e: Extract<KExpr, { op: "reduce_sum" | "reduce_max" }>; readonly acc: number }[],
  ): void => {
    const inBody = new Set(item.body.map((it) => (it.kind === "expr" ? it.id : bug(`wasm: register block step holds a ${it.kind}`))));
    const emitted = new Set<ExprId>();
    const need = (id: ExprId, into: Set<ExprId>): void => {
      if (!inBody.has(id) || emitted.has(id) || into.has(id)) return;
      into.add(id);
      for (const o of exprOperands(exprs[id]!)) need(o, into);
    };
    for (const a of accs) {
      const wanted = new Set<ExprId>();
      need(a.e.body, wanted);
      // in body order (operands first), as emitItems would have emitted them
      emitItems(item.body.filter((it) => it.kind === "expr" && wanted.has(it.id)));
      for (const id of wanted) emitted.add(id);
      vectorStep(region!, a.e, a.acc);
    }
    emitItems(item.body.filter((it) => it.kind === "expr" && !emitted.has(it.id)));
  };

  /** A reduction's loops around `step`: running addresses along k, a ranged loop, or loops written out where short. */
  const emitReduceLoop = (
    item: Extract<ScheduleItem, { kind: "reduce" }>,
    kv: IndexVar | undefined,
    running: ReturnType<typeof addressGroups>,
    step: () => void,
  ): void => {
    const loopVars = item.vars.filter((v) => v.extent > 1);
    if (kv && running) {
      // A register block's k loop: running addresses instead of index arithmetic per load,
      // and the loop runs until the first of them reaches its end (no counter of k).
      const locals = [...running.values()].map((g) => {
        const local = fb.local(I32);
        emitIndex(fb, g.rest, env(0));
        if (g.bytes > 1) fb.i32(Math.log2(g.bytes)).op(Op.i32Shl);
        fb.set(local);
        return { local, step: g.step };
      });
      const lead = locals[0]!;
      const end = fb.local(I32);
      limitOf(kv)();
      fb.i32(lead.step).op(Op.i32Mul).get(lead.local).op(Op.i32Add).set(end);
      // A wide block's loop is tested at the bottom (a row limit may leave no step: the block's
      // test skips the loop), and its body opens with an empty loop: V8's TurboFan (Node 20) unrolls a small innermost
      // loop nested in two others (twice for a 4 × 8 or 6 × 8 block) and, in the unrolled body,
      // hoisted the second step's loads above the first step's FMAs: a 6 × 8 block spilled
      // accumulators and ran at half speed. A loop holding a loop is not innermost, so it stays
      // rolled; the empty one costs a stack check per step and splits no block the FMAs share
      // with their loads (placed at the end instead, it did: every load went above every FMA).
      // (A 4 × 8 block, 14 vectors with every load first, keeps its top-tested loop: unrolled,
      // it did not spill, and the transformer step's GEMMs with a GELU epilogue ran 3–12 %
      // slower in this form.)
      const wide = item.reduces.length > WIDE_ACCUMULATORS;
      fb.open(Op.block);
      if (!wide) fb.open(Op.loop);
      fb.get(lead.local)
        .get(end)
        .op(Op.i32GeU)
        .brIf(wide ? 0 : 1);
      if (wide) fb.open(Op.loop).open(Op.loop).end();
      pointers = { k: kv.name, groups: new Map([...running.keys()].map((key, i) => [key, locals[i]!])) };
      step();
      pointers = undefined;
      for (const g of locals) fb.get(g.local).i32(g.step).op(Op.i32Add).set(g.local);
      if (wide) fb.get(lead.local).get(end).op(Op.i32LtU).brIf(0);
      else fb.br(0);
      fb.end().end();
    } else if (!(loopVars.length === 1 && loopVars[0]!.extent > UNROLL_EXTENT && rangedLoop(loopVars, item.reduces, step))) unrolledLoops(loopVars, step);
  };

  /** A key loop of softmax_sums (lowering never groups them with other reductions): scalar, online. */
  const emitSoftmaxSums = (item: Extract<ScheduleItem, { kind: "reduce" }>, groups: Map<ExprId, ExprId[]>): void => {
    if (region) return emitOnlineInRegion(item, groups, region);
    if (groups.size === 0 || [...groups.values()].flat().length !== item.reduces.length) bug(`wasm: softmax_sum mixed with other reductions in ${name}`);
    const runs = simd ? valueRuns(s, groups) : [];
    // Value loads read only through a vector run are loaded as one v128 there, not one by one here.
    const viaRuns = new Set(runs.flatMap((r) => r.members.map((m) => (exprs[m] as Extract<KExpr, { op: "softmax_sum" }>).value)));
    for (const [id, e] of exprs.entries())
      for (const o of exprOperands(e)) if (viaRuns.has(o) && !(e.op === "softmax_sum" && runs.some((r) => r.members.includes(id)))) viaRuns.delete(o);
    for (const st of s.stores) viaRuns.delete(st.value);
    const vectorLoad = (load: Extract<KExpr, { op: "load" }>): void => {
      const offset = emitAddress({ fb, env: env(0) }, load.index, 4);
      fb.simdMemAt(Simd.v128Load, 2, buffer(load.buffer), offset);
    };
    const online = onlineSoftmax(fb, helpers, exprs, groups, pushScalar, scalarLocal, runs, vectorLoad, simd && opts.fma === true);
    online.init();
    const keyStep = (): void => {
      emitItems(item.body.filter((it) => !(it.kind === "expr" && viaRuns.has(it.id))));
      online.step();
    };
    if (!rangedLoop(item.vars, item.reduces, keyStep))
      nestLoops(
        item.vars.filter((v) => v.extent > 1),
        keyStep,
      );
    online.finish();
  };

  /**
   * An online softmax over the keys for four points at once (the lanes of a region: a fused
   * attention backward's four query rows computing their statistics in one pass): per group a
   * running max and sum per lane, as emit-online-softmax.ts does per row — a key that raises
   * some lane's max rescales (those lanes), every key adds 2^((s − m)·log2 e) lane-wise. Only
   * softmax_max and softmax_norm reach it: emitLoop opens no region in a section holding a
   * softmax_sum (its rows run in lanes in emit-online-softmax.ts instead), so there is no
   * weighted sum to rescale here.
   */
  const emitOnlineInRegion = (item: Extract<ScheduleItem, { kind: "reduce" }>, groups: Map<ExprId, ExprId[]>, r: Region): void => {
    if ([...groups.values()].flat().length !== item.reduces.length) bug(`wasm: softmax reductions mixed with other reductions in ${name}`);
    const vc = vectorCtx(r);
    const state = [...groups].map(([score, members]) => {
      if (!r.varies(score)) bug(`wasm: an online softmax in ${name} whose score is the same in every lane`);
      for (const m of members) {
        if (exprs[m]!.op === "softmax_sum") bug(`wasm: softmax_sum %${m} of ${name} in a vector region`);
        if (!r.varies(m)) bug(`wasm: online reduction %${m} of ${name} does not vary per lane`);
      }
      const g = { score, members, m: fb.local(V128), l: fb.local(V128) };
      fb.f32(-Infinity).simd(Simd.f32x4Splat).set(g.m);
      fb.v128Zero().set(g.l);
      return g;
    });
    const keyStep = (): void => {
      emitItems(item.body);
      for (const g of state) {
        const sv = fb.local(V128);
        vc.pushVec(g.score);
        fb.set(sv);
        vectorOnlineStep(fb, helpers, sv, g.m, g.l, () => undefined);
      }
    };
    if (!rangedLoop(item.vars, item.reduces, keyStep))
      nestLoops(
        item.vars.filter((v) => v.extent > 1),
        keyStep,
      );
    for (const g of state)
      for (const m of g.members) {
        const op = exprs[m]!.op;
        if (op === "softmax_max") fb.get(g.m).set(vecLocal(m));
        else fb.get(g.l).set(vecLocal(m));
      }
  };

  const reduceVectorizable = (item: Extract<ScheduleItem, { kind: "reduce" }>, loopVars: readonly { name: string; extent: number }[]): boolean => {
    const last = loopVars[loopVars.length - 1];
    if (!last || last.extent < 2 * LANES) return false;
    if (item.body.some((it) => it.kind !== "expr")) return false;
    if (item.reduces.some((id) => isBool(exprs[id]!.dtype))) return false;
    // Worth it only when some load streams along the variable.
    return item.body.some((it) => {
      const e = exprs[(it as { id: ExprId }).id]!;
      return e.op === "load" && linearStride(e.index, last.name) === 1;
    });
  };

  const emitReduceVectorized = (
    item: Extract<ScheduleItem, { kind: "reduce" }>,
    loopVars: readonly { name: string; extent: number }[],
    members: readonly { id: ExprId; e: Extract<KExpr, { op: "reduce_sum" | "reduce_max" }> }[],
  ): void => {
    const last = loopVars[loopVars.length - 1]!;
    const r = openRegion(
      last.name,
      item.body,
      members.map((m) => m.e.body),
    );
    // `unroll` independent vector accumulators per member: a single one would serialize every
    // step on the add/max latency (f32x4.max, NaN-propagating, is several instructions). About 8
    // chains in all keep the adds busy: the dot form's 4 × 2 block has 8 members, one
    // accumulator each (four each spilled 32 accumulators out of V8's 16 vector registers:
    // the MLP's logits GEMM 0.12 -> 0.05 ms, the MNIST CNN step 68.5 -> 62.7 ms, one thread, CPU).
    const unroll = Math.min(last.extent >= 8 * LANES ? 4 : 2, Math.max(1, Math.floor(8 / members.length)));
    const accs = members.map(({ id, e }) => {
      const ordered = e.op === "reduce_max" && e.dtype === "f32";
      const vaccs = Array.from({ length: unroll }, () => {
        const l = fb.local(V128);
        if (ordered) fb.i32(ORDERED_NEG_INF).simd(Simd.i32x4Splat);
        else identity(e, true);
        fb.set(l);
        return l;
      });
      const sacc = scalarLocal(id);
      identity(e, false);
      fb.set(sacc);
      // An f32 max runs on ordered integers (orderedMaxStep); `nan` collects the lanes that saw a NaN.
      const nan = ordered ? fb.local(V128) : undefined;
      if (nan !== undefined) fb.i32(0).simd(Simd.i32x4Splat).set(nan);
      return { e, vaccs, sacc, ordered: ordered ? { nan, value: fb.local(V128) } : undefined };
    });
    const rl = varLocal(last.name);
    const storeRow = reuse !== undefined && members.some((m) => m.id === reuse.reduce) && last.name === reuse.rowVar && r.varies(reuse.body);
    const rowIndex = storeRow
      ? substitute(reuse.store.index, new Map([[reuse.colVar, fromAtom({ kind: "var", name: last.name, extent: last.extent })]]))
      : undefined;
    const step = (u: number): void => {
      emitItems(item.body);
      for (const a of accs) {
        if (a.ordered) orderedMaxStep(r, a.e, a.vaccs[u]!, a.ordered.nan!, a.ordered.value);
        else vectorStep(r, a.e, a.vaccs[u]!);
      }
      if (rowIndex && reuse) {
        const offset = emitAddress({ fb, env: env(0) }, rowIndex, 4);
        fb.get(vecLocals.get(reuse.body)!).simdMemAt(Simd.v128Store, 2, buffer(reuse.store.buffer), offset);
      }
    };
    if (storeRow) reuseStored = true;
    const limit = limitOf(last);
    nestLoops(loopVars.slice(0, -1), () => {
      region = r;
      fb.i32(0);
      // unroll·4 elements per trip: each copy after the first advances the variable by 4 first
      fb.forLoop(
        rl,
        limit,
        LANES,
        () => {
          for (let u = 0; u < unroll; u++) {
            if (u > 0) fb.get(rl).i32(LANES).op(Op.i32Add).set(rl);
            step(u);
          }
        },
        unroll * LANES,
      );
      fb.get(rl);
      fb.forLoop(rl, limit, LANES, () => step(0), LANES);
      region = undefined;
      fb.get(rl);
      fb.forLoop(rl, limit, 1, () => {
        emitItems(item.body);
        for (const a of accs) scalarStep(a.e, a.sacc, () => pushScalar(a.e.body));
      });
    });
    for (const a of accs) {
      const combine = a.ordered ? Simd.i32x4MaxS : vectorStepOp(a.e);
      for (let u = 1; u < unroll; u++) fb.get(a.vaccs[0]!).get(a.vaccs[u]!).simd(combine).set(a.vaccs[0]!);
      if (a.ordered) {
        // back to f32 (the map is its own inverse); a lane that saw a NaN becomes all ones, a NaN
        pushOrdered(a.vaccs[0]!);
        fb.get(a.ordered.nan!).simd(Simd.v128Or).set(a.vaccs[0]!);
      }
      for (let lane = 0; lane < LANES; lane++) scalarStep(a.e, a.sacc, () => extractLane({ fb }, a.vaccs[0]!, a.e.dtype, lane));
    }
  };

  function emitItems(list: readonly ScheduleItem[]): void {
    for (const item of deferPastBlocks(list)) {
      switch (item.kind) {
        case "expr":
          emitExprItem(item.id);
          break;
        case "loop":
          emitLoop(item);
          break;
        case "reduce":
          emitReduce(item);
          break;
        case "store":
          emitStore(item);
          break;
        default:
          assertNever(item, "schedule item");
      }
    }
  }

  emitItems(items);
  const domainSize = realDomain.reduce((a, v) => a * v.extent, 1);
  const longestReduce = (list: readonly ScheduleItem[]): number =>
    list.reduce((m, it) => Math.max(m, it.kind === "reduce" ? reduceElements(it) : it.kind === "loop" ? longestReduce(it.body) : 1), 1);
  const reduceSize = longestReduce(items);
  return {
    func: { type: { params: [I32, I32, I32], results: [] }, locals: fb.locals, body: fb.body, exportName: name },
    splitExtent: splitVar?.extent ?? 1,
    work: domainSize * reduceSize,
    splitGrain,
    relocations: fb.relocations,
    calls: fb.calls,
  };
}

/**
 * f32 products whose only use is the body of an f32 `reduce_sum`: where the sum runs over
 * vectors they fold into the accumulation as one relaxed_madd instead of a mul and an add.
 */
function fusableProducts(s: Section): Set<ExprId> {
  const uses = new Array<number>(s.exprs.length).fill(0);
  for (const e of s.exprs) for (const o of exprOperands(e)) uses[o]!++;
  for (const st of s.stores) uses[st.value]!++;
  const out = new Set<ExprId>();
  for (const e of s.exprs) {
    if (e.op !== "reduce_sum" || e.dtype !== "f32") continue;
    const body = s.exprs[e.body]!;
    if (body.op === "mul" && body.dtype === "f32" && uses[e.body] === 1) out.add(e.body);
  }
  return out;
}

/**
 * f32 negations whose only use is an operand of an f32 `add` (one per add): in a vector region
 * the add is `f32x4.sub` of the negation's operand, and the negation is not computed. x + (−y)
 * and x − y are the same IEEE operation (and (−y) + x the same as x + (−y)), so the result is
 * identical; V8 lowers f32x4.neg on x64 to three instructions (an all-ones register shifted to
 * the sign mask, then a xor) before the add, where sub is one. Every SGD update (w + −(lr·g))
 * and AdamW's have one per weight.
 */
function subtractedNegations(s: Section): Set<ExprId> {
  const uses = new Array<number>(s.exprs.length).fill(0);
  for (const e of s.exprs) for (const o of exprOperands(e)) uses[o]!++;
  for (const st of s.stores) uses[st.value]!++;
  const out = new Set<ExprId>();
  const negation = (id: ExprId): boolean => {
    const e = s.exprs[id]!;
    return e.op === "neg" && e.dtype === "f32" && uses[id] === 1;
  };
  for (const e of s.exprs) {
    if (e.op !== "add" || e.dtype !== "f32" || e.x === e.y) continue;
    if (negation(e.y)) out.add(e.y);
    else if (negation(e.x)) out.add(e.x);
  }
  return out;
}

/**
 * A row kernel that evaluates one expression twice (softmax's exp: once inside the row's sum
 * over r, once per output element over the column variable c): where the store runs along c
 * and nothing the section loads shares the output's memory, the sum's vector loop stores each
 * body value into the output row, and the column loop loads it back instead of recomputing.
 * Not when threads split the column loop (they would overwrite each other's rows), and only
 * for rows a multiple of 4 long (the vector loops then cover every element).
 */
interface RowReuse {
  readonly reduce: ExprId;
  readonly body: ExprId;
  readonly elem: ExprId;
  readonly store: Section["stores"][number];
  readonly rowVar: string;
  readonly colVar: string;
}

function planRowReuse(
  s: Section,
  free: readonly Set<string>[],
  buffer: (id: number) => BufferPlace,
  splitName: string | undefined,
  col: IndexVar | undefined,
  rowLimit: ReadonlyMap<string, number>,
): RowReuse | undefined {
  if (!col || col.name === splitName || col.extent % LANES !== 0 || rowLimit.has(col.name)) return undefined;
  const store = s.stores.find((st) => buffer(st.buffer).dtype === "f32" && linearStride(st.index, col.name) === 1);
  if (!store) return undefined;
  const outBase = buffer(store.buffer).base;
  if (s.exprs.some((e) => e.op === "load" && buffer(e.buffer).base === outBase)) return undefined;
  const others = [...indexVars(store.index)].filter((v) => v !== col.name);
  for (let id = 0; id < s.exprs.length; id++) {
    const r = s.exprs[id]!;
    if (r.op !== "reduce_sum" || r.dtype !== "f32") continue;
    const vars = r.vars.filter((v) => v.extent > 1);
    if (vars.length !== 1 || vars[0]!.extent !== col.extent || rowLimit.has(vars[0]!.name) || !others.every((v) => free[id]!.has(v))) continue;
    const rv = vars[0]!.name;
    const body = r.body;
    // the expression computing the body at r = c, if the section has it
    const elem = s.exprs.findIndex((_, e) => e !== body && free[e]!.has(col.name) && sameWithVar(s.exprs, free, e, body, col, rv));
    if (elem >= 0) return { reduce: id, body, elem, store, rowVar: rv, colVar: col.name };
  }
  return undefined;
}

/** Whether expression `a` is expression `b` with variable `bv` read as `av`. */
function sameWithVar(exprs: readonly KExpr[], freeVars: readonly Set<string>[], a: ExprId, b: ExprId, aVar: IndexVar, bv: string): boolean {
  const av = aVar.name;
  const rename = new Map([[bv, fromAtom(aVar)]]);
  const memo = new Map<string, boolean>();
  const same = (x: ExprId, y: ExprId): boolean => {
    if (x === y) return !free(x);
    const key = `${x},${y}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const ex = exprs[x]!;
    const ey = exprs[y]!;
    let ok = ex.op === ey.op && ex.dtype === ey.dtype;
    if (ok)
      if (ex.op === "load" && ey.op === "load")
        ok =
          ex.buffer === ey.buffer &&
          indexKey(ex.index) === indexKey(renamed(ey.index)) &&
          predKey(ex.valid) === predKey(substitutePred(ey.valid, rename)) &&
          indexDataRefsNone(ex.index, ey.index);
      else if (ex.op === "const" && ey.op === "const") ok = ex.value === ey.value;
      else if (ex.op === "reduce_sum" || ex.op === "reduce_max" || ex.op === "index" || ex.op === "valid" || ex.op === "rng") ok = false;
      else {
        const ox = exprOperands(ex);
        const oy = exprOperands(ey);
        ok = ox.length === oy.length && ox.every((o, i) => same(o, oy[i]!));
      }
    memo.set(key, ok);
    return ok;
  };
  const renamed = (ix: Parameters<typeof substitute>[0]) => substitute(ix, rename);
  // an operand both sides share is the same value only if it involves neither variable
  const free = (x: ExprId): boolean => freeVars[x]!.has(av) || freeVars[x]!.has(bv);
  return same(a, b);
}

const indexDataRefsNone = (...xs: readonly Parameters<typeof indexVars>[0][]): boolean => xs.every((x) => !x.terms.some((t) => t.atom.kind === "data"));
