// The `symbolic-rows` kernel pass (js, wasm and cuda, run last): under a symbolic batch, drops the
// masks mask-symbolic put before every reduction over the batch when none is needed. js,
// wasm and cuda stop every loop that steps the batch's rows at the run's rows (rowBounds in
// compiler/kernel/symbolic-bound.ts: a reduction over the batch then reads valid rows only,
// and a row-wise loop skips the padding). When every reduction in the program that reads
// symbolic rows stops there, the padding rows are read by nothing that reaches a result, so
// the fill the masks write is never seen: each `where(row < n, x, fill)` becomes `x`, and the
// sections that only computed masks lose their load of the size and shrink to the run's rows
// like any row-wise section. A program with one reduction over the batch that cannot stop (a
// step spanning several batch entries, a row it cannot tell), a value with two symbolic axes
// (the driver's fact from mask-symbolic), or rows copied into a buffer without a symbolic
// axis keeps every mask: correct, at the maximum's cost. Only a comparison of a row the
// section reads or writes with the size is taken for a mask.

import { leaksRows, rowBounds, sizeBuffer, symbolicRow } from "./symbolic-bound.ts";
import { indexKey, type IndexExpr } from "./index-expr.ts";
import { exprOperands, SectionBuilder, sectionSource, type BufferDecl, type ExprId, type KExpr, type KernelProgram, type Section } from "./kernel-ir.ts";
import { copySectionBody } from "./tile.ts";

/** The fact mask-symbolic records (ctx.facts "mask-symbolic"): whether every value has at most one symbolic axis. */
export interface MaskFact {
  readonly oneAxis: boolean;
}

/** `program` without its row masks when every reduction over the batch stops at the run's rows; else unchanged. */
export function unmaskRows(program: KernelProgram): KernelProgram {
  const size = sizeBuffer(program.buffers);
  if (!size) return program;
  for (const k of program.kernels) for (const s of k.sections) if (rowBounds(s, program.buffers).unbounded > 0 || leaksRows(s, program.buffers)) return program;
  const kernels = program.kernels.map((k) => {
    let changed = false;
    const sections = k.sections.map((s) => {
      const u = unmaskSection(s, size, program.buffers);
      if (u !== s) changed = true;
      return u;
    });
    if (!changed) return k;
    const reads = new Set<number>();
    for (const s of sections) for (const e of s.exprs) if (e.op === "load") reads.add(e.buffer);
    return { ...k, sections, reads: [...reads].sort((a, b) => a - b) };
  });
  return { ...program, kernels };
}

/** `where(index < n·scale, x, const)` with n loaded from the size buffer: the masks mask-symbolic makes. */
function isRowMask(exprs: readonly KExpr[], e: KExpr, size: BufferDecl): e is Extract<KExpr, { op: "where" }> {
  if (e.op !== "where" || exprs[e.y]!.op !== "const") return false;
  const cond = exprs[e.cond]!;
  if (cond.op !== "cmplt" || exprs[cond.x]!.op !== "index") return false;
  const isSize = (id: ExprId): boolean => {
    const l = exprs[id]!;
    return l.op === "load" && l.buffer === size.id;
  };
  const limit = exprs[cond.y]!;
  if (isSize(cond.y)) return true;
  return limit.op === "mul" && ((isSize(limit.x) && exprs[limit.y]!.op === "const") || (isSize(limit.y) && exprs[limit.x]!.op === "const"));
}

/**
 * The rows (as index keys) the section reads or writes along symbolic axes: a mask is one of
 * mask-symbolic's only when it compares such a row with the size, not some other index.
 */
function accessedRows(s: Section, buffers: readonly BufferDecl[]): Set<string> {
  const rows = new Set<string>();
  const note = (index: IndexExpr, b: BufferDecl): void => {
    const row = symbolicRow(index, b);
    if (row) rows.add(indexKey({ terms: row.terms, constant: row.constant }));
  };
  for (const e of s.exprs) if (e.op === "load") note(e.index, buffers[e.buffer]!);
  for (const st of s.stores) note(st.index, buffers[st.buffer]!);
  return rows;
}

function unmaskSection(s: Section, size: BufferDecl, buffers: readonly BufferDecl[]): Section {
  const rows = accessedRows(s, buffers);
  const isMask = (exprs: readonly KExpr[], e: KExpr): boolean => {
    if (!isRowMask(exprs, e, size)) return false;
    const index = exprs[(exprs[e.cond] as { readonly x: ExprId }).x] as Extract<KExpr, { op: "index" }>;
    return rows.has(indexKey(index.index));
  };
  if (!s.exprs.some((e) => isMask(s.exprs, e))) return s;
  // A mask becomes a copy of its value (hash-consing gives the copy the value's id); what only
  // the masks used (the index, the comparison, the size's load) is left dead and dropped.
  // The value stays live too: a dot fact naming it must find its copy, not a dead constant.
  const exprs = [...s.exprs];
  const masked = new Map<ExprId, ExprId>();
  exprs.forEach((e, id) => {
    if (!isMask(exprs, e)) return;
    const value = (e as Extract<KExpr, { op: "where" }>).x;
    exprs[id] = exprs[value]!;
    masked.set(id, value);
  });
  const live = new Array<boolean>(exprs.length).fill(false);
  for (const st of s.stores) live[st.value] = true;
  for (let id = exprs.length - 1; id >= 0; id--) {
    if (!live[id]) continue;
    const e = exprs[id]!;
    for (const o of exprOperands(e)) live[o] = true;
    const value = masked.get(id);
    if (value !== undefined) live[value] = true;
  }
  const kept = exprs.map((e, id): KExpr => (live[id] ? e : { op: "const", value: 0, dtype: e.dtype }));
  const sb = new SectionBuilder(s.domain);
  const ids = copySectionBody({ ...s, exprs: kept }, sb, new Map());
  for (const st of s.stores) sb.store(st.buffer, st.index, ids[st.value]!);
  const built = sb.build(s.tile);
  return { ...built, ...(s.form ? { form: s.form } : {}), ...sectionSource(s) };
}
