// Kernel program → "cuda" artifact: the js artifact's buffers, memory plan and stats (one
// planner for every target), with each kernel rendered as CUDA C plus its launch shape, and
// the module source (prelude + kernels) that nvcc or NVRTC turns into PTX.

import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import type { Artifact, ArtifactKernel } from "../../runtime/artifact/format.ts";
import { buildJsArtifact } from "../js/build-artifact.ts";
import { CUDA_PRELUDE } from "./prelude.ts";
import { renderCudaKernel, type CudaLaunch, type CudaRenderOptions } from "./render-cuda.ts";

export interface CudaArtifactKernel extends ArtifactKernel {
  readonly launch: CudaLaunch;
}

export interface CudaArtifact extends Artifact {
  readonly target: "cuda";
  readonly kernels: readonly CudaArtifactKernel[];
  /** The whole CUDA module: prelude, then every kernel in launch order. */
  readonly cudaSource: string;
}

export function buildCudaArtifact(program: KernelProgram, opts: Omit<CudaRenderOptions, "mayAlias"> = {}): CudaArtifact {
  const base = buildJsArtifact(program);
  const slotOf = new Map(base.buffers.map((b) => [b.id, b.slot]));
  const kernels = program.kernels.map((k): CudaArtifactKernel => {
    // Two parameters in one memory slot (an in-place update) must not be declared __restrict__.
    const params = [...new Set([...k.reads, ...k.writes])];
    const mayAlias = new Set(params.filter((id) => params.some((other) => other !== id && slotOf.get(other) === slotOf.get(id))));
    const r = renderCudaKernel(k, program.buffers, { ...opts, mayAlias });
    return { name: r.name, source: r.source, params: r.params, reads: k.reads, writes: k.writes, launch: r.launch };
  });
  const cudaSource = [CUDA_PRELUDE, ...kernels.map((k) => k.source)].join("\n");
  return { ...base, target: "cuda", kernels, cudaSource };
}
