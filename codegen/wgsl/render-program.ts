// Kernel program + its device layout → the "webgpu" artifact's kernels: one WGSL shader per
// dispatch of the layout (layout.ts, webgpu's `device-layout` stage after the memory plan:
// kernels binding too many buffers split into dispatches, small slots packed into one buffer),
// with its bindings and workgroup counts; every element is a u32 word on the device (bool too), f16/bf16 two
// to a word. Which template a
// section renders with (row kernel, matmul) is its kernel-IR `form` fact, set by webgpu's passes.

import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import type { WebGpuArtifactKernel } from "../../runtime/artifact/format.ts";
import type { DeviceLayout, WebGpuLimits } from "./layout.ts";
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

/** `rolledLoops`: keep constant-trip loops rolled (DispatchContext's, for a CPU adapter); `shaderF16`: f16 buffers as array<f16>. */
export function renderWebGpuProgram(
  program: KernelProgram,
  layout: DeviceLayout,
  limits: WebGpuLimits,
  rolledLoops = false,
  shaderF16 = false,
): RenderedWebGpuProgram {
  const ctx = {
    dtypeOf: (b: number) => program.buffers[b]!.dtype,
    nameOf: (b: number) => program.buffers[b]!.name,
    place: layout.place,
    packs: layout.packs,
    limits,
    buffers: program.buffers,
    gpuBufferBytes: layout.gpuBufferBytes,
    rolledLoops,
    shaderF16,
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
      ...(r.symbolic ? { symbolic: r.symbolic } : {}),
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
