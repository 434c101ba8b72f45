// The "wasm" target: graph → (simplify) → fusion plan → kernel IR → wasm artifact → runner
// over one shared memory and a worker pool. `k.compile(fn, specs, { target: "wasm",
// threads })` reaches it through dsl/targets.ts; "cpu" picks it where wasm SIMD and shared
// memory are available.

import type { Graph } from "../../compiler/ir/types.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import type { FuseOptions, FusionPlan } from "../../compiler/kernel/fusion-plan.ts";
import { defaultPasses, runPasses } from "../../compiler/pipeline.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import type { Artifact, ArtifactStats } from "../../runtime/artifact/format.ts";
import { WasmArtifactRunner, type WasmRunOptions } from "../../runtime/wasm/run-artifact.ts";
import { buildWasmArtifact } from "./build-artifact.ts";
import { blockContractions } from "./block-contraction.ts";

export interface WasmCompileOptions extends FuseOptions {
  readonly verify?: boolean;
  /** Skip the simplify pipeline (tests of a hand-built graph). */
  readonly raw?: boolean;
  /** SIMD regions (default true); false: the scalar lowering only. */
  readonly simd?: boolean;
  /** Register-blocked contractions (default true). */
  readonly block?: boolean;
}

export interface WasmCompiled {
  readonly graph: Graph;
  readonly plan: FusionPlan;
  readonly program: KernelProgram;
  readonly artifact: Artifact;
}

export function compileWasm(graph: Graph, opts: WasmCompileOptions = {}): WasmCompiled {
  const passes = defaultPasses.filter((p) => p.name !== "fuse");
  const g = opts.raw ? graph : runPasses(graph, passes, opts.verify ? { verify: true } : {}).graph;
  const plan = planFusion(g, opts);
  // The shared register tiling (compiler/kernel/tile.ts) suits scalar targets; wasm blocks
  // contractions its own way, with a SIMD lane axis (block-contraction.ts).
  const lowered = lowerProgram(g, plan, { tile: false });
  const program = opts.block === false || opts.simd === false ? lowered : blockContractions(lowered);
  return { graph: g, plan, program, artifact: buildWasmArtifact(program, opts.simd === undefined ? {} : { simd: opts.simd }) };
}

export interface WasmExecutor {
  run(inputs: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>>;
  readonly stats: ArtifactStats;
  readonly compiled: WasmCompiled;
  readonly runner: WasmArtifactRunner;
  close(): Promise<void>;
}

export async function createWasmExecutor(graph: Graph, opts: WasmCompileOptions & WasmRunOptions = {}): Promise<WasmExecutor> {
  const compiled = compileWasm(graph, opts);
  const runner = await WasmArtifactRunner.create(compiled.artifact, opts);
  return {
    compiled,
    runner,
    stats: compiled.artifact.stats,
    run: async (inputs) => runner.run(inputs) as Record<string, HostTensor>,
    close: () => runner.close(),
  };
}

/** Whether this JavaScript engine runs wasm SIMD over a shared memory (what the target needs). */
export function wasmAvailable(): boolean {
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    // (module (func (result v128) v128.const i32x4 0 0 0 0))
    const probe = Uint8Array.from([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
    return WebAssembly.validate(probe);
  } catch {
    return false;
  }
}
