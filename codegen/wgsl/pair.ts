// Whole-word stores of packed 16-bit tensors (f16 without `shader-f16`, bf16 always: two to a
// u32 word, codegen/wgsl/dispatch.ts). Where one thread would store one half of a word and a
// neighbour the other, the word needs atomics; where a section's 16-bit store is contiguous
// along its innermost thread variable, each thread instead takes an even-aligned pair of
// consecutive outputs (that variable steps by 2), computes both, and stores the word once with
// a plain store: `word = lo | (hi << 16)`. pairPlan decides, from the store indices and the
// buffers' placement, which stores pair (conservatively: anything it cannot prove keeps the
// atomic path); renderPairedBody writes the two lanes and the word stores.

import { halfOf } from "../../compiler/ir/dtype.ts";
import { bounds, indexVars, type IndexExpr } from "../../compiler/kernel/index-expr.ts";
import type { ExprId, Section, Store } from "../../compiler/kernel/kernel-ir.ts";
import type { ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { symbolicBound } from "../../compiler/kernel/symbolic-bound.ts";
import { renderIndex, renderSectionBody, type CLikeDialect } from "../render/base.ts";
import { wgslStoreHalf } from "./dialect.ts";
import type { DispatchContext, PairAccess } from "./dispatch.ts";
import type { Dispatch } from "./layout.ts";
import { isContiguous } from "./vector.ts";

/** A section whose 16-bit stores into `buffers` each write whole words, two outputs a thread along `v`. */
export interface PairPlan {
  /** The innermost thread variable: a thread takes v = 2t and 2t + 1. */
  readonly v: string;
  readonly extent: number;
  /** Program buffers stored as whole words (one store each in the section). */
  readonly buffers: ReadonlySet<number>;
}

/**
 * Whether `index` puts consecutive values of `v` (coefficient 1) on consecutive elements from
 * an even base: every other term an even multiple of a variable or of a div/mod not reading
 * `v`, the constant even. Gathers (data atoms) never pair.
 */
function pairsAlong(index: IndexExpr, v: string): boolean {
  return index.terms.every((t) => t.atom.kind !== "data") && isContiguous(index, v, 2, NO_VECTORS);
}

const NO_VECTORS: ReadonlySet<ExprId> = new Set();

/** A store's slot (GPU buffer and byte offset: one tensor's words, or an in-place alias's) and the words its index can reach. */
function storeWords(ctx: DispatchContext, st: Store): { readonly key: string; readonly lo: number; readonly hi: number } {
  const p = ctx.place[st.buffer]!;
  const [lo, hi] = bounds(st.index);
  return { key: `${p.gpuBuffer}+${p.offsetBytes}`, lo: Math.floor(lo / 2), hi: Math.floor(hi / 2) };
}

/**
 * The section's pair plan, or undefined where none of its 16-bit stores pairs. A store of a
 * packed 16-bit buffer pairs when: every domain variable is a thread's (`depth`: the store runs
 * once a thread, outside any serial loop), the section is no register tile, its index is
 * contiguous from an even base along the innermost variable `v` (pairsAlong), the words its
 * index reaches meet no other store's of the dispatch into that slot (so no other thread
 * writes any of its words: two sections writing the halves of a tensor split at an even
 * element both pair, split at an odd one neither), and `v`'s extent is even, or odd with `v`
 * the only variable of extent above 1 in the index (one run of elements: the last thread's
 * lone element keeps its word's other half by a plain read-modify-write, which no other thread
 * writes). Never along a symbolic batch's shrinkable variable (its dispatch shrinks by whole
 * rows of threads). `halfBound`: the buffers stored through u32 words (not array<f16>).
 */
export function pairPlan(s: Section, depth: number, d: Dispatch, ctx: DispatchContext, halfBound: (buffer: number) => boolean): PairPlan | undefined {
  const inner = s.domain.at(-1);
  if (!inner || s.tile || depth !== s.domain.length || inner.extent < 2) return undefined;
  if (ctx.buffers && symbolicBound(s, ctx.buffers)?.v === inner.name) return undefined;
  const buffers = new Set<number>();
  for (const st of s.stores) {
    if (!pairableStore(s, st, inner.name, d, ctx, halfBound)) continue;
    if (inner.extent % 2 !== 0 && st.index.terms.some((t) => t.atom.kind === "var" && t.atom.name !== inner.name && t.atom.extent > 1)) continue;
    buffers.add(st.buffer);
  }
  return buffers.size === 0 ? undefined : { v: inner.name, extent: inner.extent, buffers };
}

/**
 * Whether `st` (a store of section `s`) is a packed 16-bit store (`halfBound`: through u32
 * words, not array<f16>) that a thread taking v = 2t and 2t + 1 writes in whole words: its
 * index contiguous from an even element along `v` (pairsAlong), the only store of its buffer
 * in the section, and the words it reaches met by no other store of the dispatch into that slot.
 * The caller checks the rest (which threads take which pairs, an odd extent).
 */
export function pairableStore(s: Section, st: Store, v: string, d: Dispatch, ctx: DispatchContext, halfBound: (buffer: number) => boolean): boolean {
  if (halfOf(ctx.dtypeOf(st.buffer)) === undefined || !halfBound(st.buffer) || !pairsAlong(st.index, v)) return false;
  if (s.stores.some((o) => o !== st && o.buffer === st.buffer)) return false; // one word variable a buffer
  const own = storeWords(ctx, st);
  return !d.sections.some((sec) =>
    sec.stores.some((o) => {
      if (o === st) return false;
      const w = storeWords(ctx, o);
      return w.key === own.key && w.lo <= own.hi && own.lo <= w.hi;
    }),
  );
}

/**
 * The 16-bit stores of a section whose thread writes whole rows from serial loops (`depth`
 * below the domain's length: 16-bit softmax, crossEntropy, layerNorm) where each thread's
 * words are its own: the serial variables run row-major over one run of R elements (the
 * innermost with coefficient 1), the thread variables' terms and the constant are even, R is
 * even (or odd with no thread variable in the index) and no other store of the dispatch meets
 * its words (pairableStore's checks). No other thread then writes any word such a store
 * touches, so each 16-bit store is a plain read-modify-write of its word (dispatch.ts).
 */
export function exclusiveStores(s: Section, depth: number, d: Dispatch, ctx: DispatchContext, halfBound: (buffer: number) => boolean): ReadonlySet<number> {
  const serial = s.domain.slice(depth).filter((v) => v.extent > 1);
  const inner = serial.at(-1);
  const out = new Set<number>();
  if (!inner || s.tile) return out;
  const stride = new Map<string, number>();
  let run = 1;
  for (let i = serial.length - 1; i >= 0; i--) {
    stride.set(serial[i]!.name, run);
    run *= serial[i]!.extent;
  }
  const threadVars = new Set(s.domain.slice(0, depth).map((v) => v.name));
  for (const st of s.stores) {
    if (!pairableStore(s, st, inner.name, d, ctx, halfBound)) continue; // 16-bit, even base, coefficient 1 along `inner`, its words its own
    const vars = st.index.terms.flatMap((t) => (t.atom.kind === "var" ? [[t.atom.name, t.coef, t.atom.extent] as const] : []));
    if (vars.filter(([v]) => stride.has(v)).length !== serial.length) continue;
    if (vars.some(([v, coef]) => (stride.has(v) ? stride.get(v) !== coef : !threadVars.has(v)))) continue;
    if (st.index.terms.some((t) => (t.atom.kind === "div" || t.atom.kind === "mod") && [...indexVars(t.atom.x)].some((v) => stride.has(v)))) continue;
    if (run % 2 !== 0 && vars.some(([v, , extent]) => threadVars.has(v) && extent > 1)) continue;
    out.add(st.buffer);
  }
  return out;
}

/**
 * The sections' pair plans and thread-exclusive stores, each keeping only the buffers that
 * every store in the dispatch writes without atomics (a buffer also stored half by half
 * elsewhere binds atomic, and all its stores go through the atomic path).
 */
export function wholeWordPlans(
  d: Dispatch,
  plans: readonly (PairPlan | undefined)[],
  exclusive: readonly ReadonlySet<number>[],
): { readonly pairs: (PairPlan | undefined)[]; readonly exclusive: ReadonlySet<number> } {
  const owned = (i: number, b: number): boolean => plans[i]?.buffers.has(b) === true || exclusive[i]?.has(b) === true;
  const whole = (b: number): boolean => d.sections.every((s, i) => !s.stores.some((st) => st.buffer === b) || owned(i, b));
  const pairs = plans.map((p) => {
    const buffers = new Set([...(p?.buffers ?? [])].filter(whole));
    return p && buffers.size > 0 ? { ...p, buffers } : undefined;
  });
  return { pairs, exclusive: new Set(exclusive.flatMap((e) => [...e].filter(whole))) };
}

/** The thread's first element of the pair (v = this and this + 1). */
export const PAIR_START = "kiln_v0";
const wordVar = (buffer: number): string => `kiln_w${buffer}`;

/**
 * The section's body with `PAIR_START` (even) bound by the caller: the body twice, in blocks
 * binding v to PAIR_START and PAIR_START + 1 (the second only when in range), the paired stores
 * gathering their 16-bit patterns into one word a buffer, then one store per word.
 */
export function renderPairedBody(
  s: Section,
  items: readonly ScheduleItem[],
  plan: PairPlan,
  dialect: CLikeDialect,
  access: PairAccess,
  indent: string,
  limits?: ReadonlyMap<string, string>,
): string[] {
  const stores = s.stores.filter((st) => plan.buffers.has(st.buffer));
  const lane = (at: 0 | 1, ind: string): string[] => {
    const laneAccess: PairAccess = {
      ...access,
      store: (buffer, index, value, t) => {
        if (!plan.buffers.has(buffer)) return access.store(buffer, index, value, t);
        const bits = wgslStoreHalf(value, t);
        return at === 0 ? `${wordVar(buffer)} = ${bits};` : `${wordVar(buffer)} = ${wordVar(buffer)} | (${bits} << 16u);`;
      },
    };
    return [
      `${ind}{`,
      `${ind}  let ${plan.v}: i32 = ${PAIR_START}${at === 0 ? "" : " + 1"};`,
      ...renderSectionBody(s, items, s.domain.length, dialect, laneAccess, `${ind}  `, limits),
      `${ind}}`,
    ];
  };
  // The word stores, v bound to the pair's first element (the stores' indices name it).
  const storeWords = (lone: boolean, ind: string): string[] => [
    `${ind}{`,
    `${ind}  let ${plan.v}: i32 = ${PAIR_START};`,
    ...stores.map((st) => `${ind}  ${access.storeWord(st.buffer, renderIndex(st.index, dialect), wordVar(st.buffer), lone)}`),
    `${ind}}`,
  ];
  const lines = [...stores.map((st) => `${indent}var ${wordVar(st.buffer)}: u32 = 0u;`), ...lane(0, indent)];
  if (plan.extent % 2 === 0) return [...lines, ...lane(1, indent), ...storeWords(false, indent)];
  // An odd extent: the last thread's pair is one element, the low half of a word whose high half it leaves.
  return [
    ...lines,
    `${indent}if (${PAIR_START} + 1 < ${plan.extent}) {`,
    ...lane(1, `${indent}  `),
    ...storeWords(false, `${indent}  `),
    `${indent}} else {`,
    ...storeWords(true, `${indent}  `),
    `${indent}}`,
  ];
}
