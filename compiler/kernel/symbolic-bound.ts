// Which sections may run fewer rows than the maximum at run time (docs/training.md, "A
// symbolic batch"): a section's outermost domain variable `d0` is shrinkable when every store
// writes a buffer whose leading axis is the symbolic dimension, `d0` steps whole rows of it
// and the rest of each store's index stays inside one step. Iterating `ceil(extent × n / max)`
// of `d0` (n: the run's size, read from the size buffer) then computes every row the run
// needs; the rows past it keep stale values, which mask-symbolic keeps out of every result.
// Sections that read the size compute the masks, whose padding rows must hold the fill: they
// run in full. Every target uses this one test: js and wasm bound the loop, webgpu and cuda
// the dispatch along the axis that follows `d0`.

import { bounds } from "./index-expr.ts";
import type { BufferDecl, Section } from "./kernel-ir.ts";

export interface SymbolicBound {
  /** The outermost domain variable, whose range shrinks. */
  readonly v: string;
  /** Its full extent (at the maximum). */
  readonly extent: number;
  /** The size buffer (an i32 scalar holding the run's size). */
  readonly size: BufferDecl;
  /** The symbolic dimension's maximum. */
  readonly max: number;
}

/** The program's size buffer (the one carrying `dimMax`), if it has a symbolic dimension. */
export function sizeBuffer(buffers: readonly BufferDecl[]): BufferDecl | undefined {
  return buffers.find((b) => b.dimMax !== undefined);
}

/** The iterations of `extent` a run of size `n` (of at most `max`) needs. */
export function shrunkExtent(extent: number, n: number, max: number): number {
  return Math.max(0, Math.min(extent, Math.ceil((extent * n) / max)));
}

/** The section's shrinkable outer loop, or undefined when it runs in full. */
export function symbolicBound(s: Section, buffers: readonly BufferDecl[]): SymbolicBound | undefined {
  const size = sizeBuffer(buffers);
  const d0 = s.domain[0];
  if (!size || size.dimMax === undefined || !d0 || d0.extent <= 1 || s.stores.length === 0) return undefined;
  if (s.exprs.some((e) => e.op === "load" && e.buffer === size.id)) return undefined;
  for (const st of s.stores) {
    const b = buffers[st.buffer]!;
    if (b.symbolic?.axis !== 0 || b.shape[0]! % d0.extent !== 0) return undefined;
    const step = (b.shape[0]! / d0.extent) * b.shape.slice(1).reduce((a, d) => a * d, 1);
    const term = st.index.terms.find((t) => t.atom.kind === "var" && t.atom.name === d0.name);
    if (!term || term.coef !== step) return undefined;
    const [lo, hi] = bounds({ terms: st.index.terms.filter((t) => t !== term), constant: st.index.constant });
    if (lo < 0 || hi >= step) return undefined;
  }
  return { v: d0.name, extent: d0.extent, size, max: size.dimMax };
}
