// The range of a reduction loop outside which every step adds nothing: a causal mask's keys
// past the query (`where(j <= i, score, -inf)`: exp2 of -inf is 0, so the softmax's sum, Σ
// dP·P and dQ gain nothing there, and a max keeps -inf), or the queries before the key in the
// key-row loop of an attention backward. `reduceRange` finds, for a reduce item of one loop
// variable r, a mask condition c on r and the point (a comparison or equality of r with an
// affine index, or the union of two adjacent ones) such that each member's step is its
// identity wherever the mask hides the score: 0 for a sum, -inf for a max or a softmax_sum's
// score. It decides by evaluating the members' bodies over abstract values (0, ±inf, finite,
// unknown) with c set to its masked value; values that do not vary with r, loads and nested
// reductions count as finite (inputs holding inf or NaN where the mask hides them may then
// differ from the unskipped loop: they would have made the row NaN). Targets start the loop
// at max(0, lo) and end it at min(extent, hi): a causal row reads the keys up to its own.

import { addIndex, constIndex, indexKey, mulIndex, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { exprOperands, type ExprId, type KExpr, type Section } from "./kernel-ir.ts";

/** The loop variable's useful range: r in [lo, hi) (an absent end: the loop's own). */
export interface ReduceRange {
  readonly v: IndexVar;
  readonly lo?: IndexExpr;
  readonly hi?: IndexExpr;
}

type Abs = "zero" | "neginf" | "posinf" | "finite" | "any" | { readonly c: number };

const classify = (v: number): Abs => (Number.isNaN(v) ? "any" : v === 0 ? "zero" : v === -Infinity ? "neginf" : v === Infinity ? "posinf" : { c: v });
const finiteLike = (a: Abs): boolean => a === "zero" || a === "finite" || typeof a === "object";

/** The range of the loop of reductions `members` over `vars`, or undefined where none is found. */
export function reduceRange(s: Section, vars: readonly IndexVar[], members: readonly ExprId[]): ReduceRange | undefined {
  const loopVars = vars.filter((v) => v.extent > 1);
  if (loopVars.length !== 1 || members.length === 0) return undefined;
  const v = loopVars[0]!;
  const exprs = s.exprs;
  // Which expressions vary with r.
  const varies = new Map<ExprId, boolean>();
  const dependsOnR = (id: ExprId): boolean => {
    const hit = varies.get(id);
    if (hit !== undefined) return hit;
    const e = exprs[id]!;
    let d = false;
    if (e.op === "index") d = mentions(e.index, v.name);
    else if (e.op === "load") d = mentions(e.index, v.name) || (e.valid !== false && e.valid.some((c) => mentions(c.x, v.name)));
    else if (e.op === "valid") d = e.pred !== false && e.pred.some((c) => mentions(c.x, v.name));
    else if (e.op === "rng") d = mentions(e.counter, v.name);
    if (!d) d = exprOperands(e).some(dependsOnR);
    varies.set(id, d);
    return d;
  };
  // Per member: a candidate mask (a condition of a `where` in its body that varies with r)
  // under which its step is its identity; the loop's range is the union of the members'.
  const evaluations = new Map<string, (id: ExprId) => Abs>();
  const evaluator = (c: ExprId, maskedValue: boolean): ((id: ExprId) => Abs) => {
    const key = `${c}|${maskedValue}`;
    const hit = evaluations.get(key);
    if (hit) return hit;
    const memo = new Map<ExprId, Abs>();
    const at = (id: ExprId): Abs => {
      const known = memo.get(id);
      if (known !== undefined) return known;
      const e = exprs[id]!;
      const a = e.op === "const" ? classify(e.value) : dependsOnR(id) ? step(e, at, c, maskedValue, id) : "finite";
      memo.set(id, a);
      return a;
    };
    evaluations.set(key, at);
    return at;
  };
  const intervals = new Map<ExprId, { lo?: IndexExpr; hi?: IndexExpr } | undefined>();
  const rangeOf = (m: ExprId): { lo?: IndexExpr; hi?: IndexExpr } | undefined => {
    const candidates = new Set<ExprId>();
    const seen = new Set<ExprId>();
    const stack = exprOperands(exprs[m]!);
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      const e = exprs[id]!;
      if (e.op === "where" && dependsOnR(e.cond)) candidates.add(e.cond);
      stack.push(...exprOperands(e));
    }
    for (const c of candidates) {
      if (!intervals.has(c)) intervals.set(c, intervalOf(exprs, c, v.name));
      const kept = intervals.get(c);
      if (!kept) continue;
      for (const [maskedValue, range] of [
        [false, kept],
        [true, complement(kept)],
      ] as const) {
        if (!range || !everyPointKeeps(range)) continue;
        const at = evaluator(c, maskedValue);
        const e = exprs[m]!;
        const neutral =
          e.op === "reduce_sum"
            ? at(e.body) === "zero"
            : e.op === "reduce_max"
              ? at(e.body) === "neginf"
              : e.op === "softmax_sum"
                ? at(e.score) === "neginf" && finiteLike(at(e.value))
                : (e.op === "softmax_max" || e.op === "softmax_norm") && at(e.score) === "neginf";
        if (neutral) return range;
      }
    }
    return undefined;
  };
  const ranges = [];
  for (const m of members) {
    const r = rangeOf(m);
    if (!r) return undefined;
    ranges.push(r);
  }
  return union(v, ranges);
}

