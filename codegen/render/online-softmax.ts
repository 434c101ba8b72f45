// The online softmax of `softmax_sum` reductions (docs/kernel-ir.md) for the C-like languages
// (WGSL through the renderer base, CUDA C): per group of reductions sharing a score, a running
// max m and sum l; per reduction an accumulator. A key whose score s raises the max rescales l
// and the accumulators by c = 2^((m - s)·log2 e) and moves m to s (a branch taken a few times
// per row); every key adds p = 2^((s - m)·log2 e) (times the value); after the loop each
// accumulator is divided by l, a softmax_max is m and a softmax_norm l. The select keeps an
// all -inf prefix at l = 0 (p = 0), so only a row whose every score is -inf ends in 0/0 = NaN,
// which is what the unfused softmax gives it.

import type { ExprId, KExpr } from "../../compiler/kernel/kernel-ir.ts";
import type { BinaryOp, UnaryOp } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";

/** The spellings used here: a subset of base.ts's CLikeDialect (not imported: base.ts imports this module). */
export interface SoftmaxSpelling {
  readonly constant: (value: number, t: DType) => string;
  readonly unary: (op: UnaryOp, x: string, t: DType) => string;
  readonly binary: (op: BinaryOp, x: string, y: string, operand: DType) => string;
  readonly select: (cond: string, ifTrue: string, ifFalse: string) => string;
  readonly declareLet: (name: string, t: DType, value: string) => string;
  readonly declareVar: (name: string, t: DType, value: string) => string;
}

const F32 = "f32" as const;

export interface OnlineSoftmaxLines {
  readonly init: string[];
  readonly step: string[];
  readonly finish: string[];
}

/** Statements (without indentation) for the groups of `softmaxGroups`; accumulators are named `name(id)`. */
export function onlineSoftmaxLines(
  d: SoftmaxSpelling,
  exprs: readonly KExpr[],
  groups: ReadonlyMap<ExprId, readonly ExprId[]>,
  name: (id: ExprId) => string,
): OnlineSoftmaxLines {
  const init: string[] = [];
  const step: string[] = [];
  const finish: string[] = [];
  const exp2Of = (x: string, minus: string): string =>
    d.unary("exp2", d.binary("mul", d.binary("add", x, d.unary("neg", minus, F32), F32), d.constant(Math.LOG2E, F32), F32), F32);
  for (const [score, members] of groups) {
    const [m, l, c, p, s] = ["m", "l", "c", "p"].map((x) => `sm_${x}${score}`).concat(name(score));
    init.push(d.declareVar(m!, F32, d.constant(-Infinity, F32)), d.declareVar(l!, F32, d.constant(0, F32)));
    for (const r of members) init.push(d.declareVar(name(r), F32, d.constant(0, F32)));
    // Only a key that raises the max rescales (a few per row): c = 2^((m - s)·log2 e), 0 while
    // m is -inf; a NaN score fails the test and makes p NaN, so the row ends NaN as unfused.
    const rescale = [`${l} = ${d.binary("mul", l!, c!, F32)};`];
    for (const r of members) if (exprs[r]!.op === "softmax_sum") rescale.push(`${name(r)} = ${d.binary("mul", name(r), c!, F32)};`);
    step.push(
      `if (${d.binary("cmplt", m!, s!, F32)}) {`,
      `  ${d.declareLet(c!, F32, exp2Of(m!, s!))}`,
      ...rescale.map((x) => `  ${x}`),
      `  ${m} = ${s};`,
      `}`,
      d.declareLet(p!, F32, d.select(d.binary("cmpeq", s!, d.constant(-Infinity, F32), F32), d.constant(0, F32), exp2Of(s!, m!))),
      `${l} = ${d.binary("add", l!, p!, F32)};`,
    );
    for (const r of members) {
      const e = exprs[r]!;
      if (e.op !== "softmax_sum") continue;
      step.push(`${name(r)} = ${d.binary("add", name(r), d.binary("mul", p!, name(e.value), F32), F32)};`);
    }
    // softmax_max and softmax_norm are the running max and sum themselves.
    for (const r of members) {
      const op = exprs[r]!.op;
      finish.push(`${name(r)} = ${op === "softmax_max" ? m : op === "softmax_norm" ? l : `${name(r)} / ${l}`};`);
    }
  }
  return { init, step, finish };
}
