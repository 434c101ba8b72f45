// Tensor-core contractions: a 16-bit (f16 or bf16) matmul accumulated in f32 — the mixed-precision
// form, `a.float().matmul(b.float())` on 16-bit tensors — runs one warp per 16x8 output tile,
// each 16-deep step of k one `mma.sync.aligned.m16n8k16` (PTX, sm_80 and later) on fragments the
// lanes load as the PTX ISA lays them out. This module only decides whether a section fits and
// where its operands are; render-cuda.ts writes the kernel and the prelude has kiln_mma_*.
//
// Fragment layout of m16n8k16 (g = lane / 4, t = lane % 4), element j of a lane:
//   A (16x16, row-major), 8 halves: row g + 8 * ((j >> 1) & 1), col 2t + (j & 1) + 8 * (j >> 2)
//   B (16x8, col-major), 4 halves:  row (k) 2t + (j & 1) + 8 * (j >> 1), col g
//   C (16x8, f32), 4 floats:        row g + 8 * (j >> 1), col 2t + (j & 1)
// Element pairs (0,1), (2,3)… share a 32-bit register, the even one in the low half.

import { exprOwnVars, operandClosure, type ExprId, type Section } from "../../compiler/kernel/kernel-ir.ts";
import type { IndexVar } from "../../compiler/kernel/index-expr.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { halfOf, type DType } from "../../compiler/ir/dtype.ts";

export const MMA_M = 16;
export const MMA_N = 8;
export const MMA_K = 16;

export interface MmaPlan {
  /** The point-level reduce item whose loop the mma steps replace. */
  readonly item: Extract<ScheduleItem, { kind: "reduce" }>;
  readonly reduce: ExprId;
  readonly rowVar: IndexVar;
  readonly colVar: IndexVar;
  readonly kVar: IndexVar;
  /** The operands' 16-bit format (both sides the same). */
  readonly format: "f16" | "bf16";
  /** The 16-bit values multiplied (each side's cast operand) and the expressions computing each. */
  readonly lhs: { readonly value: ExprId; readonly ids: readonly ExprId[] };
  readonly rhs: { readonly value: ExprId; readonly ids: readonly ExprId[] };
}

/** The 16-bit value an f32 operand widens (a cast from f16/bf16), else undefined. */
function widened(s: Section, id: ExprId): { value: ExprId; format: DType } | undefined {
  const e = s.exprs[id]!;
  if (e.op !== "cast" || e.dtype !== "f32") return undefined;
  const from = s.exprs[e.x]!.dtype;
  return halfOf(from) !== undefined ? { value: e.x, format: from } : undefined;
}

/**
 * Whether a section's contraction has the mma form's shape and types (its `dot` fact: a 2-D
 * m x n domain, an f32 sum over one k of mul(lhs, rhs), each side a widened 16-bit value of the
 * same format, M, N, K multiples of 16, 8, 16). CUDA's tile pass leaves such sections untiled.
 */
export function fitsMma(s: Section): boolean {
  if (s.dots?.length !== 1 || s.domain.length !== 2 || s.tile) return false;
  const [rowVar, colVar] = s.domain as [IndexVar, IndexVar];
  if (rowVar.extent % MMA_M !== 0 || colVar.extent % MMA_N !== 0) return false;
  const dot = s.dots[0]!;
  const r = s.exprs[dot.reduce]!;
  if (r.op !== "reduce_sum" || r.dtype !== "f32" || r.vars.length !== 1 || r.vars[0]!.extent % MMA_K !== 0) return false;
  const product = s.exprs[r.body]!;
  if (product.op !== "mul" || product.dtype !== "f32") return false;
  const a = widened(s, dot.lhs);
  const b = widened(s, dot.rhs);
  return a !== undefined && b !== undefined && a.format === b.format;
}

/**
 * The plan for a section, or undefined: a 2-D contraction (its `dot` fact) m x n over one k,
 * both domain loops thread-bound, the reduction an f32 sum of mul(lhs, rhs) where each side is
 * a 16-bit value widened to f32 (the same format both sides), lhs reading only (m, k) and rhs
 * only (k, n), and M, N, K multiples of 16, 8, 16.
 */
export function planMma(s: Section, items: readonly ScheduleItem[], depth: number): MmaPlan | undefined {
  if (!fitsMma(s) || depth !== 2) return undefined;
  const [rowVar, colVar] = s.domain as [IndexVar, IndexVar];
  const reduces: Extract<ScheduleItem, { kind: "reduce" }>[] = [];
  const walk = (list: readonly ScheduleItem[]): void => {
    for (const item of list) {
      if (item.kind === "reduce") reduces.push(item);
      else if (item.kind === "loop") walk(item.body);
    }
  };
  walk(items);
  const dot = s.dots![0]!;
  if (reduces.length !== 1 || reduces[0]!.reduces.length !== 1 || reduces[0]!.reduces[0] !== dot.reduce) return undefined;
  const item = reduces[0]!;
  const r = s.exprs[dot.reduce]!;
  if (r.op !== "reduce_sum" || item.vars.length !== 1) return undefined;
  const kVar = item.vars[0]!;
  const product = s.exprs[r.body]!;
  if (product.op !== "mul" || !((product.x === dot.lhs && product.y === dot.rhs) || (product.x === dot.rhs && product.y === dot.lhs))) return undefined;
  const a = widened(s, dot.lhs)!;
  const b = widened(s, dot.rhs)!;
  const sideOf = (value: ExprId, own: IndexVar): { value: ExprId; ids: ExprId[]; vars: Set<string> } => {
    const ids = [...operandClosure(s, value)].sort((x, y) => x - y);
    const vars = new Set<string>();
    for (const id of ids) for (const v of exprOwnVars(s.exprs[id]!)) vars.add(v);
    vars.delete(own.name);
    vars.delete(kVar.name);
    return { value, ids, vars };
  };
  let lhs = sideOf(a.value, rowVar);
  let rhs = sideOf(b.value, colVar);
  if (lhs.vars.size > 0 || rhs.vars.size > 0) {
    // The dot fact's sides may be the other way round (a transposed product).
    lhs = sideOf(b.value, rowVar);
    rhs = sideOf(a.value, colVar);
    if (lhs.vars.size > 0 || rhs.vars.size > 0) return undefined;
  }
  // The reduction body is exactly the two sides, their casts and the product (nothing else varies with k).
  const allowed = new Set([...lhs.ids, ...rhs.ids, dot.lhs, dot.rhs, r.body]);
  for (const bodyItem of item.body) if (bodyItem.kind !== "expr" || !allowed.has(bodyItem.id)) return undefined;
  const format = a.format as "f16" | "bf16";
  return { item, reduce: dot.reduce, rowVar, colVar, kVar, format, lhs: { value: lhs.value, ids: lhs.ids }, rhs: { value: rhs.value, ids: rhs.ids } };
}
