// A batched contraction summed over its batch (a linear layer's weight gradient: Σ over batch
// and time of xᵀ·g, lowered as an inner dot over time inside an outer sum over the batch) as
// one contraction whose k spans every summed variable, outermost first. The section's other
// expressions stay; the outer sum's users read the merged sum. Targets whose matmul templates
// take one k (webgpu's matmul forms) use it to give weight gradients a matmul kernel instead
// of a thread per output (wasm's block-contraction does the same while packing its operands).

import { hasBinaryOp, hasUnaryOp } from "../ir/types.ts";
import { assertNever, bug } from "../util/errors.ts";
import { fromAtom, indexVar, substitute, substitutePred, unflattenIndex, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { exprOperands, exprOwnVars, isReduceExpr, operandClosure, summedOnce, type ExprId, type KExpr, type Section } from "./kernel-ir.ts";

/** Every loop variable name the section uses (domain and reductions). */
function varNames(s: Section): Set<string> {
  const names = new Set(s.domain.map((v) => v.name));
  for (const e of s.exprs) if (isReduceExpr(e)) for (const v of e.vars) names.add(v.name);
  return names;
}

/** `e` with its index variables replaced by `map` (loads, iota, masks, rng counters). */
function substituteExpr(e: KExpr, map: ReadonlyMap<string, IndexExpr>): KExpr {
  switch (e.op) {
    case "load":
      return { ...e, index: substitute(e.index, map), valid: substitutePred(e.valid, map) };
    case "index":
      return { ...e, index: substitute(e.index, map) };
    case "valid":
      return { ...e, pred: substitutePred(e.pred, map) };
    case "rng":
      return { ...e, counter: substitute(e.counter, map) };
    default:
      return e;
  }
}

/**
 * `s` with its one contraction merged with the sum around it, or undefined where the section
 * has no such shape: exactly one `dot` fact, an f32 reduce_sum over one variable whose only
 * use is an outer f32 reduce_sum, integer extents, and the inner sum's operand expressions
 * used by nothing outside it (so they can be rewritten in place). The merged k loop runs the
 * outer variables' digits outermost (the same terms, added in one running sum).
 */
export function mergeSummedDot(s: Section): Section | undefined {
  if (s.dots?.length !== 1 || s.tile) return undefined;
  const dot = s.dots[0]!;
  const inner = s.exprs[dot.reduce]!;
  if (inner.op !== "reduce_sum" || inner.dtype !== "f32" || inner.vars.length !== 1) return undefined;
  const outerId = summedOnce(s, dot.reduce);
  if (outerId === undefined) return undefined;
  const outer = s.exprs[outerId]!;
  if (outer.op !== "reduce_sum") return undefined;
  const kVars: IndexVar[] = [...outer.vars, inner.vars[0]!];
  if (kVars.some((v) => !Number.isInteger(v.extent) || v.extent < 1)) return undefined;
  // The inner sum's operands that read a summed variable are rewritten in place: nothing
  // outside the sum may share them.
  const kNames = new Set(kVars.map((v) => v.name));
  const inBody = operandClosure(s, inner.body);
  const body = new Set<ExprId>();
  for (let i = 0; i < s.exprs.length; i++) {
    if (!inBody.has(i)) continue;
    const e = s.exprs[i]!;
    if ([...exprOwnVars(e)].some((v) => kNames.has(v)) || exprOperands(e).some((o) => body.has(o))) body.add(i);
  }
  for (let i = 0; i < s.exprs.length; i++) {
    if (inBody.has(i) || i === dot.reduce) continue;
    if (exprOperands(s.exprs[i]!).some((o) => body.has(o))) return undefined;
  }
  if (s.stores.some((st) => body.has(st.value))) return undefined;
  const names = varNames(s);
  let n = 0;
  while (names.has(`r${n}`)) n++;
  const extent = kVars.reduce((a, v) => a * v.extent, 1);
  const k = indexVar(`r${n}`, extent);
  const digits = unflattenIndex(
    fromAtom(k),
    kVars.map((v) => v.extent),
  );
  const map = new Map<string, IndexExpr>(kVars.map((v, i) => [v.name, digits[i] ?? bug("mergeSummedDot: a digit per variable")]));
  // The outer sum's users read the inner one (a smaller id: the order stays topological).
  const redirect = (id: ExprId): ExprId => (id === outerId ? dot.reduce : id);
  const exprs = s.exprs.map((e, id): KExpr => {
    if (id === outerId) return { op: "const", value: 0, dtype: "f32" };
    if (id === dot.reduce) return { ...inner, vars: [k] };
    if (body.has(id)) return substituteExpr(e, map);
    return redirectOperands(e, redirect);
  });
  return { ...s, exprs, stores: s.stores.map((st) => ({ ...st, value: redirect(st.value) })) };
}

/** `e` with each operand id passed through `f` (its index expressions' data refs included). */
function redirectOperands(e: KExpr, f: (id: ExprId) => ExprId): KExpr {
  if (!exprOperands(e).some((o) => f(o) !== o)) return e;
  switch (e.op) {
    case "const":
      return e;
    case "load":
      return { ...e, index: substitute(e.index, new Map(), f), valid: substitutePred(e.valid, new Map(), f) };
    case "index":
      return { ...e, index: substitute(e.index, new Map(), f) };
    case "valid":
      return { ...e, pred: substitutePred(e.pred, new Map(), f) };
    case "rng":
      return { ...e, seed: f(e.seed), counter: substitute(e.counter, new Map(), f) };
    case "where":
      return { ...e, cond: f(e.cond), x: f(e.x), y: f(e.y) };
    case "reduce_sum":
    case "reduce_max":
      return { ...e, body: f(e.body) };
    case "softmax_sum":
      return { ...e, score: f(e.score), value: f(e.value) };
    case "softmax_max":
    case "softmax_norm":
      return { ...e, score: f(e.score) };
    default:
      if (hasBinaryOp(e)) return { ...e, x: f(e.x), y: f(e.y) };
      return hasUnaryOp(e) || e.op === "cast" ? { ...e, x: f(e.x) } : assertNever(e, "kernel expr");
  }
}