/**
 * The union of ranges that all end (or all start) at one affine index plus constants (the
 * rows of a block of queries): the largest end, the smallest start.
 */
function union(v: IndexVar, ranges: readonly { lo?: IndexExpr; hi?: IndexExpr }[]): ReduceRange | undefined {
  const linearKey = (x: IndexExpr): string => indexKey({ terms: x.terms, constant: 0 });
  for (const side of ["hi", "lo"] as const) {
    const ends = ranges.map((r) => r[side]);
    if (ends.some((x) => x === undefined) || ranges.some((r) => r[side === "hi" ? "lo" : "hi"] !== undefined)) continue;
    const first = ends[0]!;
    if (ends.some((x) => linearKey(x!) !== linearKey(first))) return undefined;
    const constant = (side === "hi" ? Math.max : Math.min)(...ends.map((x) => x!.constant));
    return { v, [side]: { terms: first.terms, constant } };
  }
  return undefined;
}

/**
 * A range [0, a·p + c) with c ≥ 1 or [a·p + c, …) with c ≤ 0 for a point variable p and a ≥ 1
 * (a block of a rows): no row is masked whole (the diagonal's causal mask), so the row
 * statistics the steps read are finite.
 */
function everyPointKeeps(range: { lo?: IndexExpr; hi?: IndexExpr }): boolean {
  const diagonal = (x: IndexExpr | undefined): boolean => x !== undefined && x.terms.length === 1 && x.terms[0]!.coef >= 1 && x.terms[0]!.atom.kind === "var";
  if (range.hi && !range.lo) return diagonal(range.hi) && range.hi.constant >= 1;
  if (range.lo && !range.hi) return diagonal(range.lo) && range.lo.constant <= 0;
  return false;
}

const mentions = (x: IndexExpr, name: string): boolean => x.terms.some((t) => t.atom.kind === "var" && t.atom.name === name);

