// Chained chunks: the sections after a column-chunked GEMM (block-contraction.ts gemmChunks)
// that read its output a whole chunk of columns at a time run chunk by chunk right after it —
// GEMM chunk 0, its readers over chunk 0, GEMM chunk 1, … — so each chunk of the output is
// read back while still in cache instead of going out to memory and back. In the MNIST CNN
// step: conv 1's output (6.4 MB) and its pool, conv 2's output and its pool, and conv 2's
// input gradient (the 14.5 MB patch gradient) with both stages of its overlap-add and the
// pool and ReLU gradient after them.
//
// Which sections qualify is decided on the flat indices alone. A buffer the GEMM (or an earlier
// link) stores at `q·R + a·v + rest` — q anything, rest within [0, a), a·extent(v) ≤ R — holds
// the element of column `index mod R` at v = column div a, so the element is written only for
// that v. A section reading the buffer at `q'·R + a'·t + rest'` (rest' within [0, a') where
// its load's mask holds) reads that element only at t = column div a'. Cut v into chunks of
// `per` and t into chunks of `per'` with a·per = a'·per': chunk c of the reader reads exactly
// columns that chunk c of the writer wrote. The reader must also be independent of every
// section it moves ahead of (the GEMM kernel's later sections, the kernels in between).

import {
  addIndex,
  bounds,
  constIndex,
  fromAtom,
  indexVar,
  isConst,
  mulIndex,
  substitute,
  type IndexExpr,
  type IndexPred,
  type IndexVar,
} from "./index-expr.ts";
import { SectionBuilder, sectionSource, type KernelProgram, type Section } from "./kernel-ir.ts";
import { copySectionBody } from "./tile.ts";

/** A section run in chunks right after a chunked GEMM's: where it was, and the domain variable cut (`per` values a chunk). */
export interface ChainLink {
  readonly kernel: number;
  readonly section: number;
  readonly v: IndexVar;
  readonly per: number;
}

/** How many kernels past the GEMM's a link is looked for. */
const LOOKAHEAD = 4;

/** A buffer written column-chunk by column-chunk: its column period R and the column span of one chunk (a·per). */
interface Produced {
  readonly R: number;
  readonly span: number;
}

/** Inclusive bounds of `e` where `pred` holds: each atom narrowed by the conditions on it alone (a padded window's mask). */
function boundsUnder(e: IndexExpr, pred: readonly { x: IndexExpr; op: "lt" | "ge"; bound: number }[]): [number, number] {
  let lo = e.constant;
  let hi = e.constant;
  for (const t of e.terms) {
    const x = fromAtom(t.atom);
    let [alo, ahi] = bounds(x);
    for (const c of pred) {
      const d = addIndex(x, mulIndex(c.x, -1));
      if (!isConst(d)) continue;
      if (c.op === "ge") alo = Math.max(alo, c.bound + d.constant);
      else ahi = Math.min(ahi, c.bound - 1 + d.constant);
    }
    if (alo > ahi) return [0, 0]; // the load never happens
    lo += t.coef * (t.coef >= 0 ? alo : ahi);
    hi += t.coef * (t.coef >= 0 ? ahi : alo);
  }
  return [lo, hi];
}

/**
 * `index` as q·R + a·v + rest with rest within [0, a) where `pred` holds (R = a·extent(v) when
 * not given, else a·extent(v) ≤ R): `a`, or undefined.
 */
export function columnCoef(index: IndexExpr, pred: IndexPred, v: IndexVar, period?: number): { readonly a: number; readonly R: number } | undefined {
  if (pred === false) return undefined;
  const a = index.terms.find((t) => t.atom.kind === "var" && t.atom.name === v.name)?.coef;
  if (a === undefined || a <= 0) return undefined;
  const R = period ?? a * v.extent;
  if (a * v.extent > R) return undefined;
  const rest = { terms: index.terms.filter((t) => !(t.atom.kind === "var" && t.atom.name === v.name) && t.coef % R !== 0), constant: index.constant };
  const [lo, hi] = boundsUnder(rest, pred);
  return lo >= 0 && hi < a ? { a, R } : undefined;
}

