// Which domain variable a 4-lane SIMD target (wasm) vectorizes: a kernel-IR rewrite that the
// end of wasm's `block-contraction` pass runs, and the cost the emitter consults. The emitter
// vectorizes the innermost domain loop; a section whose stores run along it but whose loads
// stride across it (a pool reading a channel-last conv output, an im2col copy) spends most of
// its time on per-lane accesses, while another variable would let the loads be whole vectors
// and pay only for a scattered store. The rewrite moves the cheapest variable innermost (never
// the first real one, which threads split), by a rough instruction count of its memory
// accesses per four iterations (laneAccessCost: an address, the accesses, the mask checks; a
// contiguous access is one, a strided one four from one address, a per-lane one (div/mod of
// the variable, a gathered index) costs what scalar code does); loads inside reductions
// count once per reduced element.

import { asAtom, indexDataRefs, indexVars, linearStride, type IndexExpr, type IndexPred, type IndexVar } from "./index-expr.ts";
import { exprOperands, isReduceExpr, type KExpr, type KernelProgram, type Section } from "./kernel-ir.ts";

const LANES = 4;
/** Move a variable innermost only when it makes the section's accesses this much cheaper. */
const GAIN = 0.7;

export function chooseLaneAxes(p: KernelProgram): KernelProgram {
  return { ...p, kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map(chooseLaneAxis) })) };
}

function chooseLaneAxis(s: Section): Section {
  if (s.tile || s.form || (s.dots ?? []).length > 0) return s;
  const real = s.domain.filter((v) => v.extent > 1);
  if (real.length < 3) return s;
  if (hasStreamingReduce(s)) return s;
  const innermost = real[real.length - 1]!;
  const all = accesses(s); // once for every candidate's cost
  const current = regionCostOf(s, innermost, all);
  let best: { v: IndexVar; cost: number } | undefined;
  for (const v of real.slice(1, -1)) {
    if (v.extent < LANES) continue;
    const cost = vectorCostOf(s, v, all);
    if (!best || cost < best.cost) best = { v, cost };
  }
  if (!best || best.cost >= GAIN * current) return s;
  const domain = [...s.domain.filter((v) => v !== best.v), best.v];
  return { ...s, domain };
}

/** A reduction streaming along its own innermost variable: the emitter vectorizes that (region B) instead. */
function hasStreamingReduce(s: Section): boolean {
  return s.exprs.some((e) => {
    if (!isReduceExpr(e)) return false;
    const last = e.vars.filter((v) => v.extent > 1).at(-1);
    return (
      last !== undefined &&
      last.extent >= 2 * LANES &&
      s.exprs.some((l) => l.op === "load" && linearStride(l.index, last.name) === 1 && indexVars(l.index).has(last.name))
    );
  });
}

interface Access {
  readonly index: IndexExpr;
  readonly valid: IndexPred;
  /** How many times one domain point performs it (the reduced elements around a load). */
  readonly weight: number;
}

function accesses(s: Section): Access[] {
  const live = new Array<boolean>(s.exprs.length).fill(false);
  for (const st of s.stores) live[st.value] = true;
  for (let id = s.exprs.length - 1; id >= 0; id--) if (live[id]) for (const o of exprOperands(s.exprs[id]!)) live[o] = true;
  const reduced = new Map<string, number>();
  for (const e of s.exprs) if (isReduceExpr(e)) for (const v of e.vars) reduced.set(v.name, v.extent);
  const out: Access[] = [];
  s.exprs.forEach((e: KExpr, id) => {
    if (!live[id] || e.op !== "load") return;
    let weight = 1;
    for (const name of indexVars(e.index)) weight *= reduced.get(name) ?? 1;
    out.push({ index: e.index, valid: e.valid, weight });
  });
  for (const st of s.stores) out.push({ index: st.index, valid: [], weight: 1 });
  return out;
}

/**
 * Cost of one access per four iterations of `v` as the lane variable, in rough instructions:
 * an address is 2, a memory access 1, a mask condition 1 per lane it is evaluated for.
 */
