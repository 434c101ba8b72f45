// Kernel program → the "webgpu" artifact's kernels: lays the planned memory slots out in GPU
// buffers under the adapter's limits (layout.ts: kernels binding too many buffers are split
// into dispatches and small slots packed into one buffer) and renders one WGSL shader per
// dispatch with its bindings and workgroup counts. Splitting and packing happen here, at
// render time, because both need the memory plan's slot assignment (two tensors sharing a
// slot bind once); every element is 4 bytes on the device (bool as u32). Which template a
// section renders with (row kernel, matmul) is its kernel-IR `form` fact, set by webgpu's passes.

import type { KernelProgram, Section } from "../../compiler/kernel/kernel-ir.ts";
import type { WebGpuArtifactKernel } from "../../runtime/artifact/format.ts";
import { planDeviceLayout, type PlannedSlots, type WebGpuLimits } from "./layout.ts";
import { renderDispatch } from "./render-wgsl.ts";

export interface RenderedWebGpuProgram {
  readonly kernels: readonly WebGpuArtifactKernel[];
  /** Where each program buffer lives: GPU buffer (the artifact's slot) and byte offset in it. */
  readonly placement: {
    readonly slotOf: readonly number[];
    readonly offsetOf: readonly number[];
    readonly slotBytes: readonly number[];
    readonly peakBytes: number;
  };
}

export function renderWebGpuProgram(program: KernelProgram, slots: PlannedSlots, limits: WebGpuLimits): RenderedWebGpuProgram {
  // A section the matmul-form pass made a matmul leaves its horizontally fused kernel for a dispatch of its own.
  const ownDispatch = (s: Section): boolean => s.form?.kind === "matmul";
  const layout = planDeviceLayout(program, slots, limits, { ownDispatch });
  const ctx = {
    dtypeOf: (b: number) => program.buffers[b]!.dtype,
    nameOf: (b: number) => program.buffers[b]!.name,
    place: layout.place,
    packs: layout.packs,
    limits,
  };
  const kernels = layout.dispatches.map((d): WebGpuArtifactKernel => {
    const r = renderDispatch(d, ctx);
    const written = new Set(d.sections.flatMap((s) => s.stores.map((st) => st.buffer)));
    return {
      name: r.name,
      source: r.source,
      params: d.buffers,
      reads: d.buffers.filter((b) => !written.has(b)),
      writes: [...written].sort((a, b) => a - b),
      bindings: r.bindings,
      workgroups: r.workgroups,
    };
  });
  return {
    kernels,
    placement: {
      slotOf: layout.place.map((p) => p.gpuBuffer),
      offsetOf: layout.place.map((p) => p.offsetBytes),
      slotBytes: layout.gpuBufferBytes,
      peakBytes: layout.peakBytes,
    },
  };
}
