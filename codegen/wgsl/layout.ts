// Device memory layout of a kernel program under a WebGPU adapter's limits: which GPU buffer
// (and byte offset) holds each tensor, and which dispatches run each kernel. Memory slots come
// from the driver's planner (compiler/kernel/program-memory.ts); a kernel binding more buffers than
// maxStorageBuffersPerShaderStage is split by sections, then its smallest slots are packed into
// one shared buffer read through u32 words; a tensor over maxStorageBufferBindingSize is refused.
// This is webgpu's `device-layout` stage of the compile driver (after the memory plan, before
// render), dumped as `NN-device-layout.txt` by formatDeviceLayout.

import { exprOperands, type BufferDecl, type Kernel, type KernelProgram, type Section } from "../../compiler/kernel/kernel-ir.ts";
import { halfOf, type DType } from "../../compiler/ir/dtype.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import { numel } from "../../compiler/util/shape.ts";
import { rowsSizeOf } from "./row-limits.ts";

/** The adapter limits codegen respects (names as in GPUSupportedLimits). */
export interface WebGpuLimits {
  readonly maxStorageBuffersPerShaderStage: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
}

/** WebGPU's guaranteed minimums: what any adapter supports. */
export const webGpuDefaultLimits: WebGpuLimits = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 134217728,
  maxBufferSize: 268435456,
};

/** A storage word: f32, i32 and bool (as u32; WGSL has no bool storage) take one each. */
export const DEVICE_ELEMENT_BYTES = 4;
/** Bytes of one element on the device: f16/bf16 are packed two to a u32 word (codegen/wgsl/dispatch.ts). */
export const deviceElementBytes = (t: DType): number => (halfOf(t) !== undefined ? 2 : DEVICE_ELEMENT_BYTES);
/** Bytes `count` elements of `t` take on the device: whole words (an odd 16-bit tensor's last word holds one). */
export const deviceBytesOf = (t: DType, count: number): number => Math.ceil((count * deviceElementBytes(t)) / 4) * 4;
// Pack members start on 256-byte boundaries (WebGPU's default storage offset alignment).
const PACK_ALIGNMENT_BYTES = 256;

export interface BufferPlace {
  readonly gpuBuffer: number;
  readonly offsetBytes: number;
}

/** One compute dispatch: some sections of one kernel. */
export interface Dispatch {
  readonly name: string;
  readonly sections: readonly Section[];
  /** Program buffers the rendered sections touch (dead loads excluded). */
  readonly buffers: readonly number[];
}

export interface DeviceLayout {
  readonly place: readonly BufferPlace[];
  readonly gpuBufferBytes: readonly number[];
  /** GPU buffers that hold several slots (read through u32 words at offsets). */
  readonly packs: ReadonlySet<number>;
  readonly dispatches: readonly Dispatch[];
  readonly peakBytes: number;
}

export const deviceBytes = (b: BufferDecl): number => deviceBytesOf(b.dtype, numel(b.shape));

/** The memory plan's slots (compiler/kernel/program-memory.ts), planned with deviceElementBytes. */
export interface PlannedSlots {
  readonly slotOf: readonly number[];
  readonly slotBytes: readonly number[];
}

export interface LayoutChoices {
  /** Sections that get a dispatch of their own (a tiled matmul needs its own workgroup shape). */
  readonly ownDispatch?: (s: Section) => boolean;
}