const loadsOf = (s: Section): Set<number> => new Set(s.exprs.flatMap((e) => (e.op === "load" ? [e.buffer] : [])));
const storesOf = (s: Section): Set<number> => new Set(s.stores.map((st) => st.buffer));

/**
 * The sections after section `si` of kernel `ki` (a GEMM cut into `col.extent / per` chunks of
 * `per` values of its column variable `col`) that can run chunk by chunk after it, in order.
 */
export function chunkChain(p: KernelProgram, ki: number, si: number, col: IndexVar, per: number): ChainLink[] {
  const gemm = p.kernels[ki]!.sections[si]!;
  const count = col.extent / per;
  const produced = new Map<number, Produced | undefined>();
  const produce = (s: Section, v: IndexVar, perV: number): void => {
    for (const st of s.stores) {
      const d = produced.has(st.buffer) ? undefined : columnCoef(st.index, [], v);
      produced.set(st.buffer, d && { R: d.R, span: d.a * perV });
    }
  };
  produce(gemm, col, per);
  const chainReads = loadsOf(gemm);
  const chainWrites = storesOf(gemm);
  const skippedReads = new Set<number>();
  const skippedWrites = new Set<number>();
  const skip = (s: Section): void => {
    for (const b of loadsOf(s)) skippedReads.add(b);
    for (const b of storesOf(s)) skippedWrites.add(b);
  };
  const links: ChainLink[] = [];
  /** The cut of `s` that reads produced buffers chunk-exactly, else undefined. */
  const linkOf = (s: Section): { v: IndexVar; per: number } | undefined => {
    if (s.dots?.length || s.tile || s.form) return undefined;
    const v = s.domain.find((d) => d.extent > 1);
    if (!v || v.extent % count !== 0) return undefined;
    const perV = v.extent / count;
    let reads = false;
    for (const e of s.exprs) {
      if (e.op !== "load") continue;
      if (skippedWrites.has(e.buffer)) return undefined;
      if (!produced.has(e.buffer)) continue;
      const p = produced.get(e.buffer);
      const d = p && columnCoef(e.index, e.valid, v, p.R);
      if (!d || d.a * perV !== p!.span) return undefined;
      reads = true;
    }
    for (const b of storesOf(s)) if (skippedReads.has(b) || skippedWrites.has(b) || chainReads.has(b) || chainWrites.has(b)) return undefined;
    return reads ? { v, per: perV } : undefined;
  };
  const sections = p.kernels[ki]!.sections;
  for (let sj = si + 1; sj < sections.length; sj++) skip(sections[sj]!);
  for (let kj = ki + 1; kj < Math.min(p.kernels.length, ki + 1 + LOOKAHEAD); kj++) {
    p.kernels[kj]!.sections.forEach((s, sj) => {
      const link = linkOf(s);
      if (!link) return skip(s);
      links.push({ kernel: kj, section: sj, ...link });
      for (const b of loadsOf(s)) chainReads.add(b);
      for (const b of storesOf(s)) chainWrites.add(b);
      produce(s, link.v, link.per);
    });
  }
  return links;
}

/** Chunk `c` of a link: its section over `per` values of its variable from c·per. */
export function linkChunk(s: Section, link: ChainLink, c: number): Section {
  const local = indexVar(`${link.v.name}c`, link.per);
  const sb = new SectionBuilder(s.domain.map((d) => (d.name === link.v.name ? local : d)));
  const varMap = new Map([[link.v.name, addIndex(fromAtom(local), constIndex(c * link.per))]]);
  const ids = copySectionBody(s, sb, varMap);
  for (const st of s.stores) sb.store(st.buffer, substitute(st.index, varMap), ids[st.value]!);
  return { ...sb.build(), ...sectionSource(s) };
}
