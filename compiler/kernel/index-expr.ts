// Symbolic index arithmetic for kernels: integer expressions over loop variables with known
// ranges, kept in a canonical sum-of-terms form and simplified with bounds as they are built,
// so movement chains (reshape/permute/expand/pad/slice/flip) fold into plain affine indices.
//
// Invariants: every constructor returns a simplified expression; equal expressions print
// equally (`indexKey`), which is what hash-consing in the kernel builder relies on.
// Division and modulo are floor division by a positive constant.

import { bug } from "../util/errors.ts";

/** A loop variable ranging over [0, extent). `name` is unique within a kernel. */
export interface IndexVar {
  readonly kind: "var";
  readonly name: string;
  readonly extent: number;
}
/** An opaque integer computed at run time (a gather index), with known bounds. */
export interface DataAtom {
  readonly kind: "data";
  readonly ref: number;
  readonly lo: number;
  readonly hi: number;
}
export interface DivAtom {
  readonly kind: "div";
  readonly x: IndexExpr;
  readonly divisor: number;
}
export interface ModAtom {
  readonly kind: "mod";
  readonly x: IndexExpr;
  readonly divisor: number;
}
export type Atom = IndexVar | DataAtom | DivAtom | ModAtom;

export interface Term {
  readonly atom: Atom;
  readonly coef: number;
}
/** sum(coef * atom) + constant; terms sorted by atom key, no zero coefficients. */
export interface IndexExpr {
  readonly terms: readonly Term[];
  readonly constant: number;
}

/** One conjunct of a validity mask: `x < bound` or `x >= bound`. */
export interface IndexCond {
  readonly x: IndexExpr;
  readonly op: "lt" | "ge";
  readonly bound: number;
}
/** A conjunction; `false` means never valid. Empty means always valid. */
export type IndexPred = readonly IndexCond[] | false;

export const constIndex = (value: number): IndexExpr => ({ terms: [], constant: value });
export const indexVar = (name: string, extent: number): IndexVar => ({ kind: "var", name, extent });

// Keys of expressions and div/mod atoms, computed once per object: both are immutable, and
// normalize, hash-consing and fusion's access maps ask for the same nested keys again and
// again (a big program's compile spent a tenth of its time rebuilding these strings).
const exprKeys = new WeakMap<IndexExpr, string>();
const atomKeys = new WeakMap<DivAtom | ModAtom, string>();

export function atomKey(a: Atom): string {
  switch (a.kind) {
    case "var":
      return a.name;
    case "data":
      return `v${a.ref}`;
    case "div":
    case "mod": {
      let key = atomKeys.get(a);
      if (key === undefined) {
        key = `(${indexKey(a.x)} ${a.kind} ${a.divisor})`;
        atomKeys.set(a, key);
      }
      return key;
    }
  }
}

export function indexKey(e: IndexExpr): string {
  let key = exprKeys.get(e);
  if (key === undefined) {
    // `t1 + 2*t2 + c`, terms in order, the constant last (alone when there are no terms): built in a loop, no closure per term.
    key = "";
    for (const t of e.terms) {
      const atom = atomKey(t.atom);
      key += `${key === "" ? "" : " + "}${t.coef === 1 ? atom : `${t.coef}*${atom}`}`;
    }
    if (e.constant !== 0 || e.terms.length === 0) key += `${key === "" ? "" : " + "}${e.constant}`;
    exprKeys.set(e, key);
  }
  return key;
}

export const predKey = (p: IndexPred): string =>
  p === false ? "false" : p.map((c) => `${indexKey(c.x)} ${c.op === "lt" ? "<" : ">="} ${c.bound}`).join(" && ");

export function isConst(e: IndexExpr): e is IndexExpr & { terms: readonly [] } {
  return e.terms.length === 0;
}

/** The expression if it is exactly one atom with coefficient 1. */
export function asAtom(e: IndexExpr): Atom | undefined {
  return e.terms.length === 1 && e.terms[0]!.coef === 1 && e.constant === 0 ? e.terms[0]!.atom : undefined;
}

