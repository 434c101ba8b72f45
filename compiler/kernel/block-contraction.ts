// Register blocking of contractions (sections with a `dot` fact from lowering) for a SIMD
// target (wasm's `block-contraction` kernel pass), as a kernel-IR rewrite (the same body
// copying as compiler/kernel/tile.ts, with wasm's own block shapes). Two forms, picked
// by which operand streams contiguously:
//   column form (C[i, j] += A[i, k] · B[k, j], B contiguous in j): the output block is R rows
//     × U·4 columns; the last domain variable becomes a 4-wide lane axis that emit-section
//     vectorizes, so one pass over k keeps R·U f32x4 accumulators, loading R scalars of A
//     (splatted) and U vectors of B per step;
//   dot form (both operands contiguous in k, e.g. x @ Wᵀ in `linear`): R × C scalar outputs
//     whose reductions share one k loop, which emit-section vectorizes along k (R·C vector
//     accumulators, R + C vector loads per step, a lane sum at the end).
// The block loops run column blocks outside row blocks when the left operand is the smaller
// (it is re-read per column block while the right operand's panel stays in cache). Last, every
// other section gets the lane variable its accesses favour (lane-axis.ts).

import { numel } from "../util/shape.ts";
import { bug } from "../util/errors.ts";
import {
  addIndex,
  cond,
  constIndex,
  divIndex,
  flatIndex,
  fromAtom,
  indexDataRefs,
  indexVar,
  indexVars,
  linearStride,
  modIndex,
  mulIndex,
  digitExtents,
  ShiftedSubstitution,
  simplifyUnderPred,
  substitute,
  unflattenIndex,
  type IndexExpr,
  type IndexVar,
} from "./index-expr.ts";
import {
  exprOperands,
  exprOwnVars,
  isReduceExpr,
  SectionBuilder,
  sectionSource,
  summedOnce,
  type BufferDecl,
  type ExprId,
  type Kernel,
  type KernelProgram,
  type KExpr,
  type Section,
} from "./kernel-ir.ts";
import { chooseLaneAxes } from "./lane-axis.ts";
import { panelPrologues } from "./panel-prologue.ts";
import { packsInProducers } from "./pack-in-producer.ts";
import { copyExprs, copySectionBody, type IndexSubstitute } from "./tile.ts";
import { copiedRows } from "./symbolic-bound.ts";
import { renameBuffers, sectionShape } from "./section-key.ts";
import { chunkChain, linkChunk, type ChainLink } from "./chunk-chain.ts";

const LANES = 4;

/** `shareBlocks` false blocks every section afresh (tests compare the two: the same program). */
export function blockContractions(p: KernelProgram, shareBlocks = true): KernelProgram {
  const buffers = [...p.buffers];
  const kernels: Kernel[] = [];
  // blockSection once per section structure (compiler/kernel/section-key.ts): the layers of a
  // deep model repeat their sections over other buffers, and a block copies a body rows × cols times.
  const blocked = new Map<string, { readonly buffers: readonly number[]; readonly sections: readonly Section[] }>();
  // A symbolic batch bounds row loops at run time: no overlapping last row block (wideRows).
  const symbolic = p.buffers.some((b) => b.symbolic !== undefined || b.dimMax !== undefined);
  // Outputs that replace an input (an SGD update): the memory plan may give them the input's slot.
  const inPlace = new Set(p.outputs.filter((o) => o.aliases !== undefined).map((o) => o.buffer));
  // Sections are keyed (sectionShape prints the whole section) only once a second one could
  // match: the first of each domain, size and flags waits here unkeyed (most sections of a
  // small model are unique, and a key costs as much as a copy of the body).
  const unkeyed = new Map<string, { readonly flags: string; readonly source: Section; readonly sections: readonly Section[] }>();
  const keyedRough = new Set<string>();
  const blockSection = (s: Section, packed = false, leftPacked = false): readonly Section[] => {
    const shape = { packed, leftPacked, symbolic, inPlace };
    if (!shareBlocks || !s.dots?.length) return blockOneSection(s, shape); // nothing to block: not worth a key
    // (whether it stores over an input decides wideRows: not in the shape, which renames buffers)
    const flags = `${packed}/${leftPacked}/${s.stores.some((st) => inPlace.has(st.buffer))}`;
    // Sections with equal keys have equal domains and as many expressions and stores.
    const rough = `${flags} ${s.domain.map((v) => `${v.name}<${v.extent}`).join(",")} ${s.exprs.length} ${s.stores.length}`;
    const first = unkeyed.get(rough);
    if (first === undefined && !keyedRough.has(rough)) {
      const sections = blockOneSection(s, shape);
      unkeyed.set(rough, { flags, source: s, sections });
      return sections;
    }
    if (first !== undefined) {
      const sh0 = sectionShape(first.source);
      blocked.set(`${first.flags}\n${sh0.key}`, { buffers: sh0.buffers, sections: first.sections });
      unkeyed.delete(rough);
      keyedRough.add(rough);
    }
    const sh = sectionShape(s);
    const key = `${flags}\n${sh.key}`;
    const seen = blocked.get(key);
    if (!seen) {
      const sections = blockOneSection(s, shape);
      blocked.set(key, { buffers: sh.buffers, sections });
      return sections;
    }
    const to = new Map(seen.buffers.map((id, i) => [id, sh.buffers[i]!]));
    return seen.sections.map((section) => {
      const { locs: _locs, scopes: _scopes, ...body } = renameBuffers(section, to);
      return { ...body, ...sectionSource(s) };
    });
  };
  // Sections moved into a chain after a chunked GEMM (chunk-chain.ts), as `kernel:section`.
  const moved = new Set<string>();
  p.kernels.forEach((k, ki) => {
    let packs: Kernel[] = [];
    let sections: Section[] = [];
    // A GEMM packed in column chunks (gemmChunks) launches as kernels of its own, so the
    // sections around it go into parts of the kernel: `k` before, `k_p<i>` after.
    let parts = 0;
    const flush = (): void => {
      kernels.push(...packs);
      if (sections.length > 0) {
        const reads = new Set(parts === 0 && sections.length === k.sections.length ? k.reads : []);
        for (const s of sections) for (const e of s.exprs) if (e.op === "load") reads.add(e.buffer);
        const whole = sections.length === k.sections.length;
        kernels.push({
          ...k,
          name: parts === 0 ? k.name : `${k.name}_p${parts}`,
          sections,
          reads: [...reads].sort((a, b) => a - b),
          writes: whole ? k.writes : storedBuffers(sections),
        });
        parts++;
      }
      packs = [];
      sections = [];
    };
    const launch = (name: string, parts: readonly Section[]): void => {
      const reads = new Set<number>();
      for (const section of parts) for (const e of section.exprs) if (e.op === "load") reads.add(e.buffer);
      kernels.push({ name, sections: [...parts], reads: [...reads].sort((a, b) => a - b), writes: storedBuffers(parts) });
    };
    for (const [si, s] of k.sections.entries()) {
      if (moved.has(`${ki}:${si}`)) continue;
      const { plan, links } = planWithChain(p, ki, si, buffers);
      if ("chunks" in plan) {
        flush();
        plan.chunks.forEach((c, i) => {
          kernels.push(...c.packs);
          launch(`${k.name}_c${i}`, blockSection(c.section, true));
          for (const l of links) launch(`${p.kernels[l.kernel]!.name}_i${i}`, blockSection(linkChunk(p.kernels[l.kernel]!.sections[l.section]!, l, i)));
        });
        for (const l of links) moved.add(`${l.kernel}:${l.section}`);
        parts++;
        continue;
      }
      const gemm = plan.gemm;
      if (gemm) {
        packs.push(...gemm.packs);
        sections.push(...blockSection(gemm.section, gemm.panels));
        continue;
      }
      const left = packLeftOperand(s, buffers, symbolic);
      if (left) packs.push(left.kernel);
      const section = left?.section ?? s;
      const packed = packRightOperand(section, buffers);
      if (packed) packs.push(packed.kernel);
      sections.push(...(packed ? blockSection(packed.section, true, left !== undefined) : blockSection(section)));
    }
    flush();
  });
  // The lane variable of every other section (the packs just made included): compiler/kernel/lane-axis.ts;
  // then the column-panel packs that can move into their GEMM's split loop do (panel-prologue.ts),
  // and the packs left of a temp with one writer are stored by that writer (pack-in-producer.ts).
  return packsInProducers(panelPrologues(chooseLaneAxes({ ...p, buffers, kernels })));
}

