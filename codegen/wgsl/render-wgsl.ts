// One dispatch → a WGSL compute shader: storage bindings per GPU buffer (a pack is read and
// written through u32 words with bitcasts), a flat thread index folded over up to three
// workgroup dimensions (adapters cap each at maxComputeWorkgroupsPerDimension), and each
// section's body from the C-like renderer base, guarded by its own thread count.

import { sectionSourceNote } from "../../compiler/kernel/print.ts";
import { DTYPE_TABLE, isBool, type DType } from "../../compiler/ir/dtype.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import { parallelDepthOf, renderSectionBody, scheduleSection, type BufferAccess } from "../render/base.ts";
import { wgslDialect, wgslHelpersFor } from "./dialect.ts";
import { DEVICE_ELEMENT_BYTES, type BufferPlace, type Dispatch, type WebGpuLimits } from "./layout.ts";
import { matchContraction, renderRegisterMatmul, renderTiledMatmul, useTiledMatmul, type MatmulForm, type TiledMatmulMode } from "./matmul.ts";
import { renderRowKernel, wantsRowKernel } from "./row-reduce.ts";

export const WORKGROUP_SIZE = 64;

type StorageElement = "f32" | "i32" | "u32";
const storageElement = (t: DType): StorageElement => DTYPE_TABLE[t].wgsl.storage;
const STORAGE_ZERO: Readonly<Record<StorageElement, string>> = { u32: "0u", i32: "0i", f32: "0.0f" };

export interface RenderedDispatch {
  readonly name: string;
  readonly source: string;
  /** GPU buffer bound at @binding(i). */
  readonly bindings: readonly number[];
  /** Workgroup counts (x, y, z); all zero when there is nothing to compute. */
  readonly workgroups: readonly [number, number, number];
}

export interface DispatchContext {
  readonly dtypeOf: (buffer: number) => DType;
  readonly nameOf: (buffer: number) => string;
  readonly place: readonly BufferPlace[];
  readonly packs: ReadonlySet<number>;
  readonly limits: WebGpuLimits;
}

export interface DispatchBindings {
  readonly gpuBuffers: readonly number[];
  readonly decls: readonly string[];
  readonly access: BufferAccess;
}

/** One storage binding per GPU buffer the dispatch touches: a typed array unless it is a pack or mixes element types. */
export function dispatchBindings(d: Dispatch, ctx: DispatchContext): DispatchBindings {
  const written = new Set(d.sections.flatMap((s) => s.stores.map((st) => st.buffer)));
  const gpuBuffers = [...new Set(d.buffers.map((b) => ctx.place[b]!.gpuBuffer))].sort((a, b) => a - b);
  const elementOfGpu = new Map<number, StorageElement>();
  for (const g of gpuBuffers) {
    const elems = new Set(d.buffers.filter((b) => ctx.place[b]!.gpuBuffer === g).map((b) => storageElement(ctx.dtypeOf(b))));
    elementOfGpu.set(g, ctx.packs.has(g) || elems.size !== 1 ? "u32" : [...elems][0]!);
  }
  const writable = new Set([...written].map((b) => ctx.place[b]!.gpuBuffer));
  const decls = gpuBuffers.map(
    (g, i) => `@group(0) @binding(${i}) var<storage, ${writable.has(g) ? "read_write" : "read"}> g${g}: array<${elementOfGpu.get(g)}>; // ${d.buffers.filter((b) => ctx.place[b]!.gpuBuffer === g).map(ctx.nameOf).join(", ")}`,
  );
  const element = (buffer: number, index: string): { ref: string; elem: StorageElement } => {
    const p = ctx.place[buffer]!;
    const word = p.offsetBytes / DEVICE_ELEMENT_BYTES;
    return { ref: `g${p.gpuBuffer}[${word === 0 ? index : `${word} + ${index}`}]`, elem: elementOfGpu.get(p.gpuBuffer)! };
  };
  const access: BufferAccess = {
    load(buffer, index, t) {
      const { ref, elem } = element(buffer, index);
      if (isBool(t)) return `(${ref} != ${STORAGE_ZERO[elem]})`;
      return elem === t ? ref : `bitcast<${t}>(${ref})`;
    },
    store(buffer, index, value, t) {
      const { ref, elem } = element(buffer, index);
      if (isBool(t)) return `${ref} = select(0u, 1u, ${value});`;
      return `${ref} = ${elem === t ? value : `bitcast<${elem}>(${value})`};`;
    },
  };
  return { gpuBuffers, decls, access };
}