export function planDeviceLayout(program: KernelProgram, plan: PlannedSlots, limits: WebGpuLimits, choices: LayoutChoices = {}): DeviceLayout {
  const buffers = program.buffers;
  const slotOf = (id: number): number => plan.slotOf[id] ?? 0;

  const dispatches = program.kernels.flatMap((k) => splitKernel(k, slotOf, limits.maxStorageBuffersPerShaderStage, program.buffers, choices.ownDispatch));
  const packed = choosePacked(dispatches, slotOf, plan.slotBytes, limits.maxStorageBuffersPerShaderStage);

  // GPU buffers: every unpacked slot, then one pack holding the packed slots.
  const gpuOfSlot = new Map<number, number>();
  const gpuBufferBytes: number[] = [];
  plan.slotBytes.forEach((bytes, slot) => {
    if (packed.has(slot)) return;
    gpuOfSlot.set(slot, gpuBufferBytes.length);
    gpuBufferBytes.push(Math.ceil(bytes / 4) * 4);
  });
  const packOffset = new Map<number, number>();
  const packs = new Set<number>();
  if (packed.size > 0) {
    let offset = 0;
    for (const slot of [...packed].sort((a, b) => a - b)) {
      packOffset.set(slot, offset);
      offset = Math.ceil((offset + plan.slotBytes[slot]!) / PACK_ALIGNMENT_BYTES) * PACK_ALIGNMENT_BYTES;
    }
    packs.add(gpuBufferBytes.length);
    for (const slot of packed) gpuOfSlot.set(slot, gpuBufferBytes.length);
    gpuBufferBytes.push(offset);
  }
  const place = buffers.map((b) => ({ gpuBuffer: gpuOfSlot.get(slotOf(b.id))!, offsetBytes: packOffset.get(slotOf(b.id)) ?? 0 }));
  checkSizes(program, place, gpuBufferBytes, packs, dispatches, limits);
  return {
    place,
    gpuBufferBytes,
    packs,
    dispatches,
    peakBytes: gpuBufferBytes.reduce((a, b) => a + b, 0),
  };
}

/**
 * The layout as text, for the `NN-device-layout.txt` dump and FileCheck tests:
 *   layout @p gpu-buffers=8 packs=[7]
 *     dispatch k0_add threads sections=1 bindings(b0@pack, b1@pack, b2, …)
 *     place b0=g7+0 b1=g7+256 b2=g0 …
 * A dispatch renders as `matmul` or `row-kernel` when its one section's `form` fact says so
 * (codegen/wgsl/render-wgsl.ts), else `threads`; `@pack` marks a buffer bound through the pack.
 */
export function formatDeviceLayout(program: KernelProgram, layout: DeviceLayout): string {
  const lines = [`layout @${program.name} gpu-buffers=${layout.gpuBufferBytes.length} packs=[${[...layout.packs].join(",")}]`];
  for (const d of layout.dispatches) {
    const form = d.sections.length === 1 ? d.sections[0]!.form?.kind : undefined;
    const shape = form === "matmul" ? "matmul" : form === "row" ? "row-kernel" : "threads";
    const bound = d.buffers.map((b) => `b${b}${layout.packs.has(layout.place[b]!.gpuBuffer) ? "@pack" : ""}`);
    lines.push(`  dispatch ${d.name} ${shape} sections=${d.sections.length} bindings(${bound.join(", ")})`);
  }
  const places = layout.place.map((p, b) => `b${b}=g${p.gpuBuffer}${layout.packs.has(p.gpuBuffer) ? `+${p.offsetBytes}` : ""}`);
  if (places.length > 0) lines.push(`  place ${places.join(" ")}`);
  return lines.join("\n") + "\n";
}

/**
 * Buffers a section's live expressions and stores touch (a dead gather index reads nothing),
 * and the size buffer where a loop of the section stops at a symbolic batch's rows
 * (codegen/wgsl/row-limits.ts; `buffers`: the program's).
 */
export function liveSectionBuffers(s: Section, buffers?: readonly BufferDecl[]): Set<number> {
  const size = rowsSizeOf([s], buffers);
  const live = new Array<boolean>(s.exprs.length).fill(false);
  const used = new Set<number>(size ? [size.id] : []);
  for (const st of s.stores) {
    live[st.value] = true;
    used.add(st.buffer);
  }
  for (let id = s.exprs.length - 1; id >= 0; id--) {
    if (!live[id]) continue;
    const e = s.exprs[id]!;
    if (e.op === "load" && e.valid !== false) used.add(e.buffer);
    for (const o of exprOperands(e)) live[o] = true;
  }
  return used;
}

/**
 * One dispatch per kernel, or several when its sections together bind too many buffers or a
 * section wants a dispatch of its own. Splitting is safe: sections of one kernel never depend
 * on each other (an in-place update reads only in its own section, at the store's indices).
 */
