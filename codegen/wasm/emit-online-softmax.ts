// The online softmax of `softmax_sum` reductions (docs/kernel-ir.md) in wasm, scalar f32: per
// group of reductions sharing a score, a running max m and sum l; per reduction an
// accumulator. Each key moves m to n = max(m, s), rescales l and the accumulators by
// c = 2^((m - n)·log2 e) and adds p = 2^((s - n)·log2 e) (times the value); after the loop each
// accumulator is divided by l. The selects keep an all -inf prefix at l = 0 (c = 1, p = 0)
// instead of NaN, so only a row whose every score is -inf ends in 0/0 = NaN, as the unfused
// softmax does. exp2 is the vector polynomial on one lane, as the scalar exp2 expression.
// Four reductions of one score whose values are four consecutive f32 of one buffer (a row of
// V) form a run: one f32x4 accumulator, one v128 load of the values, two f32x4 multiplies
// and an add per key instead of four scalar updates.

import type { ExprId, KExpr, Section } from "../../compiler/kernel/kernel-ir.ts";
import { indexKey } from "../../compiler/kernel/index-expr.ts";
import { F32, Op, Simd, V128 } from "./encoder.ts";
import type { FuncBuilder } from "./func-builder.ts";
import type { HelperFuncs } from "./emit-scalar.ts";

export interface OnlineSoftmax {
  /** Before the key loop: m = -inf, l = 0, every accumulator 0. */
  init(): void;
  /** Inside the key loop, after the scores and values are computed. */
  step(): void;
  /** After the loop: each accumulator (the reduction's scalar local) divided by l. */
  finish(): void;
}

export function onlineSoftmax(
  fb: FuncBuilder,
  helpers: HelperFuncs,
  exprs: readonly KExpr[],
  groups: ReadonlyMap<ExprId, readonly ExprId[]>,
  pushScalar: (id: ExprId) => void,
  accumulator: (id: ExprId) => number,
  runs: readonly ValueRun[] = [],
  vectorLoad: (load: Extract<KExpr, { op: "load" }>) => void = () => undefined,
): OnlineSoftmax {
  const inRun = new Set(runs.flatMap((r) => r.members));
  const state = [...groups].map(([score, members]) => ({
    score,
    members,
    m: fb.local(F32),
    l: fb.local(F32),
    runs: runs.filter((r) => r.score === score).map((r) => ({ ...r, acc: fb.local(V128) })),
  }));
  const exp2 = (): void => void fb.simd(Simd.f32x4Splat).call(helpers.vexp2).simdLane(Simd.f32x4ExtractLane, 0);
  return {
    init() {
      for (const g of state) {
        fb.f32(-Infinity).set(g.m);
        fb.f32(0).set(g.l);
        for (const r of g.members) fb.f32(0).set(accumulator(r));
        for (const run of g.runs) fb.f32(0).simd(Simd.f32x4Splat).set(run.acc);
      }
    },
    step() {
      for (const g of state) {
        const [n, c, p] = [fb.local(F32), fb.local(F32), fb.local(F32)];
        fb.get(g.m);
        pushScalar(g.score);
        fb.op(Op.f32Max).set(n);
        // c = m == n ? 1 : 2^((m - n)·log2 e)
        fb.f32(1).get(g.m).get(n).op(Op.f32Sub).f32(Math.LOG2E).op(Op.f32Mul);
        exp2();
        fb.get(g.m).get(n).op(Op.f32Eq).op(Op.select).set(c);
        // p = s == -inf ? 0 : 2^((s - n)·log2 e)
        fb.f32(0);
        pushScalar(g.score);
        fb.get(n).op(Op.f32Sub).f32(Math.LOG2E).op(Op.f32Mul);
        exp2();
        pushScalar(g.score);
        fb.f32(-Infinity).op(Op.f32Eq).op(Op.select).set(p);
        fb.get(g.l).get(c).op(Op.f32Mul).get(p).op(Op.f32Add).set(g.l);
        fb.get(n).set(g.m);
        for (const run of g.runs) {
          fb.get(run.acc).get(c).simd(Simd.f32x4Splat).simd(Simd.f32x4Mul);
          fb.get(p).simd(Simd.f32x4Splat);
          vectorLoad(run.load);
          fb.simd(Simd.f32x4Mul).simd(Simd.f32x4Add).set(run.acc);
        }
        for (const r of g.members) {
          const e = exprs[r]!;
          if (e.op !== "softmax_sum" || inRun.has(r)) continue;
          const acc = accumulator(r);
          fb.get(acc).get(c).op(Op.f32Mul).get(p);
          pushScalar(e.value);
          fb.op(Op.f32Mul).op(Op.f32Add).set(acc);
        }
      }
    },
    finish() {
      for (const g of state) {
        for (const run of g.runs) run.members.forEach((r, lane) => fb.get(run.acc).simdLane(Simd.f32x4ExtractLane, lane).set(accumulator(r)));
        for (const r of g.members) fb.get(accumulator(r)).get(g.l).op(Op.f32Div).set(accumulator(r));
      }
    },
  };
}

/** Four softmax_sums of one score whose values are consecutive f32 elements of one buffer. */
export interface ValueRun {
  readonly score: ExprId;
  readonly members: readonly [ExprId, ExprId, ExprId, ExprId];
  /** The first member's value load (the run's v128 load starts there). */
  readonly load: Extract<KExpr, { op: "load" }>;
}

/** The runs among `groups` (members in order, four at a time where their value loads line up). */
export function valueRuns(s: Section, groups: ReadonlyMap<ExprId, readonly ExprId[]>): ValueRun[] {
  const runs: ValueRun[] = [];
  const loadOf = (id: ExprId): Extract<KExpr, { op: "load" }> | undefined => {
    const e = s.exprs[id]!;
    if (e.op !== "softmax_sum") return undefined;
    const v = s.exprs[e.value]!;
    return v.op === "load" && v.dtype === "f32" && v.valid !== false && v.valid.length === 0 ? v : undefined;
  };
  for (const [score, members] of groups)
    for (let i = 0; i + 4 <= members.length; ) {
      const quad = members.slice(i, i + 4) as [ExprId, ExprId, ExprId, ExprId];
      const loads = quad.map(loadOf);
      const first = loads[0];
      const lined =
        first !== undefined &&
        loads.every(
          (l, k) => l !== undefined && l.buffer === first.buffer && indexKey({ ...l.index, constant: l.index.constant - k }) === indexKey(first.index),
        );
      if (lined) {
        runs.push({ score, members: quad, load: first });
        i += 4;
      } else i += 1;
    }
  return runs;
}
