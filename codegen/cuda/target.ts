// The "cuda" target: compiles a graph to a cuda artifact (compile.ts) and runs it through
// runtime/cuda, imported lazily so `import "kiln"` never loads the addon. Where CUDA cannot
// run here (addon not built, no driver, no device) the executor is refused with the reason.

import type { Graph } from "../../compiler/ir/types.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import type { ArtifactStats } from "../../runtime/artifact/format.ts";
import { compileCuda, type CudaCompileOptions, type CudaCompiled } from "./compile.ts";

export interface CudaExecutor {
  run(inputs: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>>;
  readonly stats: ArtifactStats;
  readonly compiled: CudaCompiled;
  /** Device time per run of the kernels alone, in ms (inputs from the last run). */
  timeKernels(iterations: number): number;
}

/** Why the cuda target cannot run here, or undefined when it can. */
export async function cudaUnavailableReason(): Promise<string | undefined> {
  const runtime = await import("../../runtime/cuda/index.ts");
  return runtime.cudaUnavailableReason();
}

export async function createCudaExecutor(graph: Graph, opts: CudaCompileOptions = {}): Promise<CudaExecutor> {
  const runtime = await import("../../runtime/cuda/index.ts");
  let device;
  try {
    device = runtime.openCuda();
  } catch (e) {
    throw new KilnError({ code: "target-unavailable", message: `target 'cuda' cannot run here: ${(e as Error).message}` });
  }
  const compiled = compileCuda(graph, opts);
  const runner = new runtime.CudaArtifactRunner(device, compiled.artifact);
  return {
    compiled,
    stats: compiled.artifact.stats,
    run: async (inputs) => runner.run(inputs) as Record<string, HostTensor>,
    timeKernels: (iterations) => runner.timeKernels(iterations),
  };
}