/** Column blocks of the packed right operand: 8 floats (two f32x4) per k. */
const PANEL = 8;
/**
 * Pack only operands past this size (smaller ones stay in cache unpacked)… 128 KB: an MLP's
 * weight gradients (gᵀ·x, x 128×784 = 400 KB read at stride 784 per k) gain from panels
 * though they fit L2 (a row of k at stride N touches a new page every step or two).
 */
const PACK_MIN_BYTES = 1 << 17;
/**
 * …and only when each panel is re-read by enough row blocks to repay the copy: 128 rows (32
 * blocks of 4) pack an MLP's input gradient g·W (W 512×512 read at stride 512 per k): 1.85 ->
 * 1.40 ms for a 0.3 ms copy, one thread.
 */
const PACK_MIN_ROWS = 128;

/**
 * A big right operand B[k, j] read along j is repacked into panels P[j / 8][k][j % 8] by a
 * kernel launched first, so the blocked loop over k streams one contiguous panel instead of
 * touching a new cache line (and page) per k at stride N: the panel copy costs one pass over
 * B and saves M/4 strided ones.
 */
function packRightOperand(s: Section, buffers: BufferDecl[]): { kernel: Kernel; section: Section } | undefined {
  const rank = s.domain.length;
  if (rank < 2) return undefined;
  const colVar = s.domain[rank - 1]!;
  if (colVar.extent % PANEL !== 0) return undefined;
  const free = freeVars(s.exprs);
  const dot = (s.dots ?? []).find((d) => free[d.reduce]!.has(s.domain[rank - 2]!.name) && free[d.reduce]!.has(colVar.name));
  const contraction = dot ? s.exprs[dot.reduce] : undefined;
  if (!contraction || contraction.op !== "reduce_sum" || contraction.vars.length !== 1) return undefined;
  const kVar = contraction.vars[0]!;
  const bId = s.exprs.findIndex((e) => {
    if (e.op !== "load" || e.valid === false || e.valid.length > 0 || e.dtype !== "f32") return false;
    const vars = indexVars(e.index);
    return vars.size === 2 && vars.has(kVar.name) && vars.has(colVar.name) && linearStride(e.index, colVar.name) === 1 && indexDataRefs(e.index).size === 0;
  });
  if (bId < 0 || kVar.extent * colVar.extent * 4 < PACK_MIN_BYTES || s.domain[rank - 2]!.extent < PACK_MIN_ROWS) return undefined;
  const bLoad = s.exprs[bId] as Extract<KExpr, { op: "load" }>;
  const panels = colVar.extent / PANEL;
  const packId = buffers.length;
  buffers.push({ id: packId, name: `pack${packId}`, dtype: "f32", shape: [panels, kVar.extent, PANEL], kind: "temp" });
  // The packing section: P[p, k, c] = B[k, 8p + c], c = 4h + l: the two f32x4 of a panel row
  // as two straight-line copies (an 8-wide loop paid a vector and a remainder loop per row).
  const p = indexVar("pp", panels);
  const k = indexVar("pk", kVar.extent);
  const h = indexVar("ph", PANEL / LANES);
  const l = indexVar("pl", LANES);
  const sb = new SectionBuilder([p, k, h, l]);
  const c = addIndex(mulIndex(fromAtom(h), LANES), fromAtom(l));
  const source = substitute(
    bLoad.index,
    new Map([
      [kVar.name, fromAtom(k)],
      [colVar.name, addIndex(mulIndex(fromAtom(p), PANEL), c)],
    ]),
  );
  const value = sb.add({ op: "load", buffer: bLoad.buffer, index: source, valid: [], dtype: "f32" });
  sb.store(packId, flatIndex([fromAtom(p), fromAtom(k), c], [panels, kVar.extent, PANEL]), value);
  const packSection = sb.build();
  buffers[packId] = { ...buffers[packId]!, ...copiedRows(packSection, buffers, buffers[packId]!) };
  const kernel: Kernel = { name: `pack_b${bLoad.buffer}`, sections: [packSection], reads: [bLoad.buffer], writes: [packId] };
  const j = fromAtom(colVar);
  const packedIndex = flatIndex([divIndex(j, PANEL), fromAtom(kVar), modIndex(j, PANEL)], [panels, kVar.extent, PANEL]);
  const exprs = s.exprs.map((e, id) => (id === bId ? { ...bLoad, buffer: packId, index: packedIndex } : e));
  return { kernel, section: { ...s, exprs } };
}

/** Rows per panel of a packed left operand: the column form's register block. */
const ROW_PANEL = 4;
/** Pack a left operand only when one step of k jumps at least this many elements… */
const LEFT_PACK_MIN_STRIDE = 64;
/** …it is at least this big, and each of its panels is re-read by this many column blocks. */
const LEFT_PACK_MIN_BYTES = 1 << 16;
const LEFT_PACK_MIN_COLUMNS = 256;

/**
 * A left operand A[i, k] whose rows lie next to each other but whose k runs at a long stride
 * (a transposed operand: an MLP weight gradient's gᵀ, read as g[k, i]) is repacked into
 * 4-row panels P[i / 4][k][i % 4] by a kernel launched first: the column form's four row
 * loads per step of k then come from one contiguous panel instead of a new cache line (and,
 * every step or two, a new page) per k.
 */
