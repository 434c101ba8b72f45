// The online softmax of `softmax_sum` reductions (docs/kernel-ir.md) in wasm, scalar f32: per
// group of reductions sharing a score, a running max m and sum l; per reduction an
// accumulator. Each key moves m to n = max(m, s), rescales l and the accumulators by
// c = 2^((m - n)·log2 e) and adds p = 2^((s - n)·log2 e) (times the value); after the loop each
// accumulator is divided by l. The selects keep an all -inf prefix at l = 0 (c = 1, p = 0)
// instead of NaN, so only a row whose every score is -inf ends in 0/0 = NaN, as the unfused
// softmax does. exp2 is the vector polynomial on one lane, as the scalar exp2 expression.

import type { ExprId, KExpr } from "../../compiler/kernel/kernel-ir.ts";
import { F32, Op, Simd } from "./encoder.ts";
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
): OnlineSoftmax {
  const state = [...groups].map(([score, members]) => ({ score, members, m: fb.local(F32), l: fb.local(F32) }));
  const exp2 = (): void => void fb.simd(Simd.f32x4Splat).call(helpers.vexp2).simdLane(Simd.f32x4ExtractLane, 0);
  return {
    init() {
      for (const g of state) {
        fb.f32(-Infinity).set(g.m);
        fb.f32(0).set(g.l);
        for (const r of g.members) fb.f32(0).set(accumulator(r));
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
        for (const r of g.members) {
          const e = exprs[r]!;
          if (e.op !== "softmax_sum") continue;
          const acc = accumulator(r);
          fb.get(acc).get(c).op(Op.f32Mul).get(p);
          pushScalar(e.value);
          fb.op(Op.f32Mul).op(Op.f32Add).set(acc);
        }
      }
    },
    finish() {
      for (const g of state) for (const r of g.members) fb.get(accumulator(r)).get(g.l).op(Op.f32Div).set(accumulator(r));
    },
  };
}
