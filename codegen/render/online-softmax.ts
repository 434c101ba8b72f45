// The online softmax of `softmax_sum` reductions (docs/kernel-ir.md) for the C-like languages
// (WGSL through the renderer base, CUDA C): per group of reductions sharing a score, a running
// max m and sum l; per reduction an accumulator. Each key moves m to n = max(m, s), rescales l
// and the accumulators by c = 2^((m - n)·log2 e) and adds p = 2^((s - n)·log2 e) (times the
// value); after the loop each accumulator is divided by l. The selects keep an all -inf prefix
// at l = 0 (c = 1, p = 0), so only a row whose every score is -inf ends in 0/0 = NaN, which is
// what the unfused softmax gives it.

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
    const [m, l, n, c, p, s] = ["m", "l", "n", "c", "p"].map((x) => `sm_${x}${score}`).concat(name(score));
    init.push(d.declareVar(m!, F32, d.constant(-Infinity, F32)), d.declareVar(l!, F32, d.constant(0, F32)));
    for (const r of members) init.push(d.declareVar(name(r), F32, d.constant(0, F32)));
    step.push(
      d.declareLet(n!, F32, d.binary("max", m!, s!, F32)),
      d.declareLet(c!, F32, d.select(d.binary("cmpeq", m!, n!, F32), d.constant(1, F32), exp2Of(m!, n!))),
      d.declareLet(p!, F32, d.select(d.binary("cmpeq", s!, d.constant(-Infinity, F32), F32), d.constant(0, F32), exp2Of(s!, n!))),
      `${l} = ${d.binary("add", d.binary("mul", l!, c!, F32), p!, F32)};`,
      `${m} = ${n};`,
    );
    for (const r of members) {
      const e = exprs[r]!;
      if (e.op !== "softmax_sum") continue;
      step.push(`${name(r)} = ${d.binary("add", d.binary("mul", name(r), c!, F32), d.binary("mul", p!, name(e.value), F32), F32)};`);
    }
    for (const r of members) finish.push(`${name(r)} = ${name(r)} / ${l};`);
  }
  return { init, step, finish };
}