function packLeftOperand(s: Section, buffers: BufferDecl[], symbolic: boolean): { kernel: Kernel; section: Section } | undefined {
  const rank = s.domain.length;
  if (rank < 2 || s.tile || s.form) return undefined;
  const rowVar = s.domain[rank - 2]!;
  const colVar = s.domain[rank - 1]!;
  if (colVar.extent < LEFT_PACK_MIN_COLUMNS || colVar.extent % LANES !== 0) return undefined;
  const free = freeVars(s.exprs);
  const dot = (s.dots ?? []).find((d) => free[d.reduce]!.has(rowVar.name) && free[d.reduce]!.has(colVar.name));
  const contraction = dot ? s.exprs[dot.reduce] : undefined;
  if (!contraction || contraction.op !== "reduce_sum" || contraction.vars.length !== 1) return undefined;
  const kVar = contraction.vars[0]!;
  // only the column form (the other operand runs along the columns)
  const loads = s.exprs.filter((e): e is Extract<KExpr, { op: "load" }> => e.op === "load" && indexVars(e.index).has(kVar.name));
  if (!loads.every((l) => !indexVars(l.index).has(colVar.name) || linearStride(l.index, colVar.name) === 1)) return undefined;
  const aId = s.exprs.findIndex((e) => {
    if (e.op !== "load" || e.valid === false || e.valid.length > 0 || e.dtype !== "f32") return false;
    const vars = indexVars(e.index);
    if (vars.size !== 2 || !vars.has(kVar.name) || !vars.has(rowVar.name) || indexDataRefs(e.index).size > 0) return false;
    return linearStride(e.index, rowVar.name) === 1 && (linearStride(e.index, kVar.name) ?? 0) >= LEFT_PACK_MIN_STRIDE;
  });
  if (aId < 0 || rowVar.extent * kVar.extent * 4 < LEFT_PACK_MIN_BYTES) return undefined;
  // Rows no multiple of 4 fill the last panel with zeros; blockOneSection then gives them a tail
  // section (a GPT-2 head's weight gradient, 50257 rows: gᵀ read at a stride of 50257 per k).
  const ragged = rowVar.extent % ROW_PANEL !== 0;
  if (ragged && (symbolic || rowVar.extent < OVERLAP_MIN_ROWS || rowVar.extent * colVar.extent * kVar.extent < rowTailTestHooks.minMacs)) return undefined;
  const aLoad = s.exprs[aId] as Extract<KExpr, { op: "load" }>;
  const panels = Math.ceil(rowVar.extent / ROW_PANEL);
  const packId = buffers.length;
  buffers.push({ id: packId, name: `pack${packId}`, dtype: "f32", shape: [panels, kVar.extent, ROW_PANEL], kind: "temp" });
  // The packing section: P[p, k, r] = A[4p + r, k] (0 past the last row).
  const p = indexVar("pp", panels);
  const k = indexVar("pk", kVar.extent);
  const r = indexVar("pr", ROW_PANEL);
  const sb = new SectionBuilder([p, k, r]);
  const row = addIndex(mulIndex(fromAtom(p), ROW_PANEL), fromAtom(r));
  const source = substitute(
    aLoad.index,
    new Map([
      [kVar.name, fromAtom(k)],
      [rowVar.name, row],
    ]),
  );
  const valid = ragged ? cond(row, "lt", rowVar.extent) : [];
  const value = sb.add({ op: "load", buffer: aLoad.buffer, index: source, valid, dtype: "f32" });
  sb.store(packId, flatIndex([fromAtom(p), fromAtom(k), fromAtom(r)], [panels, kVar.extent, ROW_PANEL]), value);
  const packSection = { ...sb.build(), ...sectionSource(s) };
  // Panels of a symbolic batch's rows (k the batch: a weight gradient's xᵀ) carry its axis, so the row bounds see their padding.
  buffers[packId] = { ...buffers[packId]!, ...copiedRows(packSection, buffers, buffers[packId]!) };
  const kernel: Kernel = { name: `pack_a${aLoad.buffer}`, sections: [packSection], reads: [aLoad.buffer], writes: [packId] };
  const i = fromAtom(rowVar);
  const packedIndex = flatIndex([divIndex(i, ROW_PANEL), fromAtom(kVar), modIndex(i, ROW_PANEL)], [panels, kVar.extent, ROW_PANEL]);
  const exprs = s.exprs.map((e, id) => (id === aId ? { ...aLoad, buffer: packId, index: packedIndex } : e));
  return { kernel, section: { ...s, exprs } };
}

const largestDivisor = (extent: number, options: readonly number[]): number => options.find((o) => extent % o === 0 && extent >= o) ?? 1;

/** How a section to block was packed, and whether the program has a symbolic batch. */
interface BlockShape {
  /** The right operand was packed into 8-column panels (column form, 8 columns per block). */
  readonly packed: boolean;
  /** The left operand was packed into 4-row panels (packLeftOperand): blocks of 4 rows. */
  readonly leftPacked: boolean;
  readonly symbolic: boolean;
  /** Output buffers that may be written over an input's storage (memory-plan.ts's in-place updates). */
  readonly inPlace: ReadonlySet<number>;
}

function blockOneSection(s: Section, shape: BlockShape): readonly Section[] {
  const { packed } = shape;
  const rank = s.domain.length;
  if (rank < 2) return [s];
  const rowVar = s.domain[rank - 2]!;
  const colVar = s.domain[rank - 1]!;
  const free = freeVars(s.exprs);
  const dot = (s.dots ?? []).find((d) => free[d.reduce]!.has(rowVar.name) && free[d.reduce]!.has(colVar.name));
  if (!dot) return [s];
  const reduce = s.exprs[dot.reduce] as Extract<KExpr, { vars: unknown }>;
  const kVar = reduce.vars[reduce.vars.length - 1]!;
  // Loads that feed the contraction's products.
  const loads = s.exprs.filter((e): e is Extract<KExpr, { op: "load" }> => e.op === "load" && indexVars(e.index).has(kVar.name));
  const colContiguous = loads.every((l) => !indexVars(l.index).has(colVar.name) || linearStride(l.index, colVar.name) === 1);
  const kContiguous = loads.every((l) => linearStride(l.index, kVar.name) === 1);
  const leftSmaller = rowVar.extent <= colVar.extent;
  if (packed || (colContiguous && colVar.extent % LANES === 0)) {
    const vectors = packed ? PANEL / LANES : largestDivisor(colVar.extent / LANES, [2, 1]);
    const macs = s.domain.reduce((a, v) => a * v.extent, 1) * reduce.vars.reduce((a, v) => a * v.extent, 1);
    if (packed && !shape.leftPacked && kVar.extent >= wideBlockTestHooks.minK && macs >= wideBlockTestHooks.minMacs && wideRows(s, rowVar, colVar, shape))
      return [copyBlock(s, rowVar, colVar, WIDE_ROWS, vectors * LANES, true, leftSmaller)];
    // Rows that are no multiple of 4 take 4-row blocks, the last one overlapping the one before,
    // where computing a row twice is harmless; where it is not (an in-place update, an
    // accumulator) and no 3-row block divides them, 4-row blocks over the rows up to the last
    // multiple of 4 and a second section with one block of the 1–3 rows left. (Both took the
    // largest block dividing the rows: 50257 rows, a GPT-2 head's vocabulary, had 1-row blocks,
    // 2 accumulators a step.)
    const cols = vectors * LANES;
    // (A left operand in 4-row panels with its last panel padded, packLeftOperand's ragged rows, always takes the tail section.)
    const dividing = largestDivisor(rowVar.extent, [4, 3, 2, 1]);
    if (dividing === 4 || rowVar.extent < OVERLAP_MIN_ROWS || shape.symbolic) return [copyBlock(s, rowVar, colVar, dividing, cols, true, leftSmaller)];
    if (!shape.leftPacked && mayRepeatRows(s, shape)) return [copyBlock(s, rowVar, colVar, 4, cols, true, leftSmaller)];
    if (!shape.leftPacked && (dividing === 3 || macs < rowTailTestHooks.minMacs)) return [copyBlock(s, rowVar, colVar, dividing, cols, true, leftSmaller)];
    const whole = rowVar.extent - (rowVar.extent % 4);
    return [
      copyBlock(s, rowVar, colVar, 4, cols, true, leftSmaller, { start: 0, count: whole }),
      copyBlock(s, rowVar, colVar, rowVar.extent - whole, cols, true, leftSmaller, { start: whole, count: rowVar.extent - whole }),
    ];
  }
  if (kContiguous && kVar.extent >= 2 * LANES) {
    const rows = largestDivisor(rowVar.extent, [4, 2, 1]);
    const cols = largestDivisor(colVar.extent, [2, 1]);
    if (rows * cols === 1) return [s];
    return [copyBlock(s, rowVar, colVar, rows, cols, false, leftSmaller)];
  }
  return [s];
}

/**
 * Rows of the column form's wide register block: 6 rows × 8 columns (two f32x4 of a panel), 12
 * accumulators + 2 panel vectors + 1 splat = 15 of x64's 16 vector registers (V8 keeps the
 * 16th as scratch), against 8 accumulators for 4 × 8: the k loop then issues 8 loads and its
 * loop control per 12 FMAs instead of 6 per 8. A hand-written probe of the k loop alone (data
 * in L1, this VM's Zen 4 core, relaxed SIMD) ran 6 × 8 at 58.4 GFLOP/s, the FMA ports' peak,
 * and 4 × 8 at 54.4; 4 × 12 and 8 × 8 spill (27 GFLOP/s).
 */
const WIDE_ROWS = 6;
/** Row blocks of at least this many rows take the wide block (smaller ones keep 4 rows). */
const WIDE_MIN_ROWS = 24;
/**
 * …and at most this fraction of the rows computed twice by an overlapping last block: the wide
 * block gains 5–8 % on a GEMM, 128 rows computing 132 (3 %) gained nothing (the MLP step's
 * forward GEMMs, within noise) and cost its compile ~3 ms (12 copies of the body, not 8).
 */
