// The online softmax of `softmax_sum` reductions (docs/kernel-ir.md) in wasm, scalar f32: per
// group of reductions sharing a score, a running max m and sum l; per reduction an
// accumulator. A key whose score s raises the max rescales l and the accumulators by
// c = 2^((m - s)·log2 e) and moves m to s (a branch taken a few times per row, not a multiply
// per key and accumulator); every key adds p = 2^((s - m)·log2 e) (times the value); after the
// loop each accumulator is divided by l. The select keeps an all -inf prefix at l = 0 (p = 0)
// instead of NaN, so only a row whose every score is -inf ends in 0/0 = NaN, as the unfused
// softmax does. exp2 is the vector polynomial on one lane, as the scalar exp2 expression.
// Four reductions of one score whose values are four consecutive f32 of one buffer (a row of
// V) form a run: one f32x4 accumulator, one v128 load of the values and one relaxed_madd
// (a multiply and an add without relaxed SIMD) per key instead of four scalar updates.

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
  fma = false,
): OnlineSoftmax {
  const inRun = new Set(runs.flatMap((r) => r.members));
  const state = [...groups].map(([score, members]) => ({
    score,
    members,
    m: fb.local(F32),
    l: fb.local(F32),
    runs: runs.filter((r) => r.score === score).map((r) => ({ ...r, acc: fb.local(V128) })),
    /** The softmax_sums outside runs, in order (softmax_max and softmax_norm are m and l, read at the end). */
    singleSums: members.filter((r) => !inRun.has(r) && exprs[r]!.op === "softmax_sum"),
  }));
  type Group = (typeof state)[number];
  const sumValue = (r: ExprId): ExprId => (exprs[r] as Extract<KExpr, { op: "softmax_sum" }>).value;
  // Groups that weigh the same values (a block of query rows over one key's v) run as the
  // lanes of one f32x4 (packs of up to four): one vector exp2 for the block, one load of each
  // value run for every row. Only with value runs (SIMD on), else group by group.
  const signature = (g: Group): string =>
    `${g.runs.map((r) => `${r.load.buffer}:${indexKey(r.load.index)}`).join(",")}|${g.singleSums.map(sumValue).join(",")}`;
  const packs: Group[][] = [];
  for (const g of state) {
    const open = runs.length > 0 ? packs.find((p) => p.length < 4 && signature(p[0]!) === signature(g)) : undefined;
    if (open) open.push(g);
    else packs.push([g]);
  }
  const lanePacks = packs.filter((p) => p.length > 1).map((groups) => ({ groups, m: fb.local(V128), l: fb.local(V128) }));
  const scalarGroups = packs.filter((p) => p.length === 1).map((p) => p[0]!);
  const exp2 = (): void => void fb.simd(Simd.f32x4Splat).call(helpers.vexp2).simdLane(Simd.f32x4ExtractLane, 0);
  const splatLane = (v: number, lane: number): void => {
    const bytes = Array.from({ length: 16 }, (_, i) => lane * 4 + (i % 4));
    fb.get(v).get(v).shuffle(bytes);
  };
  const scalarStep = (g: Group): void => {
    const [sv, c, p, pv] = [fb.local(F32), fb.local(F32), fb.local(F32), fb.local(V128)];
    pushScalar(g.score);
    fb.set(sv);
    // Only a key that raises the max rescales (rarely, past a row's first keys): if s > m,
    // c = 2^((m - s)·log2 e) (0 while m is -inf) scales l and the accumulators, m = s.
    // A NaN score fails the test and makes p NaN below: the row ends NaN, as unfused.
    fb.get(sv).get(g.m).op(Op.f32Gt).open(Op.if);
    fb.get(g.m).get(sv).op(Op.f32Sub).f32(Math.LOG2E).op(Op.f32Mul);
    exp2();
    fb.set(c);
    fb.get(g.l).get(c).op(Op.f32Mul).set(g.l);
    if (g.runs.length > 0) {
      const cv = fb.local(V128);
      fb.get(c).simd(Simd.f32x4Splat).set(cv);
      for (const run of g.runs) fb.get(run.acc).get(cv).simd(Simd.f32x4Mul).set(run.acc);
    }
    for (const r of g.singleSums) fb.get(accumulator(r)).get(c).op(Op.f32Mul).set(accumulator(r));
    fb.get(sv).set(g.m);
    fb.end();
    // p = s == -inf ? 0 : 2^((s - m)·log2 e) (an all -inf prefix keeps l = 0, not NaN)
    fb.f32(0);
    fb.get(sv).get(g.m).op(Op.f32Sub).f32(Math.LOG2E).op(Op.f32Mul);
    exp2();
    fb.get(sv).f32(-Infinity).op(Op.f32Eq).op(Op.select).set(p);
    fb.get(g.l).get(p).op(Op.f32Add).set(g.l);
    if (g.runs.length > 0) fb.get(p).simd(Simd.f32x4Splat).set(pv);
    for (const run of g.runs) {
      fb.get(pv);
      vectorLoad(run.load);
      madd(run.acc);
    }
    for (const r of g.singleSums) {
      const acc = accumulator(r);
      fb.get(acc).get(p);
      pushScalar(sumValue(r));
      fb.op(Op.f32Mul).op(Op.f32Add).set(acc);
    }
  };
  /** acc += (the two vectors on the stack multiplied): one relaxed_madd where relaxed SIMD is on. */
  const madd = (acc: number): void => {
    if (fma) fb.get(acc).simd(Simd.f32x4RelaxedMadd);
    else fb.simd(Simd.f32x4Mul).get(acc).simd(Simd.f32x4Add);
    fb.set(acc);
  };
  /** One key for a pack: the same steps as scalarStep, lane i for group i (unused lanes score -inf: p = 0). */
  const laneStep = (pack: (typeof lanePacks)[number]): void => {
    const sv = fb.local(V128);
    fb.f32(-Infinity).simd(Simd.f32x4Splat);
    pack.groups.forEach((g, lane) => {
      pushScalar(g.score);
      fb.simdLane(Simd.f32x4ReplaceLane, lane);
    });
    fb.set(sv);
    const p = vectorOnlineStep(fb, helpers, sv, pack.m, pack.l, (c) =>
      pack.groups.forEach((g, lane) => {
        if (g.runs.length > 0) {
          const cv = fb.local(V128);
          splatLane(c, lane);
          fb.set(cv);
          for (const run of g.runs) fb.get(run.acc).get(cv).simd(Simd.f32x4Mul).set(run.acc);
        }
        for (const r of g.singleSums) fb.get(accumulator(r)).get(c).simdLane(Simd.f32x4ExtractLane, lane).op(Op.f32Mul).set(accumulator(r));
      }),
    );
    const pl = pack.groups.map((_, lane) => {
      const v = fb.local(V128);
      splatLane(p, lane);
      fb.set(v);
      return v;
    });
    // Each value run loaded once for every row of the pack.
    const first = pack.groups[0]!;
    first.runs.forEach((run, ri) => {
      const v = fb.local(V128);
      vectorLoad(run.load);
      fb.set(v);
      pack.groups.forEach((g, lane) => {
        fb.get(pl[lane]!).get(v);
        madd(g.runs[ri]!.acc);
      });
    });
    first.singleSums.forEach((r0, si) => {
      const x = fb.local(F32);
      pushScalar(sumValue(r0));
      fb.set(x);
      pack.groups.forEach((g, lane) => {
        const acc = accumulator(g.singleSums[si]!);
        fb.get(acc).get(p).simdLane(Simd.f32x4ExtractLane, lane).get(x).op(Op.f32Mul).op(Op.f32Add).set(acc);
      });
    });
  };
  return {
    init() {
      for (const g of state) {
        fb.f32(-Infinity).set(g.m);
        fb.f32(0).set(g.l);
        for (const r of g.members) fb.f32(0).set(accumulator(r));
        for (const run of g.runs) fb.f32(0).simd(Simd.f32x4Splat).set(run.acc);
      }
      for (const pack of lanePacks) {
        fb.f32(-Infinity).simd(Simd.f32x4Splat).set(pack.m);
        fb.v128Zero().set(pack.l);
      }
    },
    step() {
      for (const g of scalarGroups) scalarStep(g);
      for (const pack of lanePacks) laneStep(pack);
    },
    finish() {
      for (const pack of lanePacks)
        pack.groups.forEach((g, lane) => {
          fb.get(pack.l).simdLane(Simd.f32x4ExtractLane, lane).set(g.l);
          fb.get(pack.m).simdLane(Simd.f32x4ExtractLane, lane).set(g.m);
        });
      for (const g of state) {
        for (const run of g.runs) run.members.forEach((r, lane) => fb.get(run.acc).simdLane(Simd.f32x4ExtractLane, lane).set(accumulator(r)));
        for (const r of g.members) {
          const op = exprs[r]!.op;
          if (op === "softmax_max") fb.get(g.m).set(accumulator(r));
          else if (op === "softmax_norm") fb.get(g.l).set(accumulator(r));
          else fb.get(accumulator(r)).get(g.l).op(Op.f32Div).set(accumulator(r));
        }
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
/**
 * One key of a lane-wise online softmax whose running max `m` and sum `l` are f32x4 locals and
 * whose scores are in `sv`: where a lane's score raises its max (n = s, else m), l and, through
 * `rescale(c)`, the caller's accumulators scale by c = 2^((m - n)·log2 e) (1 on the other lanes)
 * and m moves to n — inside a branch taken only when some lane's max moved; then
 * p = s == -inf ? 0 : 2^((s - m)·log2 e) is added to l. Returns p's local for the values'
 * updates. Shared by the row blocks in lanes here and emit-section's vector rows.
 */
export function vectorOnlineStep(fb: FuncBuilder, helpers: HelperFuncs, sv: number, m: number, l: number, rescale: (c: number) => void): number {
  const [gt, n, c, p] = [fb.local(V128), fb.local(V128), fb.local(V128), fb.local(V128)];
  fb.get(sv).get(m).simd(Simd.f32x4Gt).set(gt);
  fb.get(gt).simd(Simd.v128AnyTrue).open(Op.if);
  fb.get(sv).get(m).get(gt).simd(Simd.v128Bitselect).set(n);
  fb.get(m).get(n).simd(Simd.f32x4Sub).f32(Math.LOG2E).simd(Simd.f32x4Splat).simd(Simd.f32x4Mul).call(helpers.vexp2);
  fb.f32(1).simd(Simd.f32x4Splat).get(gt).simd(Simd.v128Bitselect).set(c);
  fb.get(l).get(c).simd(Simd.f32x4Mul).set(l);
  rescale(c);
  fb.get(n).set(m);
  fb.end();
  fb.get(sv).get(m).simd(Simd.f32x4Sub).f32(Math.LOG2E).simd(Simd.f32x4Splat).simd(Simd.f32x4Mul).call(helpers.vexp2);
  fb.v128Zero();
  fb.get(sv).f32(-Infinity).simd(Simd.f32x4Splat).simd(Simd.f32x4Ne).simd(Simd.v128Bitselect).set(p);
  fb.get(l).get(p).simd(Simd.f32x4Add).set(l);
  return p;
}

export function valueRuns(s: Section, groups: ReadonlyMap<ExprId, readonly ExprId[]>): ValueRun[] {
  const runs: ValueRun[] = [];
  const loadOf = (id: ExprId): Extract<KExpr, { op: "load" }> | undefined => {
    const e = s.exprs[id]!;
    if (e.op !== "softmax_sum") return undefined;
    const v = s.exprs[e.value]!;
    return v.op === "load" && v.dtype === "f32" && v.valid !== false && v.valid.length === 0 ? v : undefined;
  };
  for (const [score, all] of groups) {
    const members = all.filter((r) => s.exprs[r]!.op === "softmax_sum");
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
  }
  return runs;
}
