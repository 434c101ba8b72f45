// Column-panel packs run inside their GEMM (the last step of wasm's block-contraction pass): a
// pack kernel that copies a GEMM's column operand into panels, read by exactly one section
// whose split loop walks those panels (column blocks outside row blocks: iteration p reads
// panel p alone), becomes a `form prologue` section of the GEMM's kernel. The GEMM's function
// then packs panel p at the start of its iteration p (emit-section.ts), so the copy is split
// between threads like the GEMM, the panel is read back from L1 instead of memory, and a launch
// and its barrier go: the MLP step's weights were repacked by five launches of their own that
// two threads sped up little (memory-bound copies of whole weight matrices).
// Only plain copies (one unmasked load) move, and only where moving the copy later — to the
// GEMM's launch — reads the same values: nothing from the pack to the GEMM writes what it reads.

import { bounds, flatIndex, fromAtom, indexVar, linearStride, substitute, type IndexExpr, type IndexVar } from "./index-expr.ts";
import { SectionBuilder, sectionLoads, sectionSource, type Kernel, type KernelProgram, type Section } from "./kernel-ir.ts";
import { copyExprs } from "./tile.ts";
import { numel } from "../util/shape.ts";

/** The first loop of extent > 1: the one threads split. */
const splitVar = (s: Section): IndexVar | undefined => s.domain.find((v) => v.extent > 1);

/**
 * Whether `index` reads or writes only the `panel`-element block of the split variable's value:
 * a stride of `panel` along `v`, the rest in [0, panel).
 */
function withinPanel(index: IndexExpr, v: IndexVar, panel: number): boolean {
  if (linearStride(index, v.name) !== panel) return false;
  const [lo, hi] = bounds(substitute(index, new Map([[v.name, { terms: [], constant: 0 }]])));
  return lo >= 0 && hi < panel;
}

/**
 * The pack's section over [p < panels, c < q, rest…] where its split loop was [v < panels·q,
 * rest…] (v = q·p + c), so its split loop is the GEMM's; the section itself when it already is.
 */
function splitByPanels(s: Section, panels: number): Section | undefined {
  const v = splitVar(s)!;
  if (v.extent === panels) return s;
  if (v.extent % panels !== 0) return undefined;
  const q = v.extent / panels;
  const p = indexVar(`${v.name}_p`, panels);
  const c = indexVar(`${v.name}_c`, q);
  const domain = s.domain.flatMap((d) => (d === v ? [p, c] : [d]));
  const varMap = new Map([[v.name, flatIndex([fromAtom(p), fromAtom(c)], [panels, q])]]);
  const sb = new SectionBuilder(domain);
  const ids = copyExprs(s.exprs, sb, varMap);
  for (const st of s.stores) sb.store(st.buffer, substitute(st.index, varMap), ids[st.value]!);
  return { ...sb.build(), ...sectionSource(s) };
}

/** The program with every pack that qualifies moved into its GEMM's kernel as a prologue (see the module comment). */
export function panelPrologues(p: KernelProgram): KernelProgram {
  // A symbolic batch bounds split loops at run time: not worth the cases.
  if (p.buffers.some((b) => b.symbolic)) return p;
  const kernels: (Kernel | undefined)[] = [...p.kernels];
  const aliased = new Map<number, number>(); // output buffer -> the input buffer it updates
  for (const o of p.outputs) {
    const input = o.aliases === undefined ? undefined : p.inputs.find((i) => i.name === o.aliases);
    if (input) aliased.set(o.buffer, input.buffer);
  }
  for (let ki = 0; ki < kernels.length; ki++) {
    const pack = kernels[ki];
    if (!pack || pack.sections.length !== 1 || pack.writes.length !== 1) continue;
    const ps = pack.sections[0]!;
    const out = pack.writes[0]!;
    const buffer = p.buffers[out]!;
    // A plain copy: one unmasked load (constants aside), stored once, into a temp of its own.
    const loads = ps.exprs.filter((e) => e.op === "load");
    const load = loads[0];
    if (buffer.kind !== "temp" || ps.form || loads.length !== 1 || ps.exprs.some((e) => e.op !== "load" && e.op !== "const")) continue;
    if (load?.op !== "load" || load.valid === false || load.valid.length > 0) continue;
    if (ps.stores.length !== 1 || ps.stores[0]!.buffer !== out || ps.exprs[ps.stores[0]!.value] !== load) continue;
    // Its one reader: a launched section of a later kernel.
    const readers: { k: number; s: number }[] = [];
    kernels.forEach((k, kj) =>
      k?.sections.forEach((s, sj) => {
        if (kj !== ki && sectionLoads(s).has(out)) readers.push({ k: kj, s: sj });
      }),
    );
    if (readers.length !== 1 || readers[0]!.k < ki) continue;
    const { k: kj, s: sj } = readers[0]!;
    const gemmKernel = kernels[kj]!;
    const gemm = gemmKernel.sections[sj]!;
    const gv = splitVar(gemm);
    if (!gv || gemm.form || !gemmKernel.sections.every((s) => s.form?.kind !== "prologue" || s.form.of !== sj)) continue;
    const panel = numel(buffer.shape) / gv.extent;
    if (!Number.isInteger(panel)) continue;
    // Iteration i of the GEMM reads panel i alone…
    if (!gemm.exprs.every((e) => e.op !== "load" || e.buffer !== out || withinPanel(e.index, gv, panel))) continue;
    // …and iteration i of the pack writes it.
    const moved = splitByPanels(ps, gv.extent);
    const mv = moved && splitVar(moved);
    if (!moved || !mv || moved.domain.filter((v) => v.extent > 1).length < 2 || !withinPanel(moved.stores[0]!.index, mv, panel)) continue;
    // Nothing from the pack's launch to the GEMM's writes what the pack reads (an in-place update included).
    const sources = new Set(pack.reads);
    const writesSource = (k: Kernel | undefined): boolean => !!k && k.writes.some((w) => sources.has(w) || sources.has(aliased.get(w) ?? -1));
    if (kernels.slice(ki + 1, kj + 1).some(writesSource)) continue;
    const prologue: Section = { ...moved, form: { kind: "prologue", of: sj } };
    kernels[kj] = {
      ...gemmKernel,
      sections: [...gemmKernel.sections, prologue],
      reads: [...new Set([...gemmKernel.reads, ...pack.reads])].sort((a, b) => a - b),
      writes: [...new Set([...gemmKernel.writes, out])].sort((a, b) => a - b),
    };
    kernels[ki] = undefined;
  }
  return { ...p, kernels: kernels.filter((k): k is Kernel => k !== undefined) };
}