const WIDE_MAX_REPEAT = 0.02;
/**
 * …and a k loop of at least this many steps: per row block the wide block zeroes 12 sums and
 * stores each twice; the MLP step's weight gradients (k = the batch, 128) ran the same either way
 * (1.99 ms) while their 12 copies of the body cost compile time.
 */
const WIDE_MIN_K = 256;
/**
 * …in a GEMM of at least this many multiply-adds. The MLP step's (128 × 784 × 512 swapped, 51 M)
 * ran the same with 6-row blocks (2.15 -> 2.16 ms) and their copies cost its compile ~2–3 ms;
 * the transformer step's (67–268 M) gained 5–8 % each, matmul 1024³ 5–10 %.
 */
const WIDE_MIN_MACS = 1 << 26;
/** …and at most this many operations per output on its sum (a bias, a ReLU or its gradient, an SGD update). */
const WIDE_MAX_EPILOGUE = 8;
/** The wide block's size limits (WIDE_MIN_K, WIDE_MIN_MACS); mutable for tests only (small shapes reach the wide form). */
export const wideBlockTestHooks = { minK: WIDE_MIN_K, minMacs: WIDE_MIN_MACS };

/** The fewest rows (no multiple of 4) that take 4-row blocks with an overlapping last block or a tail section rather than smaller blocks. */
const OVERLAP_MIN_ROWS = 8;
/**
 * A tail section (the 1–3 rows left after 4-row blocks, where rows may not be computed twice)
 * only for a GEMM of at least this many multiply-adds: it is a launch of its own (the MLP step's
 * last weight gradient, 10 × 512 × 128, keeps its 2-row blocks).
 */
const ROW_TAIL_MIN_MACS = 1 << 22;
/** The tail section's size limit; mutable for tests only (small shapes reach the form). */
export const rowTailTestHooks = { minMacs: ROW_TAIL_MIN_MACS };

/**
 * Whether a section may compute some of its rows twice (copyBlock's overlapping last row
 * block, each such row stored twice with the same value): only when it loads no buffer it
 * stores (a k-chunk adding to an accumulator), stores no output the memory plan may place over
 * an input (an SGD update would subtract twice) and its row loop has no symbolic bound (the
 * row limit counts blocks).
 */
function mayRepeatRows(s: Section, shape: BlockShape): boolean {
  if (shape.symbolic || s.stores.some((st) => shape.inPlace.has(st.buffer))) return false;
  const stored = new Set(s.stores.map((st) => st.buffer));
  return !s.exprs.some((e) => e.op === "load" && stored.has(e.buffer));
}

/**
 * Whether a GEMM over packed column panels takes WIDE_ROWS-row blocks: only a section that
 * stores into no buffer it also loads (a k-chunk adding to an accumulator) nor into an output
 * the memory plan may place over an input (an SGD update fused into a weight gradient), since
 * a wide block stores its raw sums first (emit-section.ts) and, where the rows are no multiple
 * of WIDE_ROWS, its last block overlaps the one before (copyBlock: rows computed and stored
 * twice); an overlapping one also needs a row loop with no symbolic bound (the row limit counts blocks).
 */
function wideRows(s: Section, rowVar: IndexVar, colVar: IndexVar, shape: BlockShape): boolean {
  if (rowVar.extent < WIDE_MIN_ROWS) return false;
  // Stores that scatter across the lanes (a linear with its sides swapped stores out[b, o] with
  // the lanes along b): a sum's first use after the k loop is then a lane extract, not a v128
  // store (emit-section's store-first), and V8 again loaded a whole step before its FMAs: a
  // 128×768 @ (3072×768)ᵀ linear ran at 23 GFLOP/s in 6-row blocks against 49 in 4-row ones.
  if (s.stores.some((st) => linearStride(st.index, colVar.name) !== 1)) return false;
  // An epilogue of more than a few operations per output (a GELU's erf polynomial): computed
  // for 12 sums a block instead of 8 it spilled, and the transformer step's MLP GEMM with its
  // GELU (k = 256) ran 14.0 -> 14.5 ms, its gradient's 19.8 -> 22.2 ms.
  const reduces = new Set((s.dots ?? []).map((d) => d.reduce));
  const after = new Set<ExprId>(reduces);
  let epilogue = 0;
  s.exprs.forEach((e, id) => {
    if (reduces.has(id) || !exprOperands(e).some((o) => after.has(o))) return;
    after.add(id);
    epilogue++;
  });
  if (epilogue > WIDE_MAX_EPILOGUE * Math.max(1, reduces.size)) return false;
  // The block's sums are stored where their outputs go before the epilogue runs (emit-section's
  // store-first), so at any row count the section may read nothing it stores: no accumulator it
  // adds to, no output over an input's storage (an SGD update read its weight after the sum had
  // overwritten it).
  const stored = new Set(s.stores.map((st) => st.buffer));
  if (s.stores.some((st) => shape.inPlace.has(st.buffer)) || s.exprs.some((e) => e.op === "load" && stored.has(e.buffer))) return false;
  if (rowVar.extent % WIDE_ROWS === 0) return true;
  if (WIDE_ROWS - (rowVar.extent % WIDE_ROWS) > rowVar.extent * WIDE_MAX_REPEAT) return false;
  return mayRepeatRows(s, shape);
}

/**
 * Copies of the body for a `rows` × `cols` block. Rows that are no multiple of `rows` (where
 * mayRepeatRows allows: wideRows' 6, or 4) take ceil(extent / rows) blocks, the last one moved back to end at the last
 * row: row = rows·(b mod (n − 1)) + (extent − rows)·(b div (n − 1)) + r for block b of n, which
 * is rows·b + r below the last block and extent − rows + r in it (every term non-negative, so
 * the k loop's running addresses still apply).
 */
function copyBlock(
  s: Section,
  rowVar: IndexVar,
  colVar: IndexVar,
  rows: number,
  cols: number,
  laneAxis: boolean,
  columnsOuter: boolean,
  /** Only these rows (a multiple of `rows` of them), in blocks that do not overlap. */
  range?: { readonly start: number; readonly count: number },
): Section {
  const rank = s.domain.length;
  if (range && range.count % rows !== 0) bug(`block-contraction: ${rows}-row blocks over a range of ${range.count} rows`);
  const rowBlocks = Math.ceil((range?.count ?? rowVar.extent) / rows);
  const rowBlock = indexVar(`${rowVar.name}b`, rowBlocks);
  const overlap = !range && rowVar.extent % rows !== 0;
  if (overlap && rowBlocks < 2) bug(`block-contraction: ${rows}-row blocks over ${rowVar.extent} rows`);
  const rowBase: IndexExpr = overlap
    ? addIndex(mulIndex(modIndex(fromAtom(rowBlock), rowBlocks - 1), rows), mulIndex(divIndex(fromAtom(rowBlock), rowBlocks - 1), rowVar.extent - rows))
    : addIndex(mulIndex(fromAtom(rowBlock), rows), constIndex(range?.start ?? 0));
  const colBlock = indexVar(`${colVar.name}b`, colVar.extent / cols);
  const lane = indexVar(`${colVar.name}l`, LANES);
  const blocks = columnsOuter ? [colBlock, rowBlock] : [rowBlock, colBlock];
  const domain = [...s.domain.slice(0, rank - 2), ...blocks, ...(laneAxis ? [lane] : [])];
  const sb = new SectionBuilder(domain);
  const colCopies = laneAxis ? cols / LANES : cols;
  const colAt = (c: number): IndexExpr =>
    laneAxis
      ? addIndex(mulIndex(fromAtom(colBlock), cols), constIndex(c * LANES), fromAtom(lane))
      : addIndex(mulIndex(fromAtom(colBlock), cols), constIndex(c));
  const varMapAt = (r: number, c: number): Map<string, IndexExpr> =>
    new Map<string, IndexExpr>([
      [rowVar.name, addIndex(rowBase, constIndex(r))],
      [colVar.name, colAt(c)],
    ]);
  // The copies' substitutions differ only in the constants r and c·4 (or c): each index is substituted once.
  const shifted = new ShiftedSubstitution(varMapAt(0, 0), [rowVar.name, colVar.name]);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < colCopies; c++) {
      const varMap = varMapAt(r, c);
      const offsets = [r, laneAxis ? c * LANES : c];
      const at: IndexSubstitute = (e, map, mapRef) => shifted.apply(e, offsets, map, mapRef);
      const ids = copySectionBody(s, sb, varMap, at);
      for (const st of s.stores) sb.store(st.buffer, at(st.index, varMap), ids[st.value]!);
    }
  return { ...sb.build(), ...sectionSource(s) };
}

