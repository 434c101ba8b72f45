// A symbolic batch's row bounds in WGSL (compiler/kernel/symbolic-bound.ts, rowBounds): every
// loop that steps the batch's rows, reductions over the batch included, stops at
// ceil(extent × n / max) for the run's size n, as on js, wasm and cuda, so the driver's
// symbolic-rows pass may drop the row masks (targets/webgpu.ts sets boundsRows). A dispatch
// whose sections have such loops binds the size buffer (codegen/wgsl/layout.ts) and reads n
// once: with a plain load where no barrier follows, through a workgroup variable and
// workgroupUniformLoad in the forms with barriers (row kernels, tiled matmuls), so a bound
// is uniform across the workgroup and the barriers stay in uniform control flow.

import { rowBounds, sizeBuffer } from "../../compiler/kernel/symbolic-bound.ts";
import type { BufferDecl, Section } from "../../compiler/kernel/kernel-ir.ts";
import { bug } from "../../compiler/util/errors.ts";
import { parallelDepthOf, scheduleSection, type BufferAccess } from "../render/base.ts";

/** The name n is read into, and the workgroup variable the barrier forms share it through. */
export const ROWS_NAME = "kiln_n";
const SHARED_ROWS = "kiln_rows";

/**
 * The loops of `s` the WGSL renderers stop at the run's rows, with their extents (empty
 * without a symbolic batch): every reduction loop rowBounds allows (the masks may go only if
 * all of them stop), and the serial domain loops of a section rendered one thread per point;
 * thread-bound domain variables are the dispatch's to shrink, and the row kernels' and
 * matmuls' domain loops run in full (their padding rows are stored and never read).
 */
export function rowLimitVars(s: Section, buffers: readonly BufferDecl[] | undefined): ReadonlyMap<string, number> {
  if (!buffers || !sizeBuffer(buffers)) return new Map();
  const vars = rowBounds(s, buffers).vars;
  if (vars.size === 0) return vars;
  const domain = new Set(s.domain.map((v) => v.name));
  const form = s.form?.kind;
  const serial = form === "matmul" || form === "row" ? new Set<string>() : new Set(s.domain.slice(parallelDepthOf(s, scheduleSection(s))).map((v) => v.name));
  return new Map([...vars].filter(([v]) => !domain.has(v) || serial.has(v)));
}

/** The WGSL name of loop `v`'s bound. */
export const limitName = (v: string): string => `lim_${v}`;

/** ceil(extent × n / max) as WGSL i32 arithmetic on `n` (exact: a multiple of max needs no division). */
export function limitExpr(extent: number, max: number, n = ROWS_NAME): string {
  if (extent % max === 0) return extent === max ? n : `${extent / max} * ${n}`;
  if (extent * max >= 2 ** 31) bug(`wgsl row bound: ${extent} × ${max} overflows i32`);
  return `min(${extent}, (${extent} * ${n} + ${max - 1}) / ${max})`;
}

/** `let lim_v: i32 = …;` for the loops of `vars` whose bound `body` uses. */
export function limitDecls(vars: ReadonlyMap<string, number>, max: number, body: string, indent: string): string[] {
  return [...vars]
    .filter(([v]) => new RegExp(`\\b${limitName(v)}\\b`).test(body))
    .map(([v, extent]) => `${indent}let ${limitName(v)}: i32 = ${limitExpr(extent, max)};`);
}

/** The size buffer, when some section of `sections` has a loop that stops at the run's rows (it is then bound). */
export function rowsSizeOf(sections: readonly Section[], buffers: readonly BufferDecl[] | undefined): BufferDecl | undefined {
  const size = buffers ? sizeBuffer(buffers) : undefined;
  return size && sections.some((s) => rowLimitVars(s, buffers).size > 0) ? size : undefined;
}

/**
 * The lines that read n at the top of `main`: a plain load, or (`uniform`, after the early
 * return that keeps the workgroup together) one thread's load shared by workgroupUniformLoad.
 * `_ = kiln_n;` keeps the binding in use when no bound reads it (auto layouts drop unused bindings).
 */
export function readRows(size: BufferDecl, access: BufferAccess, uniform: boolean, body: string): { readonly decls: string[]; readonly lines: string[] } {
  const load = access.load(size.id, "0", "i32");
  const use = new RegExp(`\\b${ROWS_NAME}\\b`).test(body) ? [] : [`  _ = ${ROWS_NAME};`];
  if (!uniform) return { decls: [], lines: [`  let ${ROWS_NAME}: i32 = ${load};`, ...use] };
  return {
    decls: [`var<workgroup> ${SHARED_ROWS}: i32;`],
    lines: [`  if (lid == 0) { ${SHARED_ROWS} = ${load}; }`, `  let ${ROWS_NAME}: i32 = workgroupUniformLoad(&${SHARED_ROWS});`, ...use],
  };
}