/** The abstract value of `e` (which varies with r) when the mask `c` is `masked`. */
function step(e: KExpr, at: (id: ExprId) => Abs, c: ExprId, masked: boolean, id: ExprId): Abs {
  if (id === c) return "finite";
  switch (e.op) {
    case "const":
      return classify(e.value);
    case "where": {
      if (e.cond === c) return masked ? at(e.x) : at(e.y);
      const [x, y] = [at(e.x), at(e.y)];
      if (x === y) return x;
      return finiteLike(x) && finiteLike(y) ? "finite" : "any";
    }
    case "neg": {
      const x = at(e.x);
      if (typeof x === "object") return { c: -x.c };
      return x === "neginf" ? "posinf" : x === "posinf" ? "neginf" : x;
    }
    case "add": {
      const [x, y] = [at(e.x), at(e.y)];
      if (x === "any" || y === "any") return "any";
      for (const inf of ["neginf", "posinf"] as const) {
        const other = inf === "neginf" ? "posinf" : "neginf";
        if ((x === inf && y !== other) || (y === inf && x !== other)) return inf;
      }
      if (x === "neginf" || x === "posinf") return "any";
      if (x === "zero") return y;
      if (y === "zero") return x;
      return "finite";
    }
    case "mul": {
      const [x, y] = [at(e.x), at(e.y)];
      for (const [a, b] of [
        [x, y],
        [y, x],
      ] as const) {
        if (a === "zero" && finiteLike(b)) return "zero";
        if ((a === "neginf" || a === "posinf") && typeof b === "object") return (a === "neginf") === b.c > 0 ? "neginf" : "posinf";
      }
      return finiteLike(x) && finiteLike(y) ? "finite" : "any";
    }
    case "max": {
      const [x, y] = [at(e.x), at(e.y)];
      if (x === "neginf") return y;
      if (y === "neginf") return x;
      return finiteLike(x) && finiteLike(y) ? "finite" : "any";
    }
    case "exp2": {
      const x = at(e.x);
      return x === "neginf" ? "zero" : finiteLike(x) ? "finite" : "any";
    }
    case "reduce_sum": {
      const b = at(e.body);
      return b === "zero" ? "zero" : finiteLike(b) ? "finite" : "any";
    }
    case "recip":
    case "sqrt":
    case "log2":
    case "sin":
      return finiteLike(at(e.x)) ? "finite" : "any";
    case "cast":
    case "index":
    case "valid":
    case "load":
    case "rng":
    case "cmplt":
    case "cmpeq":
    case "idiv":
    case "mod":
      return "finite";
    default:
      return "any";
  }
}

/** The values of r where bool `id` holds, as [lo, hi), or undefined where it is no such interval. */
function intervalOf(exprs: readonly KExpr[], id: ExprId, r: string): { lo?: IndexExpr; hi?: IndexExpr } | undefined {
  const e = exprs[id]!;
  if (e.op === "cmplt" || e.op === "cmpeq") {
    const [a, b] = [linear(exprs, e.x), linear(exprs, e.y)];
    if (!a || !b) return undefined;
    const d = addIndex(a, mulIndex(b, -1)); // a - b = coef·r + rest
    const coef = d.terms.find((t) => t.atom.kind === "var" && t.atom.name === r)?.coef;
    if (coef !== 1 && coef !== -1) return undefined;
    const rest = { terms: d.terms.filter((t) => !(t.atom.kind === "var" && t.atom.name === r)), constant: d.constant };
    const at = mulIndex(rest, -coef); // where a = b: r = -rest / coef
    if (e.op === "cmpeq") return { lo: at, hi: addIndex(at, constIndex(1)) };
    return coef === 1 ? { hi: at } : { lo: addIndex(at, constIndex(1)) }; // a < b: r < at, or r > at
  }
  if (e.op === "max" && e.dtype === "bool") {
    // Either holds: the union of two adjacent intervals.
    const [x, y] = [intervalOf(exprs, e.x, r), intervalOf(exprs, e.y, r)];
    if (!x || !y) return undefined;
    for (const [p, q] of [
      [x, y],
      [y, x],
    ] as const)
      if (p.hi && q.lo && indexKey(p.hi) === indexKey(q.lo)) return { ...(p.lo ? { lo: p.lo } : {}), ...(q.hi ? { hi: q.hi } : {}) };
  }
  return undefined;
}

/** An i32 `index` expression or a sum of them with constants, as an index expression. */
function linear(exprs: readonly KExpr[], id: ExprId): IndexExpr | undefined {
  const e = exprs[id]!;
  if (e.op === "index") return e.index;
  if (e.op === "const" && Number.isInteger(e.value)) return constIndex(e.value);
  if (e.op === "add") {
    const [a, b] = [linear(exprs, e.x), linear(exprs, e.y)];
    return a && b ? addIndex(a, b) : undefined;
  }
  return undefined;
}

/** The rest of r's range: [hi, ∞) for [0, hi), [0, lo) for [lo, ∞); undefined for a bounded interval. */
function complement(i: { lo?: IndexExpr; hi?: IndexExpr }): { lo?: IndexExpr; hi?: IndexExpr } | undefined {
  if (i.lo && !i.hi) return { hi: i.lo };
  if (i.hi && !i.lo) return { lo: i.hi };
  return undefined;
}
