// Kernel program → the "cuda" artifact's kernels: each kernel as CUDA C plus its launch
// shape, and the module source (prelude + kernels) that nvcc or NVRTC turns into PTX.

import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import type { CudaArtifactKernel } from "../../runtime/artifact/format.ts";
import { CUDA_PRELUDE } from "./prelude.ts";
import { renderCudaKernel, type CudaRenderOptions } from "./render-cuda.ts";

export interface RenderedCudaProgram {
  readonly kernels: readonly CudaArtifactKernel[];
  /** The whole CUDA module: prelude, then every kernel in launch order. */
  readonly cudaSource: string;
}

/** `slotOf`: each buffer's memory slot (two parameters in one slot are an in-place update). */
export function renderCudaProgram(program: KernelProgram, slotOf: readonly number[], opts: Omit<CudaRenderOptions, "mayAlias"> = {}): RenderedCudaProgram {
  const kernels = program.kernels.map((k): CudaArtifactKernel => {
    // Two parameters in one memory slot (an in-place update) must not be declared __restrict__.
    const params = [...new Set([...k.reads, ...k.writes])];
    const mayAlias = new Set(params.filter((id) => params.some((other) => other !== id && slotOf[other] === slotOf[id])));
    const r = renderCudaKernel(k, program.buffers, { ...opts, mayAlias });
    return { name: r.name, source: r.source, params: r.params, reads: k.reads, writes: k.writes, launch: r.launch };
  });
  return { kernels, cudaSource: [CUDA_PRELUDE, ...kernels.map((k) => k.source)].join("\n") };
}
