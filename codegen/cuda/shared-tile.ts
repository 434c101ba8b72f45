// Shared-memory blocking of a register-tiled contraction (a matmul and its epilogue): a block
// of 16x16 threads owns 16x16 register tiles; per chunk of 16 steps of the reduction, the
// block stages every operand load of the reduction body in shared memory — loads that vary
// with the tile's row once per row, loads that vary with its column once per column — so
// each global element is read once per block instead of once per thread. This module only
// decides whether a section fits the pattern and which loads go where; render-cuda.ts writes it.

import { indexVars } from "../../compiler/kernel/index-expr.ts";
import { exprOwnVars, type ExprId, type Section } from "../../compiler/kernel/kernel-ir.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";

/** Threads per block side and reduction steps per staged chunk. */
export const SHARED_TILE = 16;

export interface SharedTilePlan {
  /** The point-level reduce item whose loop is blocked. */
  readonly item: Extract<ScheduleItem, { kind: "reduce" }>;
  readonly rowVar: string;
  readonly colVar: string;
  readonly kVar: string;
  /** Body loads staged per (k, row) and per (k, column). */
  readonly rowLoads: readonly ExprId[];
  readonly colLoads: readonly ExprId[];
}

/**
 * The plan for a section, or undefined when it does not fit: a contraction (a `dot` fact) with a register tile over the two
 * innermost domain loops, every domain loop thread-bound, exactly one reduction loop at point
 * level over one variable, whose body is plain expressions where every load of the
 * reduction variable varies with the row or the column but not both, with no gathers.
 */
export function planSharedTile(s: Section, items: readonly ScheduleItem[], depth: number): SharedTilePlan | undefined {
  // Only contractions (lowering's `dot` facts) are blocked this way.
  if (!s.tile || !s.dots?.length || depth !== s.domain.length || s.domain.length < 2) return undefined;
  const rowVar = s.domain[s.domain.length - 2]!;
  const colVar = s.domain[s.domain.length - 1]!;
  // Too small to fill a block: the plain kernels do as well.
  if (rowVar.extent * colVar.extent < 4 * SHARED_TILE * SHARED_TILE) return undefined;
  const reduces: Extract<ScheduleItem, { kind: "reduce" }>[] = [];
  const walk = (list: readonly ScheduleItem[]): boolean => {
    for (const item of list) {
      if (item.kind === "reduce") reduces.push(item);
      else if (item.kind === "loop" && !walk(item.body)) return false;
    }
    return true;
  };
  if (!walk(items) || reduces.length !== 1) return undefined;
  const item = reduces[0]!;
  if (item.vars.length !== 1 || item.vars[0]!.extent < SHARED_TILE) return undefined;
  const kVar = item.vars[0]!.name;
  const rowLoads: ExprId[] = [];
  const colLoads: ExprId[] = [];
  for (const bodyItem of item.body) {
    if (bodyItem.kind !== "expr") return undefined;
    const e = s.exprs[bodyItem.id]!;
    const vars = exprOwnVars(e);
    if (e.op !== "load") {
      if (vars.size > 0) return undefined; // iota / mask / rng of k: not staged
      continue;
    }
    if (e.valid === false) return undefined;
    const refs = [e.index, ...e.valid.map((c) => c.x)];
    if (refs.some((x) => x.terms.some((t) => t.atom.kind === "data" || (t.atom.kind !== "var" && hasData(t.atom.x))))) return undefined;
    const own = new Set<string>();
    for (const x of refs) indexVars(x, own);
    const row = own.has(rowVar.name);
    const col = own.has(colVar.name);
    if (row && col) return undefined;
    (col ? colLoads : rowLoads).push(bodyItem.id);
  }
  if (rowLoads.length + colLoads.length === 0) return undefined;
  return { item, rowVar: rowVar.name, colVar: colVar.name, kVar, rowLoads, colLoads };
}

function hasData(x: { readonly terms: readonly { readonly atom: { readonly kind: string; readonly x?: unknown } }[] }): boolean {
  return x.terms.some((t) => t.atom.kind === "data" || (t.atom.x !== undefined && hasData(t.atom.x as typeof x)));
}