/** Each expression's free variables, per expression list: the pass asks for one section's several times (the probes, the packs, the block). */
const freeVarsOf = new WeakMap<readonly KExpr[], readonly ReadonlySet<string>[]>();

function freeVars(exprs: readonly KExpr[]): readonly ReadonlySet<string>[] {
  const known = freeVarsOf.get(exprs);
  if (known) return known;
  const free: Set<string>[] = [];
  exprs.forEach((e, id) => {
    const vs = exprOwnVars(e);
    for (const o of exprOperands(e)) for (const v of free[o]!) vs.add(v);
    if (isReduceExpr(e)) for (const v of e.vars) vs.delete(v.name);
    free[id] = vs;
  });
  freeVarsOf.set(exprs, free);
  return free;
}

/** Rows that make transposing a dot form's column operand into panels pay (each panel is re-read per row block). */
const DOT_PACK_MIN_ROWS = 32;
/** Outputs of a GEMM whose sides may swap so its columns fill panels (canonicalGemm). */
const SWAP_MAX_OUTPUTS = 1 << 16;
/** The least k for which a linear's sides swap so its smaller operand is packed (each block's stores scatter). */
const SWAP_DOT_MIN_K = 64;
/** Contractions smaller than this many multiply-adds keep their form (packing costs two launches). */
const GEMM_MIN_MACS = 1 << 16;

/** canonicalGemm's result: the packs to launch first and the section over them, with what the chunking below needs. */
interface CanonicalGemm {
  readonly packs: Kernel[];
  readonly section: Section;
  /** The column operand went into 8-column panels. */
  readonly panels: boolean;
  /** The original section's row operand. */
  readonly rowSide: ExprId;
  /** The original section's column operand and the domain variables it spans (flattened into n). */
  readonly colSide: ExprId;
  readonly colVars: readonly IndexVar[];
  /** Batch, m, k and n extents of the GEMM. */
  readonly batch: number;
  readonly m: number;
  readonly k: number;
  readonly n: number;
  /** k also runs over an outer sum's variables (a batched dot summed over its batch). */
  readonly outerSum: boolean;
}

/** A row-operand pack shared by the chunks of one GEMM (the first chunk packs it, the rest read it). */
interface SharedRowPack {
  buffer?: number;
}

/**
 * A contraction whose operands are gathered (a conv's im2col window: div/mod indices and
 * padding masks, a permuted gradient) or whose output rows or columns span several domain
 * variables (a conv filter gradient's [out, in, kh, kw]) as a plain GEMM over packed
 * operands: kernels launched first copy the row operand into P_M[batch][m][k] and the column
 * operand into 8-column panels P_N[batch][n / 8][k][n % 8] (or P_N[batch][k][n], or
 * P_N[batch][n][k] for the dot form when n is not a multiple of 4), and the section is
 * rewritten over [batch…, m, n] with the original variables as digits of m and n, so
 * blockSection then register-blocks it like any matmul. The copies cost one pass over each
 * operand; every index the inner loop evaluates becomes affine. Undefined when the section
 * is not such a contraction or already has a plain form.
 */
