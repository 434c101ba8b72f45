// The "cuda" compile path: graph → (simplify) → fusion plan → kernel IR → CUDA artifact.
// Pure and synchronous like the rest of the compiler; running the result is the job of
// runtime/cuda (the addon) or of the standalone host program (standalone.ts).

import type { Graph } from "../../compiler/ir/types.ts";
import { compileJs, type JsCompileOptions } from "../js/target.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { buildCudaArtifact, type CudaArtifact } from "./build-artifact.ts";
import type { CudaRenderOptions } from "./render-cuda.ts";

export interface CudaCompileOptions extends JsCompileOptions {
  readonly reduction?: CudaRenderOptions["reduction"];
  readonly symbolPrefix?: string;
}

export interface CudaCompiled {
  readonly graph: Graph;
  readonly program: KernelProgram;
  readonly artifact: CudaArtifact;
}

export function compileCuda(graph: Graph, opts: CudaCompileOptions = {}): CudaCompiled {
  // The front half (passes, fusion, lowering) is the js target's: one pipeline for every target.
  const front = compileJs(graph, opts);
  const render: Omit<CudaRenderOptions, "mayAlias"> = {
    ...(opts.reduction !== undefined ? { reduction: opts.reduction } : {}),
    ...(opts.symbolPrefix !== undefined ? { symbolPrefix: opts.symbolPrefix } : {}),
  };
  return { graph: front.graph, program: front.program, artifact: buildCudaArtifact(front.program, render) };
}
