// A section's structure as a string key, its buffers numbered by first use: two sections with
// equal keys are the same computation over (possibly) different buffers — what the twelve
// layers of a transformer lower to. A renderer that writes a section once per key and re-bases
// the copy onto each section's own buffers (codegen/wasm/render-program.ts) renders each
// distinct section once. The key holds everything a Section carries but its source notes
// (`locs`, `scopes`: comments only); a field added to Section that codegen reads must join it.

import { bug } from "../util/errors.ts";
import { formatIndex, formatPred, formatVarDecl, printDot, printExpr, printForm } from "./print.ts";
import type { KExpr, Section } from "./kernel-ir.ts";

export interface SectionShape {
  /** The structure; buffer i of `buffers` is spelled `B<i>`. */
  readonly key: string;
  /** The program's buffer ids, in order of first use (loads in expression order, then stores). */
  readonly buffers: readonly number[];
}

export function sectionShape(s: Section): SectionShape {
  const buffers: number[] = [];
  const local = new Map<number, number>();
  const localOf = (id: number): number => {
    let l = local.get(id);
    if (l === undefined) {
      l = buffers.length;
      buffers.push(id);
      local.set(id, l);
    }
    return l;
  };
  const parts: string[] = [`domain [${s.domain.map(formatVarDecl).join(", ")}]`];
  if (s.tile) parts.push(`tile(${s.tile.rowVar}: ${s.tile.rows}, ${s.tile.colVar}: ${s.tile.cols})`);
  for (const e of s.exprs)
    parts.push(e.op === "load" ? `load ${e.dtype} B${localOf(e.buffer)}[${formatIndex(e.index)}] if ${formatPred(e.valid)}` : printExpr(e));
  for (const st of s.stores) parts.push(`store B${localOf(st.buffer)}[${formatIndex(st.index)}] = %${st.value}`);
  for (const d of s.dots ?? []) parts.push(printDot(d));
  if (s.form) parts.push(printForm(s.form));
  return { key: parts.join("\n"), buffers };
}

/** `s` over other buffers: each load's and store's buffer through `to` (every buffer of `s` must be in it). */
export function renameBuffers(s: Section, to: ReadonlyMap<number, number>): Section {
  const rename = (id: number): number => to.get(id) ?? bug(`section-key: no buffer for b${id}`);
  return {
    ...s,
    exprs: s.exprs.map((e): KExpr => (e.op === "load" ? { ...e, buffer: rename(e.buffer) } : e)),
    stores: s.stores.map((st) => ({ ...st, buffer: rename(st.buffer) })),
  };
}
