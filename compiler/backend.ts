// What the compile driver (compiler/compile.ts) needs of a target: its fusion options, its
// kernel passes, its memory rules and its renderer. Types only; each target's value lives
// in targets/<target>.ts, which adds what running needs (availability, the runner). The
// renderer only renders: every decision that changes the kernel IR is a named kernel pass.

import type { FuseOptions } from "./kernel/fusion-plan.ts";
import type { KernelProgram } from "./kernel/kernel-ir.ts";
import type { MemoryRules, ProgramMemory } from "./kernel/program-memory.ts";
import type { Pass } from "./passes/pass.ts";
import type { Artifact, ArtifactTarget, JsArtifact } from "../runtime/artifact/format.ts";

/** A kernel-level pass: KernelProgram → KernelProgram, run by the same loop as graph passes. */
export type KernelPass = Pass<KernelProgram>;

/**
 * Where the backend re-placed the planned buffers. WebGPU splits kernels whose bindings exceed
 * the device limit and packs small slots into one shared buffer; both need the slot assignment,
 * so they are its `device-layout` stage, after memory planning (codegen/wgsl/layout.ts).
 */
export interface RenderPlacement {
  /** Artifact slot (a GPU buffer) of each program buffer, by buffer id. */
  readonly slotOf: readonly number[];
  /** Byte offset of each program buffer inside its slot. */
  readonly offsetOf: readonly number[];
  readonly slotBytes: readonly number[];
  /** What a run allocates. */
  readonly peakBytes: number;
}

/** The fields an artifact of type `A` has beyond those every target shares (CUDA's whole module). */
export type ArtifactExtras<A extends Artifact> = Omit<A, keyof JsArtifact>;

export interface Rendered<A extends Artifact> {
  /** Kernels (or dispatches) in launch order, with their sources. */
  readonly kernels: A["kernels"];
  /** Absent: the artifact's slots are the memory plan's. */
  readonly placement?: RenderPlacement;
  /** Fixed addresses of the slots (wasm programs sharing a model's memory); recorded in the artifact's memory. */
  readonly slotOffsets?: readonly number[];
  readonly extras: ArtifactExtras<A>;
}

/**
 * A stage after memory planning that needs the plan's slots (WebGPU: splitting and packing for
 * the device's limits). The driver runs it by `name` in its loop (timed, `NN-<name>.txt` dumped
 * through `format`) and hands its result to render.
 */
export interface LayoutStage<Options, L> {
  readonly name: string;
  run(program: KernelProgram, memory: ProgramMemory, opts: Options): L;
  format(program: KernelProgram, layout: L): string;
}

export interface CompileBackend<Options, A extends Artifact, L = unknown> {
  /** The artifact target it builds (`A["target"]`). */
  readonly name: ArtifactTarget;
  /** Extension of its kernel files: `kernels/<name>.<ext>` in an artifact, `NN-render/<name>.<ext>` in a dump. */
  readonly kernelExtension: string;
  readonly memory: MemoryRules;
  fuseOptions(opts: Options): FuseOptions;
  /** The kernel passes, in order, for these options. */
  kernelPasses(opts: Options): readonly KernelPass[];
  /**
   * Its renderer stops every loop that steps a symbolic batch's rows at the run's rows
   * (compiler/kernel/symbolic-bound.ts, rowBounds): the driver then runs the `symbolic-rows`
   * pass last on a program with a symbol, which drops the row masks none of those loops needs.
   */
  readonly boundsRows?: boolean;
  /** Absent: render works from the memory plan alone. */
  readonly layout?: LayoutStage<Options, L>;
  /** `layout` is the layout stage's result (undefined for a backend without one). */
  render(program: KernelProgram, memory: ProgramMemory, opts: Options, layout: L | undefined): Rendered<A>;
}