function canonicalGemm(s: Section, buffers: BufferDecl[], shared?: SharedRowPack): CanonicalGemm | undefined {
  if (s.tile || s.form || (s.dots ?? []).length !== 1) return undefined;
  const dot = s.dots![0]!;
  const contraction = s.exprs[dot.reduce]!;
  if (contraction.op !== "reduce_sum" || contraction.dtype !== "f32" || contraction.vars.length !== 1) return undefined;
  // A batched dot summed over its batch (a weight gradient, Σ over batch and time of xᵀ·g):
  // the outer sum's variables join k, outermost first, and the outer sum becomes a no-op.
  const outer = summedOnce(s, dot.reduce);
  const outerSum = outer === undefined ? undefined : s.exprs[outer];
  const outerVars = outerSum?.op === "reduce_sum" ? outerSum.vars : [];
  const kVars = [...outerVars, contraction.vars[0]!].filter((v) => v.extent > 1);
  const kNames = new Set(kVars.map((v) => v.name));
  const domain = s.domain.filter((v) => v.extent > 1);
  if (kVars.length === 0 || domain.some((v) => !Number.isInteger(v.extent)) || kVars.some((v) => !Number.isInteger(v.extent))) return undefined;
  const free = freeVars(s.exprs);
  const inDomain = new Set(domain.map((v) => v.name));
  const side = (id: ExprId): Set<string> | undefined => {
    const vs = new Set([...free[id]!].filter((n) => !kNames.has(n)));
    if (kVars.some((v) => !free[id]!.has(v.name)) || [...vs].some((n) => !inDomain.has(n)) || hasReduce(s.exprs, id)) return undefined;
    return vs;
  };
  const lhsVars = side(dot.lhs);
  const rhsVars = side(dot.rhs);
  if (!lhsVars || !rhsVars) return undefined;
  const batch = domain.filter((v) => lhsVars.has(v.name) && rhsVars.has(v.name));
  const lhsOnly = domain.filter((v) => lhsVars.has(v.name) && !rhsVars.has(v.name));
  const rhsOnly = domain.filter((v) => rhsVars.has(v.name) && !lhsVars.has(v.name));
  if (batch.length + lhsOnly.length + rhsOnly.length !== domain.length || lhsOnly.length === 0 || rhsOnly.length === 0) return undefined;
  // Columns (the lane axis) are the side holding the innermost domain variable: the stores run along it.
  const inner = domain[domain.length - 1]!;
  const size = (vs: readonly IndexVar[]): number => vs.reduce((a, v) => a * v.extent, 1);
  let lhsIsColumns = lhsOnly.includes(inner);
  if (!lhsIsColumns && !rhsOnly.includes(inner)) return undefined;
  // …unless that side's width would leave the dot form (not a multiple of 4) where the other
  // side fills 8-column panels and the output is small beside k (conv1's filter gradient:
  // 32 filters × 9 taps summed over 50176 pixels): the column form's FMA block then runs and
  // the scattered stores are few. (Not with a symbolic batch: the rows' masks stay where they were.)
  const [sideRows, sideCols] = lhsIsColumns ? [size(rhsOnly), size(lhsOnly)] : [size(lhsOnly), size(rhsOnly)];
  const outputs = size(batch) * sideRows * sideCols;
  const swap = sideCols % LANES !== 0 && sideRows % PANEL === 0 && outputs <= SWAP_MAX_OUTPUTS && size(kVars) >= 8 * outputs;
  // A linear's x @ Wᵀ (both sides contiguous in k, row-major) over a batch of at most half W's
  // rows: the sides swap, so the smaller x is what goes into 8-column panels (a pass over x per
  // call instead of one over W) and W's rows are read in place as the row operand; each block's
  // stores then scatter across lanes, few beside its k steps. (The MLP step's forward layers:
  // 128 rows against 512 outputs.)
  const [rowSide0, colSide0] = lhsIsColumns ? [dot.rhs, dot.lhs] : [dot.lhs, dot.rhs];
  const [rowVars0, colVars0] = lhsIsColumns ? [rhsOnly, lhsOnly] : [lhsOnly, rhsOnly];
  const packSmaller =
    !swap &&
    batch.length === 0 &&
    outer === undefined &&
    size(kVars) >= SWAP_DOT_MIN_K &&
    sideRows % PANEL === 0 &&
    2 * sideRows <= sideCols &&
    inPackedLayout(s.exprs[rowSide0]!, [...rowVars0, ...kVars]) &&
    inPackedLayout(s.exprs[colSide0]!, [...colVars0, ...kVars]);
  if ((swap || packSmaller) && !buffers.some((b) => b.symbolic)) lhsIsColumns = !lhsIsColumns;
  const [rowSide, colSide] = lhsIsColumns ? [dot.rhs, dot.lhs] : [dot.lhs, dot.rhs];
  const [rowVars, colVars] = lhsIsColumns ? [rhsOnly, lhsOnly] : [lhsOnly, rhsOnly];
  const [B, M, N, K] = [size(batch), size(rowVars), size(colVars), size(kVars)];
  if (B * M * N * K < GEMM_MIN_MACS) return undefined;
  const plain = (id: ExprId, vars: readonly IndexVar[]): boolean => {
    const e = s.exprs[id]!;
    if (e.op !== "load" || e.valid === false || e.valid.length > 0 || vars.length !== 1) return false;
    return [...indexVars(e.index)].every((n) => linearStride(e.index, n) !== undefined) && indexDataRefs(e.index).size === 0;
  };
  // Already a matmul over the last two domain variables with affine operands: the usual forms,
  // except a column operand contiguous in k rather than n (linear's x @ Wᵀ), which would take
  // the dot form: 8-column panels of it give the column form (FMA, 4 × 8 accumulators) instead.
  const lastTwo = domain.slice(-2).map((v) => v.name);
  const colLoad = s.exprs[colSide]!;
  const dotForm = colLoad.op === "load" && linearStride(colLoad.index, colVars[0]!.name) !== 1;
  const panelsPay = dotForm && N % PANEL === 0 && M >= DOT_PACK_MIN_ROWS;
  if (
    outer === undefined &&
    plain(rowSide, rowVars) &&
    plain(colSide, colVars) &&
    lastTwo[0] === rowVars[0]!.name &&
    lastTwo[1] === colVars[0]!.name &&
    !panelsPay
  )
    return undefined;

  const m = indexVar("gm", M);
  const n = indexVar("gn", N);
  const gk = indexVar("gk", K);
  const varMap = new Map<string, IndexExpr>();
  const digits = (vars: readonly IndexVar[], flat: IndexVar): void => {
    const parts = unflattenIndex(
      fromAtom(flat),
      vars.map((v) => v.extent),
    );
    vars.forEach((v, i) => varMap.set(v.name, parts[i]!));
  };
  digits(rowVars, m);
  digits(colVars, n);
  if (outer !== undefined) digits(kVars, gk);
  // Pack indices in the section's own variables (substituting the digits then folds them to m, n).
  const flatOf = (vars: readonly IndexVar[]): IndexExpr =>
    flatIndex(
      vars.map(fromAtom),
      vars.map((v) => v.extent),
    );
  const b = flatOf(batch);
  const mi = flatOf(rowVars);
  const ni = flatOf(colVars);
  const k = flatOf(kVars);
  const layout: "panels" | "kn" | "nk" = N % PANEL === 0 ? "panels" : N % LANES === 0 ? "kn" : "nk";
  const packs: Kernel[] = [];
  const packTo = (id: ExprId, vars: readonly IndexVar[], index: IndexExpr, shape: readonly number[]): number =>
    packOperand(s, id, vars, index, shape, buffers, packs);
  // A row operand already laid out as its pack would be (linear's x [m, k], row-major) is read in
  // place: the copy would cost a launch and a pass over it for nothing (the MLP step's forward
  // GEMMs copied x and each hidden activation every step).
  const rowPack = inPackedLayout(s.exprs[rowSide]!, [...batch, ...rowVars, ...kVars])
    ? undefined
    : (shared?.buffer ?? packTo(rowSide, [...batch, ...rowVars, ...kVars], flatIndex([b, mi, k], [B, M, K]), [B, M, K]));
  if (shared && rowPack !== undefined) shared.buffer = rowPack;
  let colPack: number;
  let colIndex: IndexExpr;
  if (layout === "panels") {
    colIndex = flatIndex([b, divIndex(ni, PANEL), k, modIndex(ni, PANEL)], [B, N / PANEL, K, PANEL]);
    // A column side that is one plain variable (a gradient's output channels) copies with it
    // innermost: a panel row's eight floats are then stored together (v128), instead of eight
    // passes over the panels storing one float in each row.
    const plainColumns = colVars.length === 1 && colLoad.op === "load" && linearStride(colLoad.index, colVars[0]!.name) !== undefined && N <= PANEL * 8;
    colPack = packTo(colSide, plainColumns ? [...batch, ...kVars, ...colVars] : [...batch, ...colVars, ...kVars], colIndex, [B, N / PANEL, K, PANEL]);
  } else if (layout === "kn") {
    colIndex = flatIndex([b, k, ni], [B, K, N]);
    colPack = packTo(colSide, [...batch, ...kVars, ...colVars], colIndex, [B, K, N]);
  } else {
    colIndex = flatIndex([b, ni, k], [B, N, K]);
    colPack = packTo(colSide, [...batch, ...colVars, ...kVars], colIndex, [B, N, K]);
  }
  const rowIndex = flatIndex([b, mi, k], [B, M, K]);
  const replaced = s.exprs.map((e, id): KExpr => {
    if (id === rowSide && rowPack !== undefined) return { op: "load", buffer: rowPack, index: rowIndex, valid: [], dtype: "f32" };
    if (id === colSide) return { op: "load", buffer: colPack, index: colIndex, valid: [], dtype: "f32" };
    // one sum over k = every k variable's digits; the outer sum then runs over nothing
    if (outer !== undefined && id === dot.reduce) return { ...contraction, vars: [gk] };
    if (id === outer && e.op === "reduce_sum") return { ...e, vars: [indexVar("gk_once", 1)] };
    return e;
  });
  // The section over [batch…, m, n], reading the packs; the operands' own expressions are dead now.
  const sb = new SectionBuilder([...batch, m, n]);
  const ids = copyExprs(
    onlyLive(
      replaced,
      s.stores.map((st) => st.value),
    ),
    sb,
    varMap,
  );
  sb.markDot(ids[dot.reduce]!, ids[dot.lhs]!, ids[dot.rhs]!);
  for (const st of s.stores) sb.store(st.buffer, substitute(st.index, varMap), ids[st.value]!);
  return {
    packs,
    section: { ...sb.build(), ...sectionSource(s) },
    panels: layout === "panels",
    rowSide,
    colSide,
    colVars,
    batch: B,
    m: M,
    k: K,
    n: N,
    outerSum: outer !== undefined,
  };
}

/**
 * Whether `e` already reads what a pack over `vars` would hold (P[v0][v1]…, row-major): an
 * unmasked f32 load, affine in exactly those variables, with their row-major strides (any
 * constant offset).
 */
function inPackedLayout(e: KExpr, vars: readonly IndexVar[]): boolean {
  if (e.op !== "load" || e.dtype !== "f32" || e.valid === false || e.valid.length > 0 || indexDataRefs(e.index).size > 0) return false;
  const names = new Set(vars.map((v) => v.name));
  if ([...indexVars(e.index)].some((n) => !names.has(n))) return false;
  let stride = 1;
  for (let i = vars.length - 1; i >= 0; i--) {
    if (linearStride(e.index, vars[i]!.name) !== stride) return false;
    stride *= vars[i]!.extent;
  }
  return true;
}

/**
 * A kernel launched before the section: a new temp buffer of `shape` holding operand `id` of
 * `s` (its expression tree copied) at `index`, both over the section's variables `vars`. The
 * pack loops over those variables split into the mixed-radix digits the operand reads them
 * by (a conv's flattened n·h·w as n, h, w), and a masked load's padding wrap-around is
 * affine where the mask holds, so the copy evaluates no division. Returns the buffer.
 */
