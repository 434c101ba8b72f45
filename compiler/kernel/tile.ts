// Register tiling of contractions, expressed in the kernel IR so every target inherits it:
// the two innermost domain loops step by a tile (up to 4x4) and the section body is copied
// once per tile position with `o := tile*o + offset`. Copies of a reduction keep their loop
// variables, so a target's scheduler runs them in one loop (16 accumulators, 4+4 loads per
// 16 multiply-adds for a matmul) — the blocked matmul of issue #4.

import { hasBinaryOp } from "../ir/types.ts";
import { assertNever, bug } from "../util/errors.ts";
import { addIndex, constIndex, fromAtom, indexVar, mulIndex, substitute, substitutePred, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { SectionBuilder, sectionSource, type ExprId, type KExpr, type KernelProgram, type Section } from "./kernel-ir.ts";

const TILE_SIZES = [4, 2, 1];

const pickTile = (extent: number): number => TILE_SIZES.find((t) => extent % t === 0 && extent >= t) ?? 1;

/** Register-tiles every section holding a contraction (a `dot` fact); others stay as they are. */
export function tileProgram(p: KernelProgram): KernelProgram {
  return { ...p, kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map((s) => (s.dots?.length && !s.tile && !s.form ? tileSection(s) : s)) })) };
}

export function tileSection(s: Section): Section {
  const rank = s.domain.length;
  if (rank < 2) return s;
  const rowVar = s.domain[rank - 2]!;
  const colVar = s.domain[rank - 1]!;
  const rows = pickTile(rowVar.extent);
  const cols = pickTile(colVar.extent);
  if (rows * cols === 1) return s;
  const newRow = indexVar(rowVar.name, rowVar.extent / rows);
  const newCol = indexVar(colVar.name, colVar.extent / cols);
  const domain = [...s.domain.slice(0, rank - 2), newRow, newCol];
  const sb = new SectionBuilder(domain);
  for (let u = 0; u < rows; u++)
    for (let v = 0; v < cols; v++) {
      const varMap = new Map<string, IndexExpr>([
        [rowVar.name, addIndex(mulIndex(fromAtom(newRow), rows), constIndex(u))],
        [colVar.name, addIndex(mulIndex(fromAtom(newCol), cols), constIndex(v))],
      ]);
      const ids = copySectionBody(s, sb, varMap);
      for (const st of s.stores) sb.store(st.buffer, substitute(st.index, varMap), ids[st.value]!);
    }
  return { ...sb.build({ rowVar: rowVar.name, colVar: colVar.name, rows, cols }), ...sectionSource(s) };
}

/** substitute's signature (compiler/kernel/index-expr.ts): how copyExprs maps an index. */
export type IndexSubstitute = (e: IndexExpr, map: ReadonlyMap<string, IndexExpr>, mapRef?: (ref: number) => number) => IndexExpr;

/** Re-adds a section's expressions and contraction facts to `sb` with variables substituted; returns the new id of each old id. */
export function copySectionBody(s: Section, sb: SectionBuilder, varMap: ReadonlyMap<string, IndexExpr>, substituteIndex?: IndexSubstitute): ExprId[] {
  const ids = copyExprs(s.exprs, sb, varMap, undefined, undefined, substituteIndex);
  for (const d of s.dots ?? []) sb.markDot(ids[d.reduce]!, ids[d.lhs]!, ids[d.rhs]!);
  return ids;
}

/**
 * Re-adds `exprs` (those in `only`, when given: a closed set) to `sb` with variables
 * substituted — a reduction's own variables too, where `varMap` maps one to another variable;
 * returns the new id of each old id.
 */
export function copyExprs(
  exprs: readonly KExpr[],
  sb: SectionBuilder,
  varMap: ReadonlyMap<string, IndexExpr>,
  only?: ReadonlySet<ExprId>,
  /** Called with each copied expression's old and new id; what it returns stands for the old id from then on. */
  after?: (id: ExprId, copied: ExprId) => ExprId,
  /** What substitute(index, varMap, mapRef) gives, where the caller knows it faster (ShiftedSubstitution). */
  substituteIndex: IndexSubstitute = substitute,
): ExprId[] {
  const ids: ExprId[] = [];
  const ref = (id: number): number => ids[id] ?? bug(`tile: expr ${id} used before definition`);
  const ownVars = (vars: readonly IndexVar[]): readonly IndexVar[] =>
    vars.map((v) => {
      const to = varMap.get(v.name);
      const term = to && to.constant === 0 && to.terms.length === 1 ? to.terms[0]! : undefined;
      return term && term.coef === 1 && term.atom.kind === "var" ? term.atom : v;
    });
  for (const [id, e] of exprs.entries()) {
    if (only && !only.has(id)) {
      ids.push(-1);
      continue;
    }
    let copy: KExpr;
    switch (e.op) {
      case "load":
        copy = { ...e, index: substituteIndex(e.index, varMap, ref), valid: substitutePred(e.valid, varMap, ref) };
        break;
      case "index":
        copy = { ...e, index: substituteIndex(e.index, varMap, ref) };
        break;
      case "valid":
        copy = { ...e, pred: substitutePred(e.pred, varMap, ref) };
        break;
      case "rng":
        copy = { ...e, seed: ref(e.seed), counter: substituteIndex(e.counter, varMap, ref) };
        break;
      case "const":
        copy = e;
        break;
      case "reduce_sum":
      case "reduce_max":
        copy = { ...e, vars: ownVars(e.vars), body: ref(e.body) };
        break;
      case "softmax_sum":
        copy = { ...e, vars: ownVars(e.vars), score: ref(e.score), value: ref(e.value) };
        break;
      case "softmax_max":
      case "softmax_norm":
        copy = { ...e, vars: ownVars(e.vars), score: ref(e.score) };
        break;
      case "where":
        copy = { ...e, cond: ref(e.cond), x: ref(e.x), y: ref(e.y) };
        break;
      case "cast":
      case "neg":
      case "exp2":
      case "log2":
      case "sin":
      case "sqrt":
      case "recip":
        copy = { ...e, x: ref(e.x) };
        break;
      default:
        if (!hasBinaryOp(e)) return assertNever(e, "kernel expr");
        copy = { ...e, x: ref(e.x), y: ref(e.y) };
    }
    const added = sb.add(copy);
    ids.push(after ? after(id, added) : added);
  }
  return ids;
}
