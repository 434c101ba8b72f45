// Which sections may run fewer rows than the maximum at run time (docs/training.md, "A
// symbolic batch"): a section's outermost domain variable `d0` is shrinkable when every store
// writes a buffer whose leading axis is the symbolic dimension, `d0` steps whole rows of it
// and the rest of each store's index stays inside one step. Iterating `ceil(extent × n / max)`
// of `d0` (n: the run's size, read from the size buffer) then computes every row the run
// needs; the rows past it keep stale values, which mask-symbolic keeps out of every result.
// Sections that read the size compute the masks, whose padding rows must hold the fill: they
// run in full. Every target uses this one test: js and wasm bound the loop, webgpu and cuda
// the dispatch along the axis that follows `d0`.

import { bounds, indexVars, type IndexExpr, type IndexVar, type Term } from "./index-expr.ts";
import { exprOperands, isReduceExpr, type BufferDecl, type KExpr, type Section } from "./kernel-ir.ts";

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

const sizeBuffers = new WeakMap<readonly BufferDecl[], BufferDecl | null>();

/** The program's size buffer (the one carrying `dimMax`), if it has a symbolic dimension. */
export function sizeBuffer(buffers: readonly BufferDecl[]): BufferDecl | undefined {
  // Remembered per buffer list: renderers ask once per kernel, and a program has hundreds of both.
  let size = sizeBuffers.get(buffers);
  if (size === undefined) sizeBuffers.set(buffers, (size = buffers.find((b) => b.dimMax !== undefined) ?? null));
  return size ?? undefined;
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

// ---- Row bounds for any loop (js and wasm; compiler/kernel/symbolic-rows.ts) ----
//
// A loop variable `v` of extent E "steps the rows" of a buffer access when the row the index
// reads or writes along the buffer's symbolic axis is k·v + j, with k·E the axis's length
// (k rows per step) and j (the other row terms) in [0, k): stopping `v` at ceil(E × n / max)
// then covers every row below the run's size. A domain variable may stop there when every
// store steps the rows with it (the rows it skips are padding, which nothing reads); a
// reduction's variable may when every load it reads symbolic rows through steps them and a
// step never mixes valid and padding rows (E a multiple of the maximum): the terms it skips
// are the padding the graph's mask made the identity.

/** Where an index lands on a buffer's symbolic axis: its row as `Σ coef·var + constant`, or undefined when it cannot tell. */
export function symbolicRow(index: IndexExpr, b: BufferDecl): { readonly terms: readonly Term[]; readonly constant: number } | undefined {
  const sym = b.symbolic;
  if (!sym) return undefined;
  const len = b.shape[sym.axis]!;
  const stride = b.shape.slice(sym.axis + 1).reduce((a, d) => a * d, 1);
  const outer = stride * len;
  const rowTerms: Term[] = [];
  const colTerms: Term[] = [];
  for (const t of index.terms) {
    if (t.coef % outer === 0) continue; // a whole number of the axis: outer axes
    if (t.coef % stride === 0) {
      if (t.atom.kind === "data") return undefined; // a gathered row: cannot tell
      rowTerms.push({ atom: t.atom, coef: t.coef / stride });
    } else colTerms.push(t); // within a row, or else the bounds below fail
  }
  const rem = index.constant - Math.floor(index.constant / outer) * outer;
  const rowConst = Math.floor(rem / stride);
  const [clo, chi] = bounds({ terms: colTerms, constant: rem - rowConst * stride });
  const [rlo, rhi] = bounds({ terms: rowTerms, constant: rowConst });
  if (clo < 0 || chi >= stride || rlo < 0 || rhi >= len) return undefined;
  return { terms: rowTerms, constant: rowConst };
}

/** Whether a term's atom reads variable `v` (itself, or inside a div/mod). */
const reads = (t: Term, v: string): boolean => (t.atom.kind === "var" ? t.atom.name === v : t.atom.kind !== "data" && indexVars(t.atom.x).has(v));

/** The variables a term's atom reads. */
const termVars = (t: Term): string[] => (t.atom.kind === "var" ? [t.atom.name] : t.atom.kind === "data" ? [] : [...indexVars(t.atom.x)]);

/** Whether `v` steps the rows of buffer `b` at `index` (see above); `whole`: each step all valid or all padding. */
export function stepsRows(index: IndexExpr, b: BufferDecl, v: IndexVar, max: number, whole: boolean): boolean {
  const row = symbolicRow(index, b);
  if (!row) return false;
  const term = row.terms.find((t) => t.atom.kind === "var" && t.atom.name === v.name);
  if (!term || term.coef * v.extent !== b.shape[b.symbolic!.axis]) return false;
  if (whole && v.extent % max !== 0) return false;
  const [lo, hi] = bounds({ terms: row.terms.filter((t) => t !== term), constant: row.constant });
  return lo >= 0 && hi < term.coef;
}

/**
 * Whether the batch entry the access reaches depends on `v` (true when it cannot tell): the
 * row's terms in whole entries (`scale` rows each) name it, the rest stays within one entry
 * (a pooling window over a conv's rows of one image does not touch the batch).
 */
export function touchesRows(index: IndexExpr, b: BufferDecl, v: string): boolean {
  if (!b.symbolic || !indexVars(index).has(v)) return false;
  const row = symbolicRow(index, b);
  if (!row) return true;
  const named = (ts: readonly Term[]): boolean => ts.some((t) => reads(t, v));
  const scale = b.symbolic.scale;
  if (scale > 1) {
    const within = row.terms.filter((t) => t.coef % scale !== 0);
    const [lo, hi] = bounds({ terms: within, constant: row.constant - Math.floor(row.constant / scale) * scale });
    if (lo >= 0 && hi < scale) return named(row.terms.filter((t) => t.coef % scale === 0));
  }
  return named(row.terms);
}

export interface RowBounds {
  /** Loop variables (domain and reduction) that stop at ceil(extent × n / max), with their extents. */
  readonly vars: ReadonlyMap<string, number>;
  /** Reductions that read symbolic rows through a variable that cannot stop there (their padding must be masked). */
  readonly unbounded: number;
}

/** The loops of `s` that may stop at the run's rows (js and wasm bound them at run time). */
export function rowBounds(s: Section, buffers: readonly BufferDecl[]): RowBounds {
  const size = sizeBuffer(buffers);
  const vars = new Map<string, number>();
  if (!size || size.dimMax === undefined) return { vars, unbounded: 0 };
  const max = size.dimMax;
  // Domain variables: not in a section that computes masks (their padding rows must hold the fill).
  const masks = s.exprs.some((e) => e.op === "load" && e.buffer === size.id);
  if (!masks && s.stores.length > 0)
    for (const v of s.domain) if (v.extent > 1 && s.stores.every((st) => stepsRows(st.index, buffers[st.buffer]!, v, max, false))) vars.set(v.name, v.extent);
  let unbounded = 0;
  const loadsUnder = reachableLoads(s);
  s.exprs.forEach((e, id) => {
    if (!isReduceExpr(e)) return; // softmax_sum's key loop too: js and wasm bound it like any reduction
    for (const v of e.vars) {
      if (v.extent <= 1) continue;
      const touching = loadsUnder[id]!.filter((l) => touchesRows(l.index, buffers[l.buffer]!, v.name));
      if (touching.length === 0) continue;
      if (touching.every((l) => stepsRows(l.index, buffers[l.buffer]!, v, max, true))) vars.set(v.name, v.extent);
      else unbounded++;
    }
  });
  return { vars, unbounded };
}

/** Per expression, the loads its value depends on (through operands and index data). */
function reachableLoads(s: Section): Extract<KExpr, { op: "load" }>[][] {
  const out: Extract<KExpr, { op: "load" }>[][] = [];
  s.exprs.forEach((e, id) => {
    const set = new Set<Extract<KExpr, { op: "load" }>>();
    if (e.op === "load") set.add(e);
    for (const o of exprOperands(e)) for (const l of out[o]!) set.add(l);
    out[id] = [...set];
  });
  return out;
}

/**
 * The symbolic axis of a buffer that section `s` (one store: a copy such as a matmul's packed
 * operand) fills from batch rows: the axis its store steps with the variable that steps a
 * loaded buffer's rows, so later passes and the row bounds see the copy's padding as padding.
 */
export function copiedRows(s: Section, buffers: readonly BufferDecl[], target: BufferDecl): Pick<BufferDecl, "symbolic"> {
  const max = sizeBuffer(buffers)?.dimMax;
  const st = s.stores[0];
  if (max === undefined || !st || s.stores.length !== 1) return {};
  for (const v of s.domain) {
    if (v.extent <= 1 || v.extent % max !== 0) continue;
    const loads = s.exprs.filter((e): e is Extract<KExpr, { op: "load" }> => e.op === "load" && stepsRows(e.index, buffers[e.buffer]!, v, max, true));
    if (loads.length === 0) continue;
    for (let axis = 0; axis < target.shape.length; axis++) {
      const len = target.shape[axis]!;
      if (len % max !== 0) continue;
      const symbolic = { axis, scale: len / max };
      if (stepsRows(st.index, { ...target, symbolic }, v, max, true)) return { symbolic };
    }
  }
  return {};
}

/**
 * Whether a section stores, into a buffer without a symbolic axis, a value that depends on a
 * symbolic row other than through a reduction over it (or through a row it cannot tell): the
 * padding would then escape the row bounds, so the masks must stay.
 */
export function leaksRows(s: Section, buffers: readonly BufferDecl[]): boolean {
  const deps: Set<string>[] = [];
  const UNKNOWN = "?";
  s.exprs.forEach((e, id) => {
    const d = new Set<string>();
    for (const o of exprOperands(e)) for (const v of deps[o]!) d.add(v);
    if (e.op === "load" && buffers[e.buffer]!.symbolic) {
      const row = symbolicRow(e.index, buffers[e.buffer]!);
      if (!row) d.add(UNKNOWN);
      else for (const t of row.terms) for (const v of termVars(t)) d.add(v);
    }
    if (isReduceExpr(e)) for (const v of e.vars) d.delete(v.name);
    deps[id] = d;
  });
  return s.stores.some((st) => !buffers[st.buffer]!.symbolic && deps[st.value]!.size > 0);
}

/** The iterations each bounded loop of `s` runs at size `n` (ceil(extent × n / max)), for kernel-cost's sectionOps. */
export function rowRuns(s: Section, buffers: readonly BufferDecl[], n: number): Map<string, number> {
  const max = sizeBuffer(buffers)?.dimMax ?? n;
  return new Map([...rowBounds(s, buffers).vars].map(([v, extent]) => [v, shrunkExtent(extent, n, max)]));
}