function packOperand(
  s: Section,
  id: ExprId,
  vars: readonly IndexVar[],
  index: IndexExpr,
  shape: readonly number[],
  buffers: BufferDecl[],
  packs: Kernel[],
): number {
  const packId = buffers.length;
  buffers.push({ id: packId, name: `pack${packId}`, dtype: "f32", shape, kind: "temp" });
  const live = onlyLive(s.exprs, [id]);
  const indices: IndexExpr[] = [];
  for (const e of live) {
    if (e.op === "load") indices.push(e.index, ...(e.valid === false ? [] : e.valid.map((c) => c.x)));
    else if (e.op === "valid" && e.pred !== false) indices.push(...e.pred.map((c) => c.x));
    else if (e.op === "index") indices.push(e.index);
  }
  const domain: IndexVar[] = [];
  const varMap = new Map<string, IndexExpr>();
  for (const v of vars) {
    const digits = digitExtents(v, indices);
    if (!digits) {
      domain.push(v);
      continue;
    }
    const parts = digits.map((extent, i) => indexVar(`${v.name}_${i}`, extent));
    domain.push(...parts);
    varMap.set(v.name, flatIndex(parts.map(fromAtom), digits));
  }
  const sb = new SectionBuilder(domain);
  const ids = copyExprs(live, sb, varMap);
  sb.store(packId, substitute(index, varMap), ids[id]!);
  const built = sb.build();
  const exprs = built.exprs.map(
    (e): KExpr => (e.op === "load" && e.valid !== false && e.valid.length > 0 ? { ...e, index: simplifyUnderPred(e.index, e.valid) } : e),
  );
  const section = { ...built, exprs, ...sectionSource(s) };
  buffers[packId] = { ...buffers[packId]!, ...copiedRows(section, buffers, buffers[packId]!) };
  const reads = new Set<number>();
  for (const e of section.exprs) if (e.op === "load") reads.add(e.buffer);
  packs.push({ name: `pack${packId}`, sections: [section], reads: [...reads].sort((a, c) => a - c), writes: [packId] });
  return packId;
}

/** The buffers `sections` store to, sorted. */
function storedBuffers(sections: readonly Section[]): number[] {
  const writes = new Set<number>();
  for (const s of sections) for (const st of s.stores) writes.add(st.buffer);
  return [...writes].sort((a, b) => a - b);
}

/**
 * A GEMM whose packed column operand takes `minBytes` or more runs in chunks (gemmChunks) of
 * at most `maxBytes` of panels each, so a chunk's pack is still in cache when its GEMM reads
 * it. `chain`: whether the sections after such a GEMM may run chunk by chunk with it
 * (chunk-chain.ts). Mutable for tests only (small shapes reach the chunked forms; a chained
 * program against the same program unchained), like runtime/wasm/pool.ts's poolTestHooks.
 */
export const gemmChunkTestHooks = { minBytes: 4 << 20, maxBytes: 2 << 20, chain: true };

/**
 * A canonical GEMM (above) whose column operand is big, packed and run in chunks, so a conv's
 * im2col (9× the input: 14 MB for the MNIST CNN's second conv at batch 64) never goes out to
 * memory and back — each chunk's panels are written and read while in cache:
 *   - by columns, where the columns are one domain variable (a conv's output pixels n·h·w):
 *     chunk c packs the panels of columns [c·C, (c+1)·C) and its GEMM reads them at once; the
 *     row operand is packed once, by the first chunk;
 *   - else by k, where k is one variable (a filter gradient's sum over n·h·w): chunk c packs
 *     both operands' slices of k and adds its partial sums to an accumulator (chunk 0 stores
 *     them), and the last chunk adds its own and runs the section's epilogue (bias, SGD step).
 * The chunk size is a multiple of the panel width and of the variable's inner digits (whole
 * images of n·h·w), so each chunk's indices fold like the whole GEMM's; a cut whose chunks are
 * too small a GEMM for panels is not made (the GEMM runs whole). Undefined when the section is
 * not such a GEMM.
 */
function gemmChunks(
  s: Section,
  buffers: BufferDecl[],
  chained = false,
):
  | { readonly chunks: GemmChunk[]; readonly col?: { readonly v: IndexVar; readonly per: number; readonly chainOnly?: boolean } }
  | { readonly gemm: CanonicalGemm | undefined } {
  const probeBuffers = [...buffers];
  const probe = canonicalGemm(s, probeBuffers);
  // Not cut: the probe is the section's canonical GEMM (its pack buffers numbered from the
  // same length), kept rather than built again (it was half of a cold MLP compile's blocking).
  const whole = (): { readonly gemm: CanonicalGemm | undefined } => {
    buffers.push(...probeBuffers.slice(buffers.length));
    return { gemm: probe };
  };
  if (!probe?.panels || probe.batch !== 1 || buffers.some((b) => b.symbolic)) return whole();
  const colBytes = probe.k * probe.n * 4;
  // Only an operand that expands what it reads (a conv's im2col: each input value in up to
  // k·k patches) pays: a plain operand (a linear's weight or activations) packs no more bytes
  // than it reads, measured the same chunked or whole (a 768-3072-768 step, 1 and 2 threads),
  // and chunks are kernels — GPT-2-small's step took 845 kernels chunked against 533.
  const expands = (side: ExprId, elems: number): boolean => {
    const read = new Set<number>();
    for (const e of onlyLive(s.exprs, [side])) if (e.op === "load") read.add(e.buffer);
    let total = 0;
    for (const id of read) total += numel(buffers.find((b) => b.id === id)?.shape ?? []);
    return elems >= 2 * total;
  };
  // How many values of `v` a chunk takes: whole periods of its inner digits, `inner` columns (or
  // steps of k) per value, a multiple of the panel width, as many as fit the limit; -1 where the
  // most that fit and divide the extent take under a quarter of the limit (a prime batch: one
  // image a chunk), and the GEMM runs whole. Such a cut ran no faster (the MNIST CNN step at
  // batch 127, conv 2 in 127 one-image chunks: 134-139 ms a step against 139 whole, one
  // thread; batch 61: 76 against 62) while every chunk is a module of its own (400 kernels
  // against 21, compile 1.1-1.2 s of CPU against 0.27).
  const chunkOf = (v: IndexVar, side: ExprId, inner: number, bytesPerStep: number, needDigits = false): number => {
    const live = onlyLive(s.exprs, [side]);
    const indices: IndexExpr[] = [];
    for (const e of live) if (e.op === "load") indices.push(e.index, ...(e.valid === false ? [] : e.valid.map((c) => c.x)));
    const digits = digitExtents(v, indices);
    if (!digits && needDigits) return 0;
    const period = digits ? v.extent / digits[0]! : 1;
    const outer = v.extent / period;
    for (let m = outer - 1; m >= 1; m--) {
      const steps = m * period * inner;
      if (outer % m === 0 && steps % PANEL === 0 && steps * bytesPerStep <= gemmChunkTestHooks.maxBytes)
        return steps * bytesPerStep * 4 < gemmChunkTestHooks.maxBytes ? -1 : m * period;
    }
    return 0;
  };
  const col = probe.colVars[0]!;
  const inner = probe.colVars.slice(1).reduce((a, d) => a * d.extent, 1);
  const packed = colBytes >= gemmChunkTestHooks.minBytes && (expands(probe.colSide, probe.k * probe.n) || expands(probe.rowSide, probe.m * probe.k));
  if (!packed) {
    // Chained (chunk-chain.ts): a big output read back chunk by chunk by the sections after
    // it, cut by whole images of a conv's n·h·w columns so that chunk's output and panels fit
    // the limit.
    if (!chained || probe.m * probe.n * 4 < gemmChunkTestHooks.minBytes) return whole();
    const per = chunkOf(col, probe.colSide, inner, Math.max(probe.k, probe.m) * 4, true);
    const chunks = per > 0 ? cut(buffers, (trial) => columnChunks(s, trial, col, per)) : undefined;
    return chunks ? { chunks, col: { v: col, per, chainOnly: true } } : whole();
  }
  // by columns: the outermost column variable (a conv's n, or its flattened n·h·w) is cut
  const perColumn = chunkOf(col, probe.colSide, inner, probe.k * 4);
  const byColumns = perColumn > 0 ? cut(buffers, (trial) => columnChunks(s, trial, col, perColumn)) : undefined;
  if (byColumns) return { chunks: byColumns, col: { v: col, per: perColumn } };
  if (perColumn !== 0) return whole();
  // else by k
  const reduce = s.exprs[s.dots![0]!.reduce]!;
  if (reduce.op !== "reduce_sum" || reduce.vars.length !== 1 || probe.outerSum) return whole();
  const perStep = chunkOf(reduce.vars[0]!, probe.colSide, 1, probe.n * 4);
  const byK = perStep > 0 ? cut(buffers, (trial) => kChunks(s, trial, perStep)) : undefined;
  return byK ? { chunks: byK } : whole();
}

