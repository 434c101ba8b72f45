// Packs written by their producer (part of wasm's block-contraction pass, after the lane
// axes): a pack kernel that only copies a temp T into a packed temp P (P[f(v)] = T[g(v)],
// g a mixed-radix numbering of T's elements by the pack's loop variables) is dropped, and the
// one section that writes T stores each value into P too, at f(g⁻¹(its T index)). The MLP
// step's weight gradients read the back-propagated gradients gᵀ as 4-row panels
// P[i / 4][k][i % 4]: the GEMM (or ReLU-gradient) section that makes g now writes those panels
// as it goes, so a launch, its barrier and a pass over g go, per layer and step.
// Only where the inverted index needs no division the producer's T store does not (affine in
// its variables, or with the same div/mod terms: a wide block's overlapping last rows) and
// runs along its lane variable at stride 1 or at its T store's stride (no v128 store turns
// into per-lane ones); T itself is still written for its other readers, and with none left it
// goes from the program (a linear's forward writing the next layer's x panels).

import { atomKey, divIndex, linearStride, modIndex, substitute, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { sectionLoads, type BufferDecl, type Kernel, type KernelProgram, type Section, type Store } from "./kernel-ir.ts";
import { renameBuffers } from "./section-key.ts";
import { numel } from "../util/shape.ts";

/**
 * `index` as a mixed-radix number of `domain`'s variables that enumerates [0, size) once: the
 * variables ordered by stride, each stride the product of the extents below it, constant 0.
 */
function radixOf(index: IndexExpr, domain: readonly IndexVar[], size: number): { v: IndexVar; stride: number }[] | undefined {
  if (index.constant !== 0) return undefined;
  const digits: { v: IndexVar; stride: number }[] = [];
  for (const t of index.terms) {
    if (t.atom.kind !== "var") return undefined;
    const name = t.atom.name;
    const v = domain.find((d) => d.name === name);
    if (!v) return undefined;
    digits.push({ v, stride: t.coef });
  }
  // Every variable of extent > 1 takes part (an unused one would copy an element twice).
  if (domain.some((d) => d.extent > 1 && !digits.some((g) => g.v.name === d.name))) return undefined;
  digits.sort((a, b) => a.stride - b.stride);
  let next = 1;
  for (const g of digits) {
    if (g.stride !== next) return undefined;
    next *= g.v.extent;
  }
  return next === size ? digits : undefined;
}

/**
 * Whether `e` needs nothing the producer's own store index `like` does not: its terms are domain
 * variables or divisions and remainders `like` has too (a wide block's overlapping last row
 * block, row = 6·(b mod (n − 1)) + (extent − 6)·(b div (n − 1)) + r), none data-dependent.
 */
function computedLike(e: IndexExpr, like: IndexExpr): boolean {
  const has = new Set(like.terms.filter((t) => t.atom.kind !== "var").map((t) => atomKey(t.atom)));
  return e.terms.every((t) => t.atom.kind === "var" || ((t.atom.kind === "div" || t.atom.kind === "mod") && has.has(atomKey(t.atom))));
}

/** The plain copy `pack` makes: source buffer, destination, and the two indices; undefined if it is not one. */
function plainCopy(pack: Kernel): { source: number; section: Section; load: IndexExpr; store: Store } | undefined {
  if (pack.sections.length !== 1 || pack.writes.length !== 1) return undefined;
  const s = pack.sections[0]!;
  if (s.form || s.stores.length !== 1 || s.exprs.some((e) => e.op !== "load" && e.op !== "const")) return undefined;
  const loads = s.exprs.filter((e) => e.op === "load");
  const load = loads[0];
  if (loads.length !== 1 || load?.op !== "load" || load.valid === false || load.valid.length > 0) return undefined;
  const store = s.stores[0]!;
  if (store.buffer !== pack.writes[0] || s.exprs[store.value] !== load) return undefined;
  return { source: load.buffer, section: s, load: load.index, store };
}

/** The program with every pack that qualifies folded into its source's producer (see the module comment). */
export function packsInProducers(p: KernelProgram): KernelProgram {
  if (p.buffers.some((b) => b.symbolic)) return p; // a symbolic batch's row bounds: not worth the cases
  const kernels: (Kernel | undefined)[] = [...p.kernels];
  const dead = new Set<number>();
  for (let ki = 0; ki < kernels.length; ki++) {
    const pack = kernels[ki];
    const copy = pack && plainCopy(pack);
    if (!copy) continue;
    const source = p.buffers[copy.source]!;
    const packed = p.buffers[copy.store.buffer]!;
    if (source.kind !== "temp" || packed.kind !== "temp" || source.dtype !== packed.dtype) continue;
    // The pack reads every element of T once and fills P…
    const size = numel(source.shape);
    const digits = radixOf(copy.load, copy.section.domain, size);
    if (!digits || numel(packed.shape) !== size) continue;
    // …T has one writer, a launched section of an earlier kernel, and nothing else writes P.
    const writers: { k: number; s: number }[] = [];
    let packWriters = 0;
    kernels.forEach((k, kj) =>
      k?.sections.forEach((s, sj) => {
        if (s.stores.some((st) => st.buffer === copy.source)) writers.push({ k: kj, s: sj });
        if (s.stores.some((st) => st.buffer === copy.store.buffer)) packWriters++;
      }),
    );
    if (writers.length !== 1 || packWriters !== 1 || writers[0]!.k >= ki) continue;
    const { k: kj, s: sj } = writers[0]!;
    const producer = kernels[kj]!;
    const section = producer.sections[sj]!;
    if (section.form) continue;
    const lane = section.domain[section.domain.length - 1];
    // Each T store's element, in the pack's variables, then at its place in P.
    const added: Store[] = [];
    for (const st of section.stores) {
      if (st.buffer !== copy.source) continue;
      const vars = new Map<string, IndexExpr>();
      digits.forEach((g, i) => {
        const quotient = divIndex(st.index, g.stride);
        vars.set(g.v.name, i === digits.length - 1 ? quotient : modIndex(quotient, g.v.extent));
      });
      const index = substitute(copy.store.index, vars);
      if (!computedLike(index, st.index)) break;
      const stride = lane && linearStride(index, lane.name);
      if (lane && stride !== 0 && stride !== 1 && stride !== linearStride(st.index, lane.name)) break;
      added.push({ buffer: copy.store.buffer, index, value: st.value });
    }
    if (added.length !== section.stores.filter((st) => st.buffer === copy.source).length) continue;
    kernels[ki] = undefined;
    // T's own stores stay for its other readers; with none left they go, and T with them.
    const read = kernels.some((k) => k?.sections.some((s) => sectionLoads(s).has(copy.source)));
    const kept = read ? section.stores : section.stores.filter((st) => st.buffer !== copy.source);
    const sections = producer.sections.map((s, i) => (i === sj ? { ...s, stores: [...kept, ...added] } : s));
    const writes = [...new Set([...producer.writes, copy.store.buffer])].filter((b) => read || b !== copy.source).sort((a, b) => a - b);
    kernels[kj] = { ...producer, sections, writes };
    if (!read) dead.add(copy.source);
  }
  return withoutBuffers({ ...p, kernels: kernels.filter((k): k is Kernel => k !== undefined) }, dead);
}

/** `p` without the temps in `dead` (no section touches them any more), the other buffers renumbered. */
function withoutBuffers(p: KernelProgram, dead: ReadonlySet<number>): KernelProgram {
  if (dead.size === 0) return p;
  const to = new Map<number, number>();
  const buffers: BufferDecl[] = [];
  for (const b of p.buffers) {
    if (dead.has(b.id)) continue;
    to.set(b.id, buffers.length);
    buffers.push({ ...b, id: buffers.length });
  }
  const ids = (list: readonly number[]): number[] => list.filter((b) => !dead.has(b)).map((b) => to.get(b)!);
  return {
    ...p,
    buffers,
    kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map((s) => renameBuffers(s, to)), reads: ids(k.reads), writes: ids(k.writes) })),
    inputs: p.inputs.map((i) => ({ ...i, buffer: to.get(i.buffer)! })),
    outputs: p.outputs.map((o) => ({ ...o, buffer: to.get(o.buffer)! })),
  };
}