function splitKernel(
  k: Kernel,
  slotOf: (id: number) => number,
  maxBindings: number,
  buffers: readonly BufferDecl[],
  ownDispatch?: (s: Section) => boolean,
): Dispatch[] {
  const perSection = k.sections.map((s) => [...liveSectionBuffers(s, buffers)]);
  const slotsOf = (ids: readonly number[]): Set<number> => new Set(ids.map(slotOf));
  const all = perSection.flat();
  const alone = k.sections.map((s) => k.sections.length > 1 && ownDispatch !== undefined && ownDispatch(s));
  if (k.sections.length === 1 || (slotsOf(all).size <= maxBindings && !alone.includes(true)))
    return [{ name: k.name, sections: k.sections, buffers: [...new Set(all)].sort((a, b) => a - b) }];
  const groups: { sections: Section[]; buffers: number[]; alone: boolean }[] = [];
  k.sections.forEach((s, i) => {
    const last = groups.at(-1);
    if (!alone[i] && last && !last.alone && slotsOf([...last.buffers, ...perSection[i]!]).size <= maxBindings) {
      last.sections.push(s);
      last.buffers.push(...perSection[i]!);
    } else groups.push({ sections: [s], buffers: [...perSection[i]!], alone: alone[i]! });
  });
  return groups.map((g, i) => ({ name: `${k.name}_part${i}`, sections: g.sections, buffers: [...new Set(g.buffers)].sort((a, b) => a - b) }));
}

/** Slots moved into the shared pack so every dispatch fits the binding limit (smallest first). */
function choosePacked(dispatches: readonly Dispatch[], slotOf: (id: number) => number, slotBytes: readonly number[], maxBindings: number): Set<number> {
  const packed = new Set<number>();
  const bindingCount = (slots: Set<number>): number => {
    let own = 0;
    let inPack = false;
    for (const s of slots) packed.has(s) ? (inPack = true) : own++;
    return own + (inPack ? 1 : 0);
  };
  for (const d of dispatches) {
    const slots = new Set(d.buffers.map(slotOf));
    while (bindingCount(slots) > maxBindings) {
      const candidates = [...slots].filter((s) => !packed.has(s)).sort((a, b) => slotBytes[a]! - slotBytes[b]! || a - b);
      packed.add(candidates[0]!);
    }
  }
  return packed;
}

function checkSizes(
  program: KernelProgram,
  place: readonly BufferPlace[],
  gpuBufferBytes: readonly number[],
  packs: ReadonlySet<number>,
  dispatches: readonly Dispatch[],
  limits: WebGpuLimits,
): void {
  const bound = new Set(dispatches.flatMap((d) => d.buffers.map((b) => place[b]!.gpuBuffer)));
  for (const b of program.buffers) {
    const bytes = deviceBytes(b);
    if (bytes > limits.maxBufferSize || (bound.has(place[b.id]!.gpuBuffer) && bytes > limits.maxStorageBufferBindingSize))
      throw new KilnError({
        code: "unsupported",
        message: `tensor '${b.name}' (${b.dtype}[${b.shape.join(",")}], ${bytes} bytes on the device) exceeds this device's ${bytes > limits.maxBufferSize ? `maxBufferSize (${limits.maxBufferSize}` : `maxStorageBufferBindingSize (${limits.maxStorageBufferBindingSize}`} bytes)`,
      });
  }
  for (const pack of packs) {
    const bytes = gpuBufferBytes[pack]!;
    if (bytes <= limits.maxStorageBufferBindingSize) continue;
    const names = program.buffers.filter((b) => place[b.id]!.gpuBuffer === pack).map((b) => `'${b.name}'`);
    throw new KilnError({
      code: "unsupported",
      message: `kernels bind more storage buffers than maxStorageBuffersPerShaderStage (${limits.maxStorageBuffersPerShaderStage}) allows, and packing tensors ${names.join(", ")} (${bytes} bytes) exceeds maxStorageBufferBindingSize (${limits.maxStorageBufferBindingSize} bytes)`,
    });
  }
}