export const fromAtom = (a: Atom): IndexExpr => (a.kind === "var" && a.extent === 1 ? constIndex(0) : normalize([{ atom: a, coef: 1 }], 0));

function atomBounds(a: Atom): [number, number] {
  switch (a.kind) {
    case "var":
      return [0, a.extent - 1];
    case "data":
      return [a.lo, a.hi];
    case "div": {
      const [lo, hi] = bounds(a.x);
      return [Math.floor(lo / a.divisor), Math.floor(hi / a.divisor)];
    }
    case "mod": {
      const [lo, hi] = bounds(a.x);
      if (lo >= 0 && hi < a.divisor) return [lo, hi];
      return [0, a.divisor - 1];
    }
  }
}

/**
 * Inclusive [min, max] of `cq·(x div d) + cr·(x mod d)` over x in [xlo, xhi]: the two digits of
 * one x move together (x = d·q + r), so their extremes are at the ends of q's range or next to
 * them (r over all of [0, d) there), not the sum of the two atoms' ranges. block-contraction's
 * overlapping last row block, `6·(b mod 170) + 1018·(b div 170)` for b < 171, spans [0, 1018].
 */
function digitPairBounds(xlo: number, xhi: number, d: number, cq: number, cr: number): [number, number] {
  const qlo = Math.floor(xlo / d);
  const qhi = Math.floor(xhi / d);
  let lo = Infinity;
  let hi = -Infinity;
  for (const q of new Set([qlo, qlo + 1, qhi - 1, qhi])) {
    if (q < qlo || q > qhi) continue;
    const rlo = q === qlo ? xlo - q * d : 0;
    const rhi = q === qhi ? xhi - q * d : d - 1;
    const a = cq * q + cr * rlo;
    const b = cq * q + cr * rhi;
    lo = Math.min(lo, a, b);
    hi = Math.max(hi, a, b);
  }
  return [lo, hi];
}

/** Inclusive [min, max] of an expression over all values of its variables. */
export function bounds(e: IndexExpr): [number, number] {
  let lo = e.constant;
  let hi = e.constant;
  // A div and a mod of the same x by the same divisor are bounded together (digitPairBounds).
  let paired: Set<Term> | undefined;
  if (e.terms.length >= 2 && e.terms.some((t) => t.atom.kind === "mod"))
    for (const m of e.terms) {
      if (m.atom.kind !== "mod") continue;
      const mod = m.atom;
      const d = e.terms.find((t) => t.atom.kind === "div" && t.atom.divisor === mod.divisor && !paired?.has(t) && indexKey(t.atom.x) === indexKey(mod.x));
      if (!d) continue;
      const [xlo, xhi] = bounds(mod.x);
      if (xlo < 0) continue;
      const [plo, phi] = digitPairBounds(xlo, xhi, mod.divisor, d.coef, m.coef);
      lo += plo;
      hi += phi;
      (paired ??= new Set()).add(m).add(d);
    }
  for (const t of e.terms) {
    if (paired?.has(t)) continue;
    const [alo, ahi] = atomBounds(t.atom);
    if (t.coef >= 0) {
      lo += t.coef * alo;
      hi += t.coef * ahi;
    } else {
      lo += t.coef * ahi;
      hi += t.coef * alo;
    }
  }
  return [lo, hi];
}

/**
 * Sorts and merges terms, then recombines `k*c*(x div c) + k*(x mod c)` into `k*x` (also
 * `k*c*(y div a·c) + k*((y div a) mod c)` into `k*(y div a)`, so an unflattened index
 * `9*(f div 9) + 3*((f div 3) mod 3) + (f mod 3)` folds back to `f`).
 */