function laneAccessCost(a: Access, v: string, aligned: boolean): number {
  if (a.valid === false) return 0;
  const stride = linearStride(a.index, v);
  const conds = a.valid.length;
  const maskVaries = a.valid.some((c) => indexVars(c.x).has(v));
  const maskLinear = a.valid.every((c) => linearStride(c.x, v) !== undefined);
  const gathered = [...indexDataRefs(a.index)].length > 0;
  // a load at v div 2 (div 4): two splat loads and a shuffle (one splat) from one address
  if (aligned && !gathered && !maskVaries && laneDivision(a.index, v)) return conds + (laneDivision(a.index, v)!.divisor === 4 ? 3 : 5);
  if (stride === undefined || stride < 0 || gathered || !maskLinear) return scalarAccessCost(a);
  // a lane-varying mask is checked on lanes 0 and 3
  const mask = maskVaries ? 2 * conds : conds;
  return mask + (stride <= 1 ? 3 : 2 + LANES);
}

/** Four iterations of scalar code (or of per-lane accesses): an address, an access and the mask each time. */
const scalarAccessCost = (a: Access): number => LANES * (3 + (a.valid === false ? 0 : a.valid.length));

/** Accesses per four iterations of `v` in the SIMD region, the scalar remainder of an extent not a multiple of 4 included. */
export function vectorCost(s: Section, v: IndexVar): number {
  return vectorCostOf(s, v, accesses(s));
}

function vectorCostOf(s: Section, v: IndexVar, all: readonly Access[]): number {
  // the vector loop over any variable but the one threads split starts at 0, so its steps start at multiples of 4
  const aligned = s.domain.find((x) => x.extent > 1) !== v;
  const vector = all.reduce((sum, a) => sum + a.weight * laneAccessCost(a, v.name, aligned), 0);
  const scalar = scalarCost(all);
  const covered = Math.floor(v.extent / LANES) * LANES;
  const frac = covered / v.extent;
  return frac * vector + (1 - frac) * scalar;
}

const scalarCost = (all: readonly Access[]): number => all.reduce((sum, a) => sum + a.weight * scalarAccessCost(a), 0);

/**
 * What the emitter's choice for the innermost variable costs: the SIMD region when every store
 * is contiguous in it (as before this pass) or when vectorizing is cheaper than scalar code,
 * scalar code otherwise.
 */
export function regionCost(s: Section, v: IndexVar): number {
  return regionCostOf(s, v, accesses(s));
}

function regionCostOf(s: Section, v: IndexVar, all: readonly Access[]): number {
  if (v.extent < LANES) return scalarCost(all);
  return Math.min(vectorCostOf(s, v, all), s.stores.every((st) => linearStride(st.index, v.name) === 1) ? Infinity : scalarCost(all));
}

/** Whether region A over innermost `v` pays although some store is not contiguous in it. */
export function vectorPaysWithScatter(s: Section, v: IndexVar): boolean {
  return v.extent >= LANES && vectorCost(s, v) < scalarCost(accesses(s));
}

/**
 * How `index` reads the lane variable `v` when it does so only as coef·(v div d), d = 2 or 4
 * (a 2×2 pool's gradient reading the pooled value at w div 2), else undefined. Four lanes
 * from a multiple of 4 then read two elements, e, e, e + coef, e + coef (d = 2), or one (d = 4):
 * the wasm emitter loads them as two splats and a shuffle, or one splat, from one address.
 */
export function laneDivision(index: IndexExpr, v: string): { readonly divisor: 2 | 4; readonly coef: number } | undefined {
  let found: { divisor: 2 | 4; coef: number } | undefined;
  for (const t of index.terms) {
    const a = t.atom;
    if (a.kind === "var") {
      if (a.name === v) return undefined;
      continue;
    }
    if (a.kind === "data") continue;
    const x = asAtom(a.x);
    if (a.kind === "div" && (a.divisor === 2 || a.divisor === 4) && x?.kind === "var" && x.name === v && t.coef > 0 && !found) {
      found = { divisor: a.divisor, coef: t.coef };
      continue;
    }
    if (indexVars(a.x).has(v)) return undefined;
  }
  return found;
}
