// The "webgpu" target: graph → (simplify) → fusion plan → kernel IR → WGSL artifact under
// the device's limits → WebGPU runner. Limits can be lowered through the `limits` option
// (tests force small ones to exercise splitting, packing and dispatch folding).

import type { Graph } from "../../compiler/ir/types.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import type { FuseOptions, FusionPlan } from "../../compiler/kernel/fusion-plan.ts";
import { defaultPasses, runPasses } from "../../compiler/pipeline.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import type { Artifact, ArtifactStats } from "../../runtime/artifact/format.ts";
import { acquireWebGpu, type WebGpuAdapterDescription } from "../../runtime/webgpu/device.ts";
import { WebGpuArtifactRunner, type WebGpuRunOptions } from "../../runtime/webgpu/run-artifact.ts";
import { buildWebGpuArtifact } from "./build-artifact.ts";
import { webGpuDefaultLimits, type WebGpuLimits } from "./layout.ts";
import type { MatmulForm, TiledMatmulMode } from "./matmul.ts";

export interface WebGpuCompileOptions extends FuseOptions {
  readonly verify?: boolean;
  readonly raw?: boolean;
  /**
   * Register-tile contractions in the kernel IR (default false here: a 4x4 tile copies every
   * epilogue 16 times, and lavapipe's JIT time grows with shader size far more than runs gain).
   */
  readonly tile?: boolean;
  /** Limits to compile for (default WebGPU's guaranteed minimums). */
  readonly limits?: WebGpuLimits;
  /** Shared-memory tiled kernels for contractions: "auto" (large ones), "always", "never". */
  readonly tiledMatmul?: TiledMatmulMode;
  /** How a chosen contraction is rendered: "registers" (default, 8x8 per thread) or "workgroup" tiles. */
  readonly matmulForm?: MatmulForm;
  /** One workgroup per row for long row-level reductions (default true). */
  readonly rowKernels?: boolean;
}

export interface WebGpuCompiled {
  readonly graph: Graph;
  readonly plan: FusionPlan;
  readonly program: KernelProgram;
  readonly artifact: Artifact;
}

export function compileWebGpu(graph: Graph, opts: WebGpuCompileOptions = {}): WebGpuCompiled {
  const passes = defaultPasses.filter((p) => p.name !== "fuse");
  const g = opts.raw ? graph : runPasses(graph, passes, opts.verify ? { verify: true } : {}).graph;
  const plan = planFusion(g, opts);
  const program = lowerProgram(g, plan, { tile: opts.tile ?? false });
  return { graph: g, plan, program, artifact: buildWebGpuArtifact(program, opts.limits ?? webGpuDefaultLimits, {
    ...(opts.tiledMatmul ? { tiledMatmul: opts.tiledMatmul } : {}),
    ...(opts.matmulForm ? { matmulForm: opts.matmulForm } : {}),
    ...(opts.rowKernels !== undefined ? { rowKernels: opts.rowKernels } : {}),
  }) };
}

export interface WebGpuExecutor {
  run(inputs: Readonly<Record<string, HostTensor>>, opts?: WebGpuRunOptions): Promise<Record<string, HostTensor>>;
  /** The device's current value of the named inputs (the state after in-place updates). */
  readInputs(names: readonly string[]): Promise<Record<string, HostTensor>>;
  readonly stats: ArtifactStats;
  readonly compiled: WebGpuCompiled;
  readonly adapter: WebGpuAdapterDescription;
}

/** The device's limits, lowered by any the caller passes (never raised above the device's). */
export function effectiveLimits(device: GPUSupportedLimits, lower: Partial<WebGpuLimits> = {}): WebGpuLimits {
  const pick = (name: keyof WebGpuLimits): number => Math.min(device[name], lower[name] ?? Infinity);
  return {
    maxStorageBuffersPerShaderStage: pick("maxStorageBuffersPerShaderStage"),
    maxComputeWorkgroupsPerDimension: pick("maxComputeWorkgroupsPerDimension"),
    maxStorageBufferBindingSize: pick("maxStorageBufferBindingSize"),
    maxBufferSize: pick("maxBufferSize"),
  };
}

export interface WebGpuTargetOptions {
  readonly verify?: boolean;
  readonly limits?: Partial<WebGpuLimits>;
  readonly tiledMatmul?: TiledMatmulMode;
}

export async function createWebGpuExecutor(graph: Graph, opts: WebGpuTargetOptions = {}): Promise<WebGpuExecutor> {
  const gpu = await acquireWebGpu();
  if (!gpu) throw new KilnError({ code: "target-unavailable", message: "target 'webgpu': no WebGPU adapter on this machine" });
  const compiled = compileWebGpu(graph, { verify: opts.verify === true, limits: effectiveLimits(gpu.limits, opts.limits), ...(opts.tiledMatmul ? { tiledMatmul: opts.tiledMatmul } : {}) });
  const runner = await WebGpuArtifactRunner.create(gpu.device, compiled.artifact);
  return {
    compiled,
    adapter: gpu.adapter,
    stats: compiled.artifact.stats,
    run: async (inputs, runOpts) => (await runner.run(inputs, runOpts)) as Record<string, HostTensor>,
    readInputs: async (names) => (await runner.readInputs(names)) as Record<string, HostTensor>,
  };
}

/** "none" without an adapter; "software" for a CPU adapter (used only when asked for by name). */
export async function webGpuAdapterKind(): Promise<"hardware" | "software" | "none"> {
  const gpu = await acquireWebGpu();
  return !gpu ? "none" : gpu.adapter.software ? "software" : "hardware";
}
