// The sections of a fused attention backward (compiler/passes/attention-backward.ts): a point
// per query or key row that stores every column of its roots. Lowering computes each root once
// at a symbolic column variable; `unrollColumns` copies it per column with the variable set to
// the column (hash-consing shares everything that does not depend on it: the recomputed
// scores, the softmax weights), and gives the row-level reductions that can run side by side
// one loop: those of one "stage" (the same count of row-level reductions before them, the same
// op and extent) never read each other, so their bodies share one pass over the keys (dK and
// dV in one loop over the queries).

import { bug } from "../util/errors.ts";
import { constIndex, flatIndex, fromAtom, indexKey, indexVar, predKey, substitute, substitutePred, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { exprOperands, exprOwnVars, isReduceExpr, reduceBodies, SectionBuilder, type ExprId, type KExpr, type Section } from "./kernel-ir.ts";
import { copyExprs } from "./tile.ts";
import type { Shape } from "../util/shape.ts";

export interface RowBlockOutput {
  readonly buffer: number;
  /** The root's shape: the section's domain, then its columns (`transposed`: the columns before the domain's last axis). */
  readonly shape: Shape;
  readonly transposed: boolean;
  /** The symbolic column the value was computed at (absent: one column, index 0). */
  readonly column?: IndexVar;
  readonly value: ExprId;
}

/** The section that stores every column of `outputs` per point of `domain`, from `s` (expressions at symbolic columns). */
export function unrollColumns(s: Section, domain: readonly IndexVar[], outputs: readonly RowBlockOutput[]): Section {
  const exprs = s.exprs;
  const pointVars = new Set([...domain.map((v) => v.name), ...outputs.flatMap((o) => (o.column ? [o.column.name] : []))]);
  // Free variables and row-level stage of every expression.
  const free: Set<string>[] = [];
  const stage: number[] = [];
  const rename = new Map<string, IndexExpr>();
  const canonical = new Map<string, readonly IndexVar[]>();
  const pointLevel = new Set<ExprId>();
  exprs.forEach((e, id) => {
    const vs = exprOwnVars(e);
    for (const o of exprOperands(e)) for (const v of free[o] ?? bug(`row-block: operand ${o} of ${id}`)) vs.add(v);
    let st = Math.max(0, ...exprOperands(e).map((o) => stage[o]!));
    if (isReduceExpr(e)) {
      for (const v of e.vars) vs.delete(v.name);
      st = Math.max(0, ...reduceBodies(e).map((b) => stage[b]!));
      if ([...vs].every((v) => pointVars.has(v))) {
        pointLevel.add(id);
        st += 1;
        const key = `${st}|${e.op}|${e.vars.map((v) => v.extent).join(",")}`;
        const first = canonical.get(key);
        if (!first) canonical.set(key, e.vars);
        else e.vars.forEach((v, i) => v.name !== first[i]!.name && rename.set(v.name, fromAtom(first[i]!)));
      }
    }
    free[id] = vs;
    stage[id] = st;
  });
  // Nested reductions that compute the same value in one loop (the q·k of a key, once for the
  // softmax's sum and once for the count of its maxima, once more for dK beside dV): one
  // variable, so the copies below are one expression.
  const seen = new Map<string, readonly IndexVar[]>();
  exprs.forEach((e, id) => {
    if (!isReduceExpr(e) || pointLevel.has(id)) return;
    const map = new Map(rename);
    e.vars.forEach((v, i) => map.set(v.name, fromAtom(indexVar(`$${i}`, v.extent))));
    const key = `${e.op}|${e.dtype}|${e.vars.map((v) => v.extent).join(",")}|${reduceBodies(e)
      .map((b) => structuralKey(exprs, b, map, new Map()))
      .join(",")}`;
    const first = seen.get(key);
    if (!first) seen.set(key, e.vars);
    else e.vars.forEach((v, i) => v.name !== first[i]!.name && rename.set(v.name, fromAtom(first[i]!)));
  });
  const sb = new SectionBuilder(domain);
  const rowIndex = domain.map((v) => fromAtom(v));
  for (const out of outputs) {
    const cone = new Set<ExprId>();
    const stack = [out.value];
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (cone.has(id)) continue;
      cone.add(id);
      stack.push(...exprOperands(exprs[id]!));
    }
    const columns = out.shape.at(out.transposed ? -2 : -1)!;
    for (let c = 0; c < columns; c++) {
      const varMap = new Map(rename);
      if (out.column) varMap.set(out.column.name, constIndex(c));
      const ids = copyExprs(exprs, sb, varMap, cone);
      const index = out.transposed ? [...rowIndex.slice(0, -1), constIndex(c), rowIndex.at(-1)!] : [...rowIndex, constIndex(c)];
      sb.store(out.buffer, flatIndex(index, out.shape), ids[out.value]!);
    }
  }
  return sb.build();
}

/** A key of expression `id` with variables renamed by `map`: equal keys, equal values. */
function structuralKey(exprs: readonly KExpr[], id: ExprId, map: ReadonlyMap<string, IndexExpr>, memo: Map<ExprId, string>): string {
  const hit = memo.get(id);
  if (hit !== undefined) return hit;
  const e = exprs[id]!;
  const ix = (x: IndexExpr): string => indexKey(substitute(x, map));
  const sub = (o: ExprId): string => structuralKey(exprs, o, map, memo);
  let key: string;
  switch (e.op) {
    case "load":
      key = `load b${e.buffer}[${ix(e.index)}] ${predKey(substitutePred(e.valid, map))}`;
      break;
    case "index":
      key = `index ${ix(e.index)}`;
      break;
    case "valid":
      key = `valid ${predKey(substitutePred(e.pred, map))}`;
      break;
    case "const":
      key = `const ${Object.is(e.value, -0) ? "-0" : String(e.value)}`;
      break;
    case "rng":
      key = `rng ${e.stream} ${sub(e.seed)} ${ix(e.counter)}`;
      break;
    default:
      key = `${e.op}${isReduceExpr(e) ? ` [${e.vars.map((v) => ix(fromAtom(v))).join(",")}]` : ""}(${exprOperands(e).map(sub).join(",")})`;
  }
  key = `${key}:${e.dtype}`;
  memo.set(id, key);
  return key;
}