/**
 * The chunks `make` builds over a copy of `buffers`, whose new entries (pack buffers) join
 * `buffers` only when every chunk kept the panel form; undefined otherwise, with `buffers`
 * untouched. A chunk can be too small a GEMM for panels (GEMM_MIN_MACS) where the only cut the
 * limit allows is one value of a prime extent: 8 filters × one 28×28 image × 9 taps, a batch of 149.
 */
function cut(buffers: BufferDecl[], make: (trial: BufferDecl[]) => GemmChunk[] | undefined): GemmChunk[] | undefined {
  const trial = [...buffers];
  const chunks = make(trial);
  if (chunks) buffers.push(...trial.slice(buffers.length));
  return chunks;
}

type GemmChunk = { readonly packs: Kernel[]; readonly section: Section };

/**
 * The plan of section `si` of kernel `ki` (gemmChunks) and, where it is cut into column chunks,
 * the sections after it that read its output chunk by chunk (chunk-chain.ts). A GEMM whose
 * output takes `minBytes` or more and is read within the next kernels is probed in the chained
 * form (cut even where no operand expands); that cut stands only if some section chains.
 */
function planWithChain(
  p: KernelProgram,
  ki: number,
  si: number,
  buffers: BufferDecl[],
): { readonly plan: ReturnType<typeof gemmChunks>; readonly links: ChainLink[] } {
  const s = p.kernels[ki]!.sections[si]!;
  const stored = storedBuffers([s]);
  const readSoon =
    gemmChunkTestHooks.chain && (s.dots?.length ?? 0) > 0 && p.kernels.slice(ki + 1, ki + 5).some((k) => k.reads.some((b) => stored.includes(b)));
  if (!readSoon) return { plan: gemmChunks(s, buffers), links: [] };
  const big = stored.some((id) => numel(buffers.find((b) => b.id === id)?.shape ?? []) * 4 >= gemmChunkTestHooks.minBytes);
  const trial = [...buffers];
  const plan = gemmChunks(s, trial, big);
  const links = "chunks" in plan && plan.col ? chunkChain(p, ki, si, plan.col.v, plan.col.per) : [];
  // a cut made for a chain that found none: the plan without it
  if ("chunks" in plan && plan.col?.chainOnly && links.length === 0) return { plan: gemmChunks(s, buffers), links: [] };
  buffers.push(...trial.slice(buffers.length));
  return { plan, links };
}

/** The chunks of `s` that take `per` values of column variable `v` each; undefined where a chunk is no panel GEMM (see cut). */
function columnChunks(s: Section, buffers: BufferDecl[], v: IndexVar, per: number): GemmChunk[] | undefined {
  const shared: SharedRowPack = {};
  const local = indexVar(`${v.name}c`, per);
  const chunks: GemmChunk[] = [];
  for (let c = 0; c < v.extent / per; c++) {
    const sb = new SectionBuilder(s.domain.map((d) => (d.name === v.name ? local : d)));
    const varMap = new Map([[v.name, addIndex(fromAtom(local), constIndex(c * per))]]);
    const ids = copySectionBody(s, sb, varMap);
    for (const st of s.stores) sb.store(st.buffer, substitute(st.index, varMap), ids[st.value]!);
    const gemm = canonicalGemm({ ...sb.build(), ...sectionSource(s) }, buffers, shared);
    if (!gemm?.panels) return undefined;
    chunks.push({ packs: gemm.packs, section: gemm.section });
  }
  return chunks;
}

/** The chunks of `s` that take `per` steps of its contraction's k each, partial sums in an accumulator; undefined where a chunk is no panel GEMM (see cut). */
function kChunks(s: Section, buffers: BufferDecl[], per: number): GemmChunk[] | undefined {
  const dot = s.dots![0]!;
  const reduce = s.exprs[dot.reduce] as Extract<KExpr, { vars: readonly IndexVar[] }>;
  const v = reduce.vars[0]!;
  const chunks: GemmChunk[] = [];
  const local = indexVar(`${v.name}c`, per);
  const exprs = s.exprs.map((e, id): KExpr => (id === dot.reduce ? { ...reduce, vars: [local] } : e));
  // The accumulator: one f32 per output of the section's domain.
  const accId = buffers.length;
  const size = s.domain.reduce((a, d) => a * d.extent, 1);
  buffers.push({ id: accId, name: `acc${accId}`, dtype: "f32", shape: [size], kind: "temp" });
  const flat = flatIndex(
    s.domain.map(fromAtom),
    s.domain.map((d) => d.extent),
  );
  const count = v.extent / per;
  for (let c = 0; c < count; c++) {
    const sb = new SectionBuilder(s.domain);
    const varMap = new Map([[v.name, addIndex(fromAtom(local), constIndex(c * per))]]);
    let partial = -1;
    const ids = copyExprs(exprs, sb, varMap, undefined, (id, copied) => {
      if (id !== dot.reduce) return copied;
      partial = copied;
      if (c === 0) return copied;
      const before = sb.add({ op: "load", buffer: accId, index: flat, valid: [], dtype: "f32" });
      return sb.add({ op: "add", x: before, y: copied, dtype: "f32" });
    });
    sb.markDot(partial, ids[dot.lhs]!, ids[dot.rhs]!);
    if (c < count - 1) sb.store(accId, flat, ids[dot.reduce]!);
    else for (const st of s.stores) sb.store(st.buffer, st.index, ids[st.value]!);
    const gemm = canonicalGemm({ ...sb.build(), ...sectionSource(s) }, buffers);
    if (!gemm?.panels) return undefined;
    chunks.push({ packs: gemm.packs, section: gemm.section });
  }
  return chunks;
}

/** Which of `exprs` the `roots` need, themselves included: operands and the data refs of their indices. */
function liveFlags(exprs: readonly KExpr[], roots: readonly ExprId[]): boolean[] {
  const live = new Array<boolean>(exprs.length).fill(false);
  for (const r of roots) live[r] = true;
  for (let id = exprs.length - 1; id >= 0; id--) {
    if (!live[id]) continue;
    const e = exprs[id]!;
    for (const o of exprOperands(e)) live[o] = true;
    const indices =
      e.op === "load"
        ? [e.index, ...(e.valid === false ? [] : e.valid.map((c) => c.x))]
        : e.op === "index"
          ? [e.index]
          : e.op === "valid" && e.pred !== false
            ? e.pred.map((c) => c.x)
            : e.op === "rng"
              ? [e.counter]
              : [];
    for (const ix of indices) for (const ref of indexDataRefs(ix)) live[ref] = true;
  }
  return live;
}

/** `exprs` with everything `roots` do not need replaced by a constant (ids stay put). */
function onlyLive(exprs: readonly KExpr[], roots: readonly ExprId[]): KExpr[] {
  const live = liveFlags(exprs, roots);
  return exprs.map((e, id) => (live[id] ? e : { op: "const", value: 0, dtype: e.dtype }));
}

/** Whether expression `id` is or depends on a reduction. */
function hasReduce(exprs: readonly KExpr[], id: ExprId): boolean {
  const live = liveFlags(exprs, [id]);
  for (let i = 0; i < exprs.length; i++) if (live[i] && isReduceExpr(exprs[i]!)) return true;
  return false;
}
