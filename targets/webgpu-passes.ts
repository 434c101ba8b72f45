// WebGPU's kernel passes: the choice of a WGSL template per section, recorded as a `form`
// fact on the kernel IR (docs/kernel-ir.md) so it is dumped (`NN-matmul-form.kir`,
// `NN-row-kernels.kir`, `NN-vector-form.kir`), verified and FileCheck-tested; codegen/wgsl renders what the fact
// says and decides nothing. `matmul-form` runs first: a section it takes is not a row kernel.
// Both choices apply where the section is alone in its dispatch (a kernel of one section, or
// one split out for the device's limits); a matmul section always gets a dispatch of its own.

import type { KernelPass } from "../compiler/backend.ts";
import type { KernelProgram, MatmulForm, MatmulParams, Section, SectionForm } from "../compiler/kernel/kernel-ir.ts";
import { reduceElements, type ScheduleItem } from "../compiler/kernel/schedule.ts";
import { mergeSummedDot } from "../compiler/kernel/summed-dot.ts";
import { parallelDepthOf, scheduleSection } from "../codegen/render/base.ts";
import { matchContraction } from "../codegen/wgsl/matmul.ts";
import { rowLevelItems, rowReducible } from "../codegen/wgsl/row-reduce.ts";
import { VECTOR_WIDTH, vectorPlan } from "../codegen/wgsl/vector.ts";

/** "auto": contractions with at least 64x64 outputs (rows and columns flattened), 16 on each side, and k ≥ 8; "always"/"never" for tests and benchmarks. */
export type TiledMatmulMode = "auto" | "always" | "never";

/** A contraction is worth a matmul kernel from this many outputs (one 64x64 workgroup tile) … */
const MIN_MATMUL_OUTPUTS = 64 * 64;
/** … with this many rows and columns at least (a conv's 32 out channels over 50176 pixels is one) … */
const MIN_MATMUL_SIDE = 16;
/**
 * … and this long a k: the first conv's 3x3 window (k = 9, 50176x32 outputs) takes 8x8
 * register blocks too (each operand load then serves 8 outputs instead of one).
 */
const MIN_MATMUL_K = 8;

/** A row-level reduction at least this long is worth a workgroup. */
const MIN_ROW_EXTENT = 64;
/**
 * From this many rows on, one thread per row keeps the adapter busy and skips the barriers:
 * on lavapipe the logits (1280 rows of 512) take 12 ms as row kernels, 3 ms as threads, and a
 * bias gradient (512 rows of 128) 2.9 ms against 0.3 ms.
 */
const MAX_ROWS = 256;

export interface MatmulFormOptions {
  /** Which contractions become matmul kernels (default "auto"). */
  readonly tiledMatmul?: TiledMatmulMode;
  /** How they render (default "registers": 8x8 blocks per thread; best on CPU adapters). */
  readonly matmulForm?: MatmulForm;
  /** Outputs per thread, threads per workgroup and k unrolling (default: the form's, codegen/wgsl/matmul.ts). */
  readonly matmulParams?: MatmulParams;
}

export interface VectorFormOptions {
  /** `form vector width=4` on elementwise sections whose innermost loop allows it (default true). */
  readonly vectorize?: boolean;
}

export interface RowKernelOptions {
  /** One workgroup per row for long row-level reductions (default true). */
  readonly rowKernels?: boolean;
}

/** Each kernel's sections through `f`. */
function mapSections(p: KernelProgram, f: (s: Section) => Section): KernelProgram {
  return { ...p, kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map(f) })) };
}

/** Sets `form` on the sections `choose` picks (keeping any already set). */
function markSections(p: KernelProgram, choose: (s: Section) => SectionForm | undefined): KernelProgram {
  return {
    ...p,
    kernels: p.kernels.map((k) => ({
      ...k,
      sections: k.sections.map((s): Section => {
        if (s.form) return s;
        const form = choose(s);
        return form ? { ...s, form } : s;
      }),
    })),
  };
}

