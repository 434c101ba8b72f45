// Kernel program → "webgpu" artifact: plans device memory under the adapter's limits
// (layout.ts), renders one WGSL shader per dispatch and fills the artifact's slots (GPU
// buffers), tensor offsets, bindings and workgroup counts. Every element is 4 bytes on the
// device (bool as u32); the runtime converts at upload and readback.

import type { KernelProgram, Section } from "../../compiler/kernel/kernel-ir.ts";
import type { Artifact, ArtifactKernel } from "../../runtime/artifact/format.ts";
import { deviceBytes, planDeviceLayout, type WebGpuLimits } from "./layout.ts";
import { matchContraction, useTiledMatmul } from "./matmul.ts";
import { renderDispatch, type KernelChoices } from "./render-wgsl.ts";
import { artifactIO, trafficBytes } from "../artifact-io.ts";

export function buildWebGpuArtifact(program: KernelProgram, limits: WebGpuLimits, opts: KernelChoices = {}): Artifact {
  // A contraction worth tiling leaves its horizontally fused kernel for a dispatch of its own.
  const ownDispatch = (s: Section): boolean => {
    const c = matchContraction(s);
    return c !== undefined && useTiledMatmul(c, opts.tiledMatmul ?? "auto");
  };
  const layout = planDeviceLayout(program, limits, { ownDispatch });
  const ctx = {
    dtypeOf: (b: number) => program.buffers[b]!.dtype,
    nameOf: (b: number) => program.buffers[b]!.name,
    place: layout.place,
    packs: layout.packs,
    limits,
  };
  const kernels: ArtifactKernel[] = layout.dispatches.map((d) => {
    const r = renderDispatch(d, ctx, opts);
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
  const { bytesRead, bytesWritten } = trafficBytes(kernels, (id) => deviceBytes(program.buffers[id]!));
  return {
    format: "kiln-artifact",
    version: 1,
    name: program.name,
    target: "webgpu",
    ...artifactIO(program),
    buffers: program.buffers.map((b) => ({ id: b.id, name: b.name, dtype: b.dtype, shape: b.shape, kind: b.kind, slot: layout.place[b.id]!.gpuBuffer, offset: layout.place[b.id]!.offsetBytes })),
    kernels,
    memory: { slotBytes: layout.gpuBufferBytes, copies: layout.copies },
    stats: { kernels: kernels.length, bytesRead, bytesWritten, peakBytes: layout.peakBytes },
  };
}
