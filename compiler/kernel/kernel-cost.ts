// The arithmetic a kernel does, counted from its kernel IR: what exe.profile divides by a
// kernel's time for GFLOP/s (and `kiln view` shows beside each kernel). Every expression runs
// once per combination of the loop variables it depends on (directly, or through its
// operands): the placement rule of the kernel IR (kernel-ir.ts: each expression sits at the
// shallowest loop binding its variables), so a softmax's row maximum counts once per row
// element, not once per output element. Counted as one operation each: unary and binary
// arithmetic (add, mul, max, neg, exp2, sqrt, comparisons, …) and each step of a reduction;
// loads, stores, constants, casts, selects and index arithmetic count nothing. A matmul
// [M,K]@[K,N] is 2·M·K·N: M·K·N multiplies and as many accumulating adds.

import { hasBinaryOp, hasUnaryOp } from "../ir/types.ts";
import type { IndexExpr } from "./index-expr.ts";
import { exprOperands, exprOwnVars, isReduceExpr, type Kernel, type Section } from "./kernel-ir.ts";

/**
 * Arithmetic operations of one launch of `section`; `runs`: the iterations a loop really runs
 * where that is fewer than its extent (a symbolic batch's row bounds at a given size).
 */
export function sectionOps(section: Section, runs?: ReadonlyMap<string, number>): number {
  const extent = new Map<string, number>();
  const note = (name: string, n: number): void => void extent.set(name, runs?.get(name) ?? n);
  for (const v of section.domain) note(v.name, v.extent);
  for (const e of section.exprs) {
    if (isReduceExpr(e)) for (const v of e.vars) note(v.name, v.extent);
    if (e.op === "load" || e.op === "index") collectVarExtents(e.index, note);
    if (e.op === "rng") collectVarExtents(e.counter, note);
  }
  const deps: Set<string>[] = [];
  const count = (vars: ReadonlySet<string>): number => {
    let n = 1;
    for (const v of vars) n *= extent.get(v) ?? 1;
    return n;
  };
  let ops = 0;
  section.exprs.forEach((e, id) => {
    const vars = exprOwnVars(e);
    for (const o of exprOperands(e)) for (const v of deps[o] ?? []) vars.add(v);
    if (isReduceExpr(e)) {
      // One accumulation per point of (the body's variables ∪ the reduction's own); an online
      // softmax step (max, two exponentials, the rescaled sum and accumulator) counts as 8.
      const steps = new Set(vars);
      for (const v of e.vars) steps.add(v.name);
      ops += (e.op === "softmax_sum" ? 8 : e.op === "softmax_norm" ? 6 : 1) * count(steps);
      for (const v of e.vars) vars.delete(v.name);
    } else if (e.op !== "cast" && (hasUnaryOp(e) || hasBinaryOp(e))) ops += count(vars);
    deps[id] = vars;
  });
  return ops;
}

/** Arithmetic operations of one launch of `kernel` (its sections summed). */
export const kernelOps = (kernel: Pick<Kernel, "sections">): number => kernel.sections.reduce((sum, s) => sum + sectionOps(s), 0);

function collectVarExtents(e: IndexExpr, note: (name: string, extent: number) => void): void {
  for (const t of e.terms) {
    const a = t.atom;
    if (a.kind === "var") note(a.name, a.extent);
    else if (a.kind === "div" || a.kind === "mod") collectVarExtents(a.x, note);
  }
}