/**
 * The subgroup form also takes a contraction with few outputs and a long k: the first conv's
 * filter gradient (32 x 9 outputs, k = 50176 pixels) ran one thread per output, two per-lane
 * loads per fma, 88 ms of a 611 ms CNN step on lavapipe; as a subgroup matmul each k step is a
 * few loads shared by 16 rows' broadcasts.
 */
const MIN_SUBGROUP_LONG_K = 1024;

/** Whether a section's contraction (its `dot` fact, in the shape codegen/wgsl/matmul.ts renders) gets a matmul kernel. */
export function wantsMatmul(s: Section, mode: TiledMatmulMode = "auto", form: MatmulForm = "registers"): boolean {
  const c = matchContraction(s);
  if (c === undefined || mode === "never") return false;
  if (mode === "always") return true;
  if (form === "subgroup" && c.k.extent >= MIN_SUBGROUP_LONG_K && c.M * c.N >= MIN_MATMUL_SIDE) return true;
  return c.M * c.N >= MIN_MATMUL_OUTPUTS && c.M >= MIN_MATMUL_SIDE && c.N >= MIN_MATMUL_SIDE && c.k.extent >= MIN_MATMUL_K;
}

/**
 * `matmul-form`: `form matmul registers|workgroup` on the contractions worth a matmul kernel,
 * with `rows= cols= threads= unroll=` when `matmulParams` gives them (else the `tune` pass
 * sets the adapter kind's or a tuned choice, or none: the renderer's defaults).
 */
export function matmulFormPass(opts: MatmulFormOptions = {}): KernelPass {
  const mode = opts.tiledMatmul ?? "auto";
  const kind = opts.matmulForm ?? "registers";
  const form: SectionForm = { kind: "matmul", form: kind, ...(opts.matmulParams ? { params: opts.matmulParams } : {}) };
  const formed = (s: Section): Section => {
    if (s.form) return s;
    if (wantsMatmul(s, mode, kind)) return { ...s, form };
    // A weight gradient (a batched dot summed over its batch) is a matmul with k over both sums.
    const merged = mergeSummedDot(s);
    return merged && wantsMatmul(merged, mode, kind) ? { ...merged, form } : s;
  };
  return {
    name: "matmul-form",
    run: (program) =>
      program.buffers.some((b) => b.symbolic) ? markSections(program, (s) => (wantsMatmul(s, mode, kind) ? form : undefined)) : mapSections(program, formed),
  };
}

/** Whether a section should run one workgroup per row: a long row-level reduction over fewer than 256 rows. */
export function wantsRowKernel(s: Section): boolean {
  const items = scheduleSection(s);
  const depth = parallelDepthOf(s, items);
  if (s.domain.slice(0, depth).reduce((a, v) => a * v.extent, 1) >= MAX_ROWS) return false;
  const isWorthIt = (it: ScheduleItem): boolean =>
    it.kind === "reduce" && reduceElements(it) >= MIN_ROW_EXTENT && it.reduces.every((r) => rowReducible(s.exprs[r]!.dtype));
  return rowLevelItems(items, depth).some(isWorthIt);
}

/** `row-kernels`: `form row` on the sections worth a workgroup per row (none with `rowKernels: false`). */
export function rowKernelsPass(opts: RowKernelOptions = {}): KernelPass {
  const on = opts.rowKernels !== false;
  return { name: "row-kernels", run: (program) => (on ? markSections(program, (s) => (wantsRowKernel(s) ? { kind: "row" } : undefined)) : program) };
}

/**
 * `vector-form`: `form vector width=4` on the sections left without a form whose innermost
 * domain loop is a multiple of 4 long and read and written contiguously and aligned
 * (codegen/wgsl/vector.ts's vectorPlan); render falls back to one element per thread where the
 * buffers' placement forbids vec4 bindings.
 */
export function vectorFormPass(opts: VectorFormOptions = {}): KernelPass {
  const on = opts.vectorize !== false;
  const form: SectionForm = { kind: "vector", width: VECTOR_WIDTH };
  return { name: "vector-form", run: (program) => (on ? markSections(program, (s) => (vectorPlan(s, VECTOR_WIDTH) ? form : undefined)) : program) };
}