function normalize(terms: readonly Term[], constant: number): IndexExpr {
  // One term needs no merging, recombination or sorting (the common case: copies and substitutions of single atoms).
  if (terms.length <= 1) {
    const t = terms[0];
    return t === undefined || t.coef === 0 || (t.atom.kind === "var" && t.atom.extent === 1) ? { terms: [], constant } : { terms: [t], constant };
  }
  const byKey = new Map<string, Term>();
  let extra = constant;
  const push = (t: Term): void => {
    if (t.atom.kind === "var" && t.atom.extent === 1) return; // always 0
    const key = atomKey(t.atom);
    const prev = byKey.get(key);
    const coef = (prev?.coef ?? 0) + t.coef;
    if (coef === 0) byKey.delete(key);
    else byKey.set(key, { atom: t.atom, coef });
  };
  for (const t of terms) push(t);
  // Recombination: scan for div/mod pairs over the same x and divisor.
  let changed = true;
  while (changed) {
    changed = false;
    for (const [key, t] of byKey) {
      if (t.atom.kind !== "mod") continue;
      // x div c, canonically: for x = (y div a) that is (y div a·c) (nested divisions merge)
      const inner = asAtom(t.atom.x);
      const divKey = inner?.kind === "div" ? `(${indexKey(inner.x)} div ${inner.divisor * t.atom.divisor})` : `(${indexKey(t.atom.x)} div ${t.atom.divisor})`;
      const d = byKey.get(divKey);
      if (!d || d.coef !== t.coef * t.atom.divisor) continue;
      byKey.delete(key);
      byKey.delete(divKey);
      for (const inner of t.atom.x.terms) push({ atom: inner.atom, coef: inner.coef * t.coef });
      extra += t.atom.x.constant * t.coef;
      changed = true;
      break;
    }
  }
  const sorted = [...byKey.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  return { terms: sorted, constant: extra };
}

export function addIndex(...xs: readonly IndexExpr[]): IndexExpr {
  const terms: Term[] = [];
  let constant = 0;
  for (const x of xs) {
    terms.push(...x.terms);
    constant += x.constant;
  }
  return normalize(terms, constant);
}

export function mulIndex(x: IndexExpr, c: number): IndexExpr {
  if (!Number.isInteger(c)) bug(`index: non-integer coefficient ${c}`);
  if (c === 0) return constIndex(0);
  return normalize(
    x.terms.map((t) => ({ atom: t.atom, coef: t.coef * c })),
    x.constant * c,
  );
}

/** floor(x / c) for a positive integer c. */
export function divIndex(x: IndexExpr, c: number): IndexExpr {
  if (!Number.isInteger(c) || c <= 0) bug(`index: bad divisor ${c}`);
  if (c === 1) return x;
  // Pull out the terms (and constant part) that are multiples of c: floor((c*A + R)/c) = A + floor(R/c).
  const pulled: Term[] = [];
  const rest: Term[] = [];
  for (const t of x.terms) (t.coef % c === 0 ? pulled : rest).push(t.coef % c === 0 ? { atom: t.atom, coef: t.coef / c } : t);
  // Pull out of the constant whatever keeps the remainder's lower bound in [0, c): a canonical
  // choice that also keeps the remainder non-negative (cheaper division on every target).
  const restLo = bounds(normalize(rest, x.constant))[0];
  const constQuot = Math.floor(restLo / c);
  const restExpr = normalize(rest, x.constant - constQuot * c);
  const base = normalize(pulled, constQuot);
  const [lo, hi] = bounds(restExpr);
  if (Math.floor(lo / c) === Math.floor(hi / c)) return addIndex(base, constIndex(Math.floor(lo / c)));
  const reduced = reduceCoefficients(x, c);
  if (reduced) {
    const [rlo, rhi] = bounds(reduced.rest);
    if (Math.floor(rlo / c) === Math.floor(rhi / c)) return addIndex(reduced.quotient, constIndex(Math.floor(rlo / c)));
  }
  const split = splitByFactor(restExpr, c);
  if (split) return addIndex(base, divIndex(split.high, c / split.factor));
  // Nested division: floor(floor(y/a)/b) = floor(y/(a*b)).
  const atom = asAtom(restExpr);
  if (atom?.kind === "div") return addIndex(base, divIndex(atom.x, atom.divisor * c));
  // A common factor g of every term and c: floor(g*y/c) = floor(y/(c/g)) when the constant part is 0.
  if (restExpr.constant === 0) {
    const g = restExpr.terms.reduce((acc, t) => gcd(acc, Math.abs(t.coef)), c);
    if (g > 1) return addIndex(base, divIndex(mulIndexExact(restExpr, g), c / g));
  }
  return addIndex(base, fromAtom({ kind: "div", x: restExpr, divisor: c }));
}

/** x mod c (floor modulo) for a positive integer c. */
export function modIndex(x: IndexExpr, c: number): IndexExpr {
  if (!Number.isInteger(c) || c <= 0) bug(`index: bad divisor ${c}`);
  if (c === 1) return constIndex(0);
  const rest = x.terms.filter((t) => t.coef % c !== 0);
  const restLo = bounds(normalize(rest, x.constant))[0];
  const restExpr = normalize(rest, x.constant - Math.floor(restLo / c) * c);
  const [lo, hi] = bounds(restExpr);
  if (Math.floor(lo / c) === Math.floor(hi / c)) return addIndex(restExpr, constIndex(-Math.floor(lo / c) * c));
  const reduced = reduceCoefficients(x, c);
  if (reduced) {
    const [rlo, rhi] = bounds(reduced.rest);
    if (Math.floor(rlo / c) === Math.floor(rhi / c)) return addIndex(reduced.rest, constIndex(-Math.floor(rlo / c) * c));
  }
  const split = splitByFactor(restExpr, c);
  if (split) return addIndex(mulIndex(modIndex(split.high, c / split.factor), split.factor), split.low);
  const atom = asAtom(restExpr);
  // (y mod a) mod c = y mod c when c divides a.
  if (atom?.kind === "mod" && atom.divisor % c === 0) return modIndex(atom.x, c);
  if (restExpr.constant === 0) {
    const g = restExpr.terms.reduce((acc, t) => gcd(acc, Math.abs(t.coef)), c);
    // (g*y) mod c = g * (y mod (c/g)).
    if (g > 1) return mulIndex(modIndex(mulIndexExact(restExpr, g), c / g), g);
  }
  return fromAtom({ kind: "mod", x: restExpr, divisor: c });
}

/**
 * Writes x = c*quotient + rest with every coefficient of rest in [0, c): (11a + b) mod 10 is
 * (a + b) mod 10, which bounds may then resolve (the index of a conv window). Undefined when
 * no coefficient changes.
 */
function reduceCoefficients(x: IndexExpr, c: number): { quotient: IndexExpr; rest: IndexExpr } | undefined {
  if (x.terms.every((t) => t.coef >= 0 && t.coef < c)) return undefined;
  const quotient: Term[] = [];
  const rest: Term[] = [];
  for (const t of x.terms) {
    const q = Math.floor(t.coef / c);
    if (q !== 0) quotient.push({ atom: t.atom, coef: q });
    if (t.coef - q * c !== 0) rest.push({ atom: t.atom, coef: t.coef - q * c });
  }
  return { quotient: normalize(quotient, 0), rest: normalize(rest, x.constant) };
}

/**
 * Writes x = g*high + low for the largest factor g of c (g > 1) such that low, the terms whose
 * coefficients g does not divide plus the constant, lies in [0, g). Then floor(x / c) =
 * floor(high / (c/g)) and x mod c = g*(high mod (c/g)) + low: a row split of a reshape.
 */
function splitByFactor(x: IndexExpr, c: number): { factor: number; high: IndexExpr; low: IndexExpr } | undefined {
  for (let g = c; g > 1; g--) {
    if (c % g !== 0) continue;
    const highTerms = x.terms.filter((t) => t.coef % g === 0);
    if (highTerms.length === 0) continue;
    const lowTerms = x.terms.filter((t) => t.coef % g !== 0);
    const q = Math.floor(bounds(normalize(lowTerms, x.constant))[0] / g);
    const low = normalize(lowTerms, x.constant - q * g);
    const [lo, hi] = bounds(low);
    if (lo < 0 || hi >= g) continue;
    const high = normalize(
      highTerms.map((t) => ({ atom: t.atom, coef: t.coef / g })),
      q,
    );
    return { factor: g, high, low };
  }
  return undefined;
}

/** Divides every coefficient by g (which divides them all). */
function mulIndexExact(x: IndexExpr, g: number): IndexExpr {
  return normalize(
    x.terms.map((t) => ({ atom: t.atom, coef: t.coef / g })),
    x.constant / g,
  );
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** A single condition, simplified with bounds to true (`[]`), false, or itself. */
export function cond(x: IndexExpr, op: "lt" | "ge", bound: number): IndexPred {
  const [lo, hi] = bounds(x);
  if (op === "lt") {
    if (hi < bound) return [];
    if (lo >= bound) return false;
  } else {
    if (lo >= bound) return [];
    if (hi < bound) return false;
  }
  return [{ x, op, bound }];
}

export function andPred(a: IndexPred, b: IndexPred): IndexPred {
  if (a === false || b === false) return false;
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const seen = new Map<string, IndexCond>();
  for (const c of [...a, ...b]) seen.set(predKey([c]), c);
  return [...seen.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map((e) => e[1]);
}

/** 0 <= x < extent, simplified. */
export const inRange = (x: IndexExpr, extent: number): IndexPred => andPred(cond(x, "ge", 0), cond(x, "lt", extent));

/** Replaces variables by expressions (used to re-index a loop body, e.g. when unrolling). */
/** `mapRef` renames the expressions data atoms refer to (when a body is copied). */
export function substitute(e: IndexExpr, map: ReadonlyMap<string, IndexExpr>, mapRef?: (ref: number) => number): IndexExpr {
  // The terms of every substituted atom, scaled, normalized once (each part is already normal:
  // normalizing them one by one first, as addIndex of mulIndexes would, gives the same result).
  const terms: Term[] = [];
  let constant = e.constant;
  for (const t of e.terms) {
    const a = t.atom;
    if (a.kind === "var" && !map.has(a.name)) terms.push(t);
    else if (a.kind === "data") terms.push(mapRef ? { atom: { ...a, ref: mapRef(a.ref) }, coef: t.coef } : t);
    else {
      const x = a.kind === "var" ? map.get(a.name)! : substituteAtom(a, map, mapRef);
      for (const u of x.terms) terms.push({ atom: u.atom, coef: u.coef * t.coef });
      constant += x.constant * t.coef;
    }
  }
  return normalize(terms, constant);
}

/**
 * A family of substitutions that differ only in constant offsets of the values some variables
 * get: a register block's copies of a section body (row := base + r, col := base' + 4c, one
 * copy per r and c). substitute(e, base + offsets) is substitute(e, base) with its constant
 * moved by Σ coef·offset over e's own terms in those variables, wherever they appear in e only
 * as plain terms (normalize merges and orders terms the same whatever the constant): so each
 * expression is substituted once, not once per copy. An expression with such a variable inside
 * a division or remainder, or with a data atom (renumbered per copy), is substituted in full.
 */
export class ShiftedSubstitution {
  private readonly prepared = new WeakMap<IndexExpr, { readonly at0: IndexExpr; readonly coefs: readonly number[] } | null>();
  /** `base`: the substitution at offsets 0; `shifted`: the variables whose values the offsets move. */
  constructor(
    private readonly base: ReadonlyMap<string, IndexExpr>,
    private readonly shifted: readonly string[],
  ) {}

  /** substitute(e, map, mapRef), where `map` is `base` with shifted[i] moved by offsets[i]. */
  apply(e: IndexExpr, offsets: readonly number[], map: ReadonlyMap<string, IndexExpr>, mapRef?: (ref: number) => number): IndexExpr {
    let p = this.prepared.get(e);
    if (p === undefined) {
      p = this.prepare(e);
      this.prepared.set(e, p);
    }
    if (p === null) return substitute(e, map, mapRef);
    let constant = p.at0.constant;
    for (let i = 0; i < offsets.length; i++) constant += p.coefs[i]! * offsets[i]!;
    return constant === p.at0.constant ? p.at0 : { terms: p.at0.terms, constant };
  }

  private prepare(e: IndexExpr): { readonly at0: IndexExpr; readonly coefs: readonly number[] } | null {
    const coefs = this.shifted.map(() => 0);
    for (const t of e.terms) {
      const a = t.atom;
      if (a.kind === "data") return null;
      if (a.kind === "var") {
        const i = this.shifted.indexOf(a.name);
        if (i >= 0) coefs[i]! += t.coef;
        continue;
      }
      if (indexDataRefs(a.x).size > 0) return null;
      const inner = indexVars(a.x);
      if (this.shifted.some((v) => inner.has(v))) return null;
    }
    return { at0: substitute(e, this.base), coefs };
  }
}

export function substitutePred(p: IndexPred, map: ReadonlyMap<string, IndexExpr>, mapRef?: (ref: number) => number): IndexPred {
  if (p === false) return false;
  let out: IndexPred = [];
  for (const c of p) out = andPred(out, cond(substitute(c.x, map, mapRef), c.op, c.bound));
  return out;
}

function substituteAtom(a: Atom, map: ReadonlyMap<string, IndexExpr>, mapRef?: (ref: number) => number): IndexExpr {
  switch (a.kind) {
    case "var":
      return map.get(a.name) ?? fromAtom(a);
    case "data":
      return fromAtom(mapRef ? { ...a, ref: mapRef(a.ref) } : a);
    case "div":
      return divIndex(substitute(a.x, map, mapRef), a.divisor);
    case "mod":
      return modIndex(substitute(a.x, map, mapRef), a.divisor);
  }
}

/** Names of the loop variables an expression reads (data atoms excluded). */
export function indexVars(e: IndexExpr, into = new Set<string>()): Set<string> {
  for (const t of e.terms) atomVars(t.atom, into);
  return into;
}

function atomVars(a: Atom, into: Set<string>): void {
  if (a.kind === "var") into.add(a.name);
  else if (a.kind === "div" || a.kind === "mod") indexVars(a.x, into);
}

/** Data refs (gather values) an expression reads. */
export function indexDataRefs(e: IndexExpr, into = new Set<number>()): Set<number> {
  for (const t of e.terms) {
    const a = t.atom;
    if (a.kind === "data") into.add(a.ref);
    else if (a.kind === "div" || a.kind === "mod") indexDataRefs(a.x, into);
  }
  return into;
}

/** Evaluates with concrete variable values (tests and the fuzzer of the simplifier). */
export function evalIndex(e: IndexExpr, env: (a: IndexVar | DataAtom) => number): number {
  let v = e.constant;
  for (const t of e.terms) v += t.coef * evalAtom(t.atom, env);
  return v;
}

function evalAtom(a: Atom, env: (a: IndexVar | DataAtom) => number): number {
  switch (a.kind) {
    case "var":
    case "data":
      return env(a);
    case "div":
      return Math.floor(evalIndex(a.x, env) / a.divisor);
    case "mod": {
      const x = evalIndex(a.x, env);
      return ((x % a.divisor) + a.divisor) % a.divisor;
    }
  }
}

export function evalPred(p: IndexPred, env: (a: IndexVar | DataAtom) => number): boolean {
  if (p === false) return false;
  return p.every((c) => {
    const x = evalIndex(c.x, env);
    return c.op === "lt" ? x < c.bound : x >= c.bound;
  });
}

/** Row-major flat offset of a multi-index into a tensor of `shape`. */
export function flatIndex(index: readonly IndexExpr[], shape: readonly number[]): IndexExpr {
  let stride = 1;
  const parts: IndexExpr[] = [];
  for (let i = shape.length - 1; i >= 0; i--) {
    parts.push(mulIndex(index[i]!, stride));
    stride *= shape[i]!;
  }
  return addIndex(...parts);
}

/** Splits a flat offset back into a row-major multi-index of `shape`. */
export function unflattenIndex(flat: IndexExpr, shape: readonly number[]): IndexExpr[] {
  const out: IndexExpr[] = new Array(shape.length);
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i]!;
    out[i] = d === 1 ? constIndex(0) : i === 0 ? divIndex(flat, stride) : modIndex(divIndex(flat, stride), d);
    stride *= d;
  }
  return out;
}

/** The coefficient of variable `name` when it appears only as a plain term; undefined if it also hides in div/mod/data atoms. */
export function linearStride(e: IndexExpr, name: string): number | undefined {
  let stride = 0;
  for (const t of e.terms) {
    if (t.atom.kind === "var") {
      if (t.atom.name === name) stride = t.coef;
    } else if (atomMentions(t.atom, name)) return undefined;
  }
  return stride;
}

function atomMentions(a: Atom, name: string): boolean {
  switch (a.kind) {
    case "var":
      return a.name === name;
    case "data":
      return false;
    case "div":
    case "mod":
      return a.x.terms.some((t) => atomMentions(t.atom, name));
  }
}

/**
 * `e` where `pred` holds (a masked load's index): a top-level `x mod m` or `x div m` term whose
 * x the predicate confines to one multiple of m (x − y constant for a y it bounds on both
 * sides) becomes affine — the wrap-around of a padded window's `(h + kh + 13) mod 14` is
 * `h + kh − 1` wherever the load happens. Where `pred` fails the load reads nothing, so the
 * value there does not matter.
 */
export function simplifyUnderPred(e: IndexExpr, pred: IndexPred): IndexExpr {
  if (pred === false || pred.length === 0) return e;
  const range = (x: IndexExpr): [number, number] | undefined => {
    let lo = -Infinity;
    let hi = Infinity;
    for (const c of pred) {
      const d = addIndex(x, mulIndex(c.x, -1));
      if (!isConst(d)) continue;
      if (c.op === "ge") lo = Math.max(lo, c.bound + d.constant);
      else hi = Math.min(hi, c.bound - 1 + d.constant);
    }
    const [blo, bhi] = bounds(x);
    lo = Math.max(lo, blo);
    hi = Math.min(hi, bhi);
    return lo <= hi ? [lo, hi] : undefined;
  };
  let changed = false;
  const parts = e.terms.map((t): IndexExpr => {
    const a = t.atom;
    if (a.kind !== "div" && a.kind !== "mod") return mulIndex(fromAtom(a), t.coef);
    const r = range(a.x);
    if (!r || Math.floor(r[0] / a.divisor) !== Math.floor(r[1] / a.divisor)) return mulIndex(fromAtom(a), t.coef);
    changed = true;
    const q = Math.floor(r[0] / a.divisor);
    return mulIndex(a.kind === "div" ? constIndex(q) : addIndex(a.x, constIndex(-q * a.divisor)), t.coef);
  });
  return changed ? addIndex(...parts, constIndex(e.constant)) : e;
}

/**
 * The mixed-radix digits variable `v` is used through in `exprs`' div/mod atoms, outermost
 * first (`r < 12544` read as r div 196, (r div 14) mod 14, r mod 14 → [64, 14, 14]), or
 * undefined when those divisors do not nest (or there are none).
 */
export function digitExtents(v: IndexVar, exprs: readonly IndexExpr[]): number[] | undefined {
  const cuts = new Set<number>();
  const isV = (x: IndexExpr): boolean => asAtom(x)?.kind === "var" && (asAtom(x) as IndexVar).name === v.name;
  const visit = (x: IndexExpr): void => {
    for (const t of x.terms) {
      const a = t.atom;
      if (a.kind !== "div" && a.kind !== "mod") continue;
      if (isV(a.x)) cuts.add(a.divisor);
      const inner = asAtom(a.x);
      if (a.kind === "mod" && inner?.kind === "div" && isV(inner.x)) cuts.add(inner.divisor).add(inner.divisor * a.divisor);
      visit(a.x);
    }
  };
  for (const x of exprs) visit(x);
  const sorted = [...cuts].filter((c) => c > 1 && c < v.extent).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const chain = [1, ...sorted, v.extent];
  for (let i = 1; i < chain.length; i++) if (chain[i]! % chain[i - 1]! !== 0) return undefined;
  const digits: number[] = [];
  for (let i = chain.length - 1; i > 0; i--) digits.push(chain[i]! / chain[i - 1]!);
  return digits;
}
