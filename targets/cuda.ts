// The "cuda" target: CUDA C (codegen/cuda) on an NVIDIA GPU through the driver API
// (runtime/cuda: a node-addon-api addon, imported lazily so `import "kiln"` never loads it).
// Compiling needs no GPU (the artifact and its PTX are made anywhere nvcc is); running is
// refused with the reason where the addon, the driver or a device is missing.

import { compileWith, type Compiled, type DriverOptions } from "../compiler/compile.ts";
import type { FuseOptions } from "../compiler/kernel/fusion-plan.ts";
import type { Graph } from "../compiler/ir/types.ts";
import type { KernelPass } from "../compiler/backend.ts";
import { tileSection } from "../compiler/kernel/tile.ts";
import { fitsMma } from "../codegen/cuda/mma-tile.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { artifactDTypeBytes, type ArtifactStats, type CudaArtifact } from "../runtime/artifact/format.ts";
import type { ArtifactRunner } from "../runtime/artifact/load.ts";
import { renderCudaProgram } from "../codegen/cuda/render-program.ts";
import type { CudaRenderOptions } from "../codegen/cuda/render-cuda.ts";
import { compileTimed } from "../compiler/compile-stats.ts";
import { cachedPeaks, cudaCopyPeaks } from "./peaks.ts";
import { executorProfiling } from "./profile.ts";
import type { Backend, Executor, SharedState } from "./backend.ts";
import type { CudaSharedState } from "../runtime/cuda/index.ts";
import { cudaInfo, cudaOptionKeys } from "./deferred-targets.ts";
import { driverOptionsOf, fuseOptionsOf, type OptionKeys } from "./options.ts";

export interface CudaOptions extends FuseOptions {
  /** Register-tile contractions (default true, as on js). */
  readonly tile?: boolean;
  readonly reduction?: CudaRenderOptions["reduction"];
  /** Prefix for kernel symbols (tests put many programs into one module). */
  readonly symbolPrefix?: string;
}

export type CudaCompileOptions = CudaOptions & DriverOptions;

/** The register-tiling pass, except for the contractions that run on tensor cores (codegen/cuda/mma-tile.ts). */
const cudaTilePass: KernelPass = {
  name: "tile",
  run: (p) => ({
    ...p,
    kernels: p.kernels.map((k) => ({ ...k, sections: k.sections.map((s) => (s.dots?.length && !s.tile && !s.form && !fitsMma(s) ? tileSection(s) : s)) })),
  }),
};
export type CudaCompiled = Compiled<CudaArtifact>;

export const cudaBackend: Backend<"cuda", CudaOptions> = {
  ...cudaInfo,
  options: cudaOptionKeys satisfies OptionKeys<CudaCompileOptions>,
  kernelExtension: "cu",
  memory: { elementBytes: artifactDTypeBytes },
  fuseOptions: fuseOptionsOf,
  kernelPasses: (opts) => (opts.tile === false ? [] : [cudaTilePass]),
  boundsRows: true,
  render: (program, memory, opts) => {
    const r = renderCudaProgram(program, memory.slotOf, {
      ...(opts.reduction !== undefined ? { reduction: opts.reduction } : {}),
      ...(opts.symbolPrefix !== undefined ? { symbolPrefix: opts.symbolPrefix } : {}),
    });
    return { kernels: r.kernels, extras: { cudaSource: r.cudaSource } };
  },
  // No JS loader: the folder carries a native host program (targets/cuda-standalone.ts).
  artifactFiles: { kernelExtension: "cu" },
  compile: (graph, opts = {}) => compileCuda(graph, opts),
  createRunner: async (artifact) => {
    const runtime = await import("../runtime/cuda/index.ts");
    const runner = new runtime.CudaArtifactRunner(openCudaOrRefuse(runtime), artifact);
    return runner as unknown as ArtifactRunner;
  },
  factory: (graph, opts, shared) => createCudaExecutor(graph, opts as CudaCompileOptions, shared),
};

export function compileCuda(graph: Graph, opts: CudaCompileOptions = {}): CudaCompiled {
  return compileWith(graph, cudaBackend, opts, driverOptionsOf(opts));
}

export interface CudaExecutor extends Executor {
  readonly stats: ArtifactStats;
  readonly compiled: CudaCompiled;
  readonly artifact: CudaArtifact;
  /** Device time per run of the kernels alone, in ms (inputs from the last run). */
  timeKernels(iterations: number): number;
}

function openCudaOrRefuse(runtime: typeof import("../runtime/cuda/index.ts")): ReturnType<typeof runtime.openCuda> {
  try {
    return runtime.openCuda();
  } catch (e) {
    throw new KilnError({ code: "target-unavailable", message: `target 'cuda' cannot run here: ${(e as Error).message}` });
  }
}

/**
 * The state stays on the device between runs (updates in place, copy-backs on the device; only
 * the batch is uploaded) and is read back on demand. With `shared` (k.compileModel's programs),
 * every program binds one device buffer per state entry, so switching programs copies nothing.
 */
export async function createCudaExecutor(graph: Graph, opts: CudaCompileOptions = {}, shared?: SharedState): Promise<CudaExecutor> {
  const runtime = await import("../runtime/cuda/index.ts");
  const device = openCudaOrRefuse(runtime);
  const { compiled, runner, compileStats } = await compileTimed(
    () => compileCuda(graph, opts),
    (c) => new runtime.CudaArtifactRunner(device, c.artifact, undefined, shared && sharedBuffers(shared)),
  );
  return {
    ...(shared && runner.sharesState ? { sharedState: shared } : {}),
    compiled,
    compileStats,
    artifact: compiled.artifact,
    stats: compiled.artifact.stats,
    run: async (inputs, io) =>
      runner.run(inputs, {
        ...(io?.profile ? { profile: io.profile } : {}),
        ...(io?.readback ? { readback: io.readback } : {}),
      }) as Record<string, HostTensor>,
    readInputs: async (names) => runner.readInputs(names) as Record<string, HostTensor>,
    get io() {
      return runner.io;
    },
    timeKernels: (iterations) => runner.timeKernels(iterations),
    profiling: executorProfiling(device.name, compiled, () => cachedPeaks(`cuda/${device.name}`, async () => cudaCopyPeaks(device))),
  };
}

/** The device buffers of a model's state, made on first use (one per entry, allocated by the first runner binding it). */
function sharedBuffers(shared: SharedState): CudaSharedState {
  let buffers = shared.memory.get("cuda") as CudaSharedState | undefined;
  if (!buffers) shared.memory.set("cuda", (buffers = { names: shared.names, buffers: new Map(), resident: new Map() }));
  return buffers;
}