export interface KernelChoices {
  readonly tiledMatmul?: TiledMatmulMode;
  /** Register blocks only (default; best on CPU adapters) or workgroup-memory tiles. */
  readonly matmulForm?: MatmulForm;
  /** One workgroup per row for long row-level reductions (default true). */
  readonly rowKernels?: boolean;
}

export function renderDispatch(d: Dispatch, ctx: DispatchContext, opts: KernelChoices = {}): RenderedDispatch {
  const { gpuBuffers, decls, access } = dispatchBindings(d, ctx);
  const only = d.sections.length === 1 ? d.sections[0]! : undefined;
  const contraction = only ? matchContraction(only) : undefined;
  if (contraction && useTiledMatmul(contraction, opts.tiledMatmul ?? "auto"))
    return (opts.matmulForm === "workgroup" ? renderTiledMatmul : renderRegisterMatmul)(d, contraction, { gpuBuffers, decls, access }, ctx.limits);
  if (only && opts.rowKernels !== false && wantsRowKernel(only)) return renderRowKernel(d, { gpuBuffers, decls, access }, ctx.limits);

  const body: string[] = [];
  let threads = 0;
  d.sections.forEach((s, i) => {
    const items = scheduleSection(s);
    const depth = parallelDepthOf(s, items);
    const parallel = s.domain.slice(0, depth);
    const count = parallel.reduce((a, v) => a * v.extent, 1);
    if (s.domain.some((v) => v.extent === 0)) return; // an empty tensor: nothing to store
    threads = Math.max(threads, count);
    const source = sectionSourceNote(s);
    body.push(`  if (tid < ${count}) { // section ${i}${s.tile ? `, ${s.tile.rows}x${s.tile.cols} register tile` : ""}${source ? ` ${source}` : ""}`);
    let stride = count;
    for (const v of parallel) {
      stride /= v.extent;
      const q = stride === 1 ? "tid" : `tid / ${stride}`;
      body.push(`    let ${v.name}: i32 = ${v.extent === 1 ? "0" : stride * v.extent === count ? q : `${q} % ${v.extent}`};`);
    }
    body.push(...renderSectionBody(s, items, depth, wgslDialect, access, "    "));
    body.push("  }");
  });
  const workgroups = foldWorkgroups(Math.ceil(threads / WORKGROUP_SIZE), d.name, ctx.limits.maxComputeWorkgroupsPerDimension);
  const [nx, ny] = workgroups;
  const bodyText = body.join("\n");
  const source = [
    `// ${d.name}`,
    ...decls,
    ...wgslHelpersFor(bodyText),
    "",
    `@compute @workgroup_size(${WORKGROUP_SIZE})`,
    "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
    `  let tid = i32(((wid.z * ${Math.max(ny, 1)}u + wid.y) * ${Math.max(nx, 1)}u + wid.x) * ${WORKGROUP_SIZE}u + lid);`,
    bodyText,
    "}",
    "",
  ].join("\n");
  return { name: d.name, source, bindings: gpuBuffers, workgroups };
}

/** Spreads `count` workgroups over x, y, z so that none exceeds `maxPerDimension`. */
export function foldWorkgroups(count: number, kernel: string, maxPerDimension: number): [number, number, number] {
  if (count === 0) return [0, 0, 0];
  const x = Math.min(count, maxPerDimension);
  const y = Math.min(Math.ceil(count / x), maxPerDimension);
  const z = Math.ceil(count / (x * y));
  if (z > maxPerDimension)
    throw new KilnError({ code: "unsupported", message: `kernel ${kernel} needs ${count} workgroups, more than ${maxPerDimension}³ (maxComputeWorkgroupsPerDimension)` });
  return [x, y, z];
}
