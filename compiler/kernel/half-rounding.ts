// Which kernel-IR expressions of a 16-bit dtype (f16, bf16) a renderer must round to their
// format: targets compute 16-bit values in f32 registers and, like the interpreter, round
// each op's result where it is computed (docs/dtypes.md). Exact ops (loads, constants rounded
// when rendered, neg, max, where, a cast from bool or the same format) need no rounding; a
// reduce_sum accumulates in f32 and is rounded once after its loop.

import { halfOf } from "../ir/dtype.ts";
import type { KExpr } from "./kernel-ir.ts";

export function needsHalfRounding(e: KExpr, exprs: readonly KExpr[]): boolean {
  if (halfOf(e.dtype) === undefined) return false;
  switch (e.op) {
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip":
    case "add":
    case "mul":
      return true;
    case "cast": {
      const from = exprs[e.x]!.dtype;
      return from !== e.dtype && from !== "bool";
    }
    default:
      return false;
  }
}

/** Whether a reduction's accumulator is rounded to a 16-bit format after its loop (sums; a max picks an operand). */
export const roundsAfterReduce = (e: KExpr): boolean => e.op === "reduce_sum" && halfOf(e.dtype) !== undefined;
