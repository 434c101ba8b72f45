// The compile driver: the one path from a graph to an artifact, the same for every target.
//   graph passes (autodiff where asked, simplify — CSE and DCE run inside it) → fuse (the
//   backend's FuseOptions) → lower → kernel passes (the backend's, e.g. tile) → memory plan
//   (one planner, the backend's memory rules) → backend.render → one artifact assembler.
// Every stage runs through the pass loop of compiler/pipeline.ts, so each is timed, verified
// (`verify`) and dumpable by name (`dumpAfter`, `dumpAll`), numbered in one sequence:
//   00-input.kir, 01-simplify.kir, 02-fuse.groups.txt, 03-lower.kir, 04-tile.kir,
//   05-memory-plan.txt, [06-device-layout.txt,] 07-render/<kernel>.<ext>
// A backend's layout stage (WebGPU's device-layout: splitting and packing for device limits)
// runs after the memory plan, whose slots it needs, and before render, which reads its result.
// Pure and synchronous: dump files go to an injected sink, and nothing here runs a kernel.

import type { CompileBackend, KernelPass, Rendered } from "./backend.ts";
import { log, logs } from "./debug.ts";
import type { Graph } from "./ir/types.ts";
import type { FusionPlan } from "./kernel/fusion-plan.ts";
import type { KernelProgram } from "./kernel/kernel-ir.ts";
import { lowerProgram } from "./kernel/lower.ts";
import { printKernelProgram } from "./kernel/print.ts";
import { verifyKernelProgram } from "./kernel/verify.ts";
import { formatProgramMemory, planProgramMemory, type ProgramMemory } from "./kernel/program-memory.ts";
import { autodiffPass, type GradGraphOptions } from "./passes/autodiff/engine.ts";
import { maskSymbolic } from "./passes/mask-symbolic.ts";
import { symbolicRowsPass } from "./kernel-passes.ts";
import { sizeInputOf } from "./ir/symbolic.ts";
import { formatFusionPlan, planFusion } from "./passes/fuse.ts";
import type { DumpFile, Pass, PassTiming, PipelineOptions } from "./passes/pass.ts";
import { graphLevel, graphPasses, runLevel, runStage, startGraph, startPassRun, withDebugLevel, type IrLevel } from "./pipeline.ts";
import { bug } from "./util/errors.ts";
import { prepareJsTiering } from "./util/js-tiering.ts";
import { artifactIO, trafficBytes } from "./artifact-io.ts";
import { ARTIFACT_FORMAT, ARTIFACT_VERSION, type Artifact } from "../runtime/artifact/format.ts";
import { kernelFileNames } from "../runtime/artifact/manifest.ts";

export interface DriverOptions extends PipelineOptions {
  /** Skip the graph passes (tests of fusion or codegen on a hand-built graph). */
  readonly raw?: boolean;
  /** Differentiate first: the autodiff pass with these options runs before the others. */
  readonly autodiff?: GradGraphOptions;
  /** The graph passes (default: compiler/pipeline.ts `graphPasses`). */
  readonly graphPasses?: readonly Pass[];
}

export interface Compiled<A extends Artifact> {
  /** The graph after the graph passes (what was fused). */
  readonly graph: Graph;
  readonly plan: FusionPlan;
  /** The kernel program after the kernel passes (what was rendered). */
  readonly program: KernelProgram;
  readonly memory: ProgramMemory;
  /** The backend's layout stage's result, where it has one (webgpu: the DeviceLayout, whose dispatches are the artifact's kernels). */
  readonly layout?: unknown;
  readonly artifact: A;
  readonly dumps: readonly DumpFile[];
  readonly timings: readonly PassTiming[];
  readonly facts: ReadonlyMap<string, unknown>;
}

/** The stage names of a compile, in order: what `dumpAfter` may name. */
export function stageNames(graphPassList: readonly Pass[], kernelPassList: readonly KernelPass[], layoutStage?: string): string[] {
  return [
    ...graphPassList.map((p) => p.name),
    "fuse",
    "lower",
    ...kernelPassList.map((p) => p.name),
    "memory-plan",
    ...(layoutStage ? [layoutStage] : []),
    "render",
  ];
}

/** Compiles `graph` for `backend`; see the module comment. */
export function compileWith<Options, A extends Artifact, L>(
  graph: Graph,
  backend: CompileBackend<Options, A, L>,
  targetOptions: Options,
  opts: DriverOptions = {},
): Compiled<A> {
  prepareJsTiering();
  const started = performance.now();
  // A graph with a symbolic dimension is masked right after autodiff, even when raw: without it, padding rows reach the results.
  const masking = sizeInputOf(graph) ? [maskSymbolic] : [];
  const graphPassList = opts.raw ? masking : [...(opts.autodiff ? [autodiffPass(opts.autodiff)] : []), ...masking, ...(opts.graphPasses ?? graphPasses)];
  const kernelPassList = [...backend.kernelPasses(targetOptions), ...(masking.length > 0 && backend.boundsRows ? [symbolicRowsPass] : [])];
  const layoutStage = backend.layout;
  const run = startPassRun(opts, stageNames(graphPassList, kernelPassList, layoutStage?.name));
  return withDebugLevel(opts, () => {
    startGraph(run, graph);
    const g = runLevel(run, graph, graphPassList, graphLevel(opts));

    const fused = runStage(run, "fuse", (ctx) => {
      const plan = planFusion(g, backend.fuseOptions(targetOptions));
      ctx.facts.set("fusion", plan);
      if (ctx.dumping) ctx.dump(`${ctx.step}-fuse.groups.txt`, `${formatFusionPlan(g, plan)}\n`);
      if (logs(3)) log(3, `after fuse:\n${formatFusionPlan(g, plan)}`);
      return plan;
    }).result;

    const lowered = runStage(run, "lower", (ctx) => {
      // Register tiling is a kernel pass of its own (tile), not part of lowering.
      const result = lowerProgram(g, fused, { tile: false });
      if (opts.verify) kernelLevel.verify(result, "lower");
      if (ctx.dumping) ctx.dump(`${ctx.step}-lower.kir`, printKernelProgram(result));
      if (logs(3)) log(3, `after lower:\n${printKernelProgram(result)}`);
      return result;
    }).result;

    const program = runLevel(run, lowered, kernelPassList, kernelLevel);

    const memory = runStage(run, "memory-plan", (ctx) => {
      const planned = planProgramMemory(program, backend.memory);
      if (ctx.dumping) ctx.dump(`${ctx.step}-memory-plan.txt`, formatProgramMemory(program, planned));
      if (logs(3)) log(3, `after memory-plan:\n${formatProgramMemory(program, planned)}`);
      return planned;
    }).result;

    const layout = layoutStage
      ? runStage(run, layoutStage.name, (ctx) => {
          const result = layoutStage.run(program, memory, targetOptions);
          if (ctx.dumping) ctx.dump(`${ctx.step}-${layoutStage.name}.txt`, layoutStage.format(program, result));
          if (logs(3)) log(3, `after ${layoutStage.name}:\n${layoutStage.format(program, result)}`);
          return result;
        }).result
      : undefined;

    const rendered = runStage(run, "render", (ctx) => {
      const result = backend.render(program, memory, targetOptions, layout);
      if (ctx.dumping) {
        const files = kernelFileNames(backend.kernelExtension, result.kernels);
        result.kernels.forEach((k, i) => ctx.dump(`${ctx.step}-render/${files[i]!.slice("kernels/".length)}`, k.source));
      }
      return result;
    }).result;

    const artifact = assembleArtifact(backend.name as A["target"], program, memory, rendered);
    if (logs(1))
      log(
        1,
        `compile @${graph.name} for ${backend.name}: ${artifact.stats.kernels} kernels, ${artifact.stats.bytesRead + artifact.stats.bytesWritten} bytes moved, peak ${artifact.stats.peakBytes} B, ${(performance.now() - started).toFixed(1)} ms (${stageTimes(run.timings)})`,
      );
    if (logs(2)) for (const k of artifact.kernels) log(2, `kernel ${k.name}:\n${k.source}`);
    return {
      graph: g,
      plan: fused,
      program,
      memory,
      ...(layout !== undefined ? { layout } : {}),
      artifact,
      dumps: run.dumps,
      timings: run.timings,
      facts: run.facts,
    };
  });
}

/** Each stage's time, summed by name (the summary line of KILN_DEBUG=1: where a compile's time goes). */
function stageTimes(timings: readonly PassTiming[]): string {
  const byName = new Map<string, number>();
  for (const t of timings) byName.set(t.pass, (byName.get(t.pass) ?? 0) + t.ms);
  return [...byName].map(([name, ms]) => `${name} ${ms.toFixed(1)}`).join(", ");
}

/** The one artifact assembler: the common fields from the program, the memory plan (or render's placement) and the rendered kernels. */
export function assembleArtifact<A extends Artifact>(target: A["target"], program: KernelProgram, memory: ProgramMemory, rendered: Rendered<A>): A {
  const placement = rendered.placement;
  const slotOf = placement?.slotOf ?? memory.slotOf;
  const { bytesRead, bytesWritten } = trafficBytes(rendered.kernels, (id) => memory.bufferBytes[id] ?? bug(`assemble: no buffer ${id}`));
  const artifact = {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    name: program.name,
    target,
    ...artifactIO(program),
    buffers: program.buffers.map((b) => ({
      id: b.id,
      name: b.name,
      dtype: b.dtype,
      shape: b.shape,
      kind: b.kind,
      slot: slotOf[b.id]!,
      ...(placement ? { offset: placement.offsetOf[b.id]! } : {}),
    })),
    kernels: rendered.kernels,
    memory: {
      slotBytes: placement?.slotBytes ?? memory.slotBytes,
      copies: memory.copies,
      ...(rendered.slotOffsets ? { slotOffsets: rendered.slotOffsets } : {}),
    },
    stats: { kernels: rendered.kernels.length, bytesRead, bytesWritten, peakBytes: placement?.peakBytes ?? memory.plan.peakBytes },
    ...rendered.extras,
  };
  // The common fields are built here for every target; `extras` holds the rest of `A`.
  return artifact as unknown as A;
}

/** The kernel level of the pass loop. */
export const kernelLevel: IrLevel<KernelProgram> = {
  print: printKernelProgram,
  verify: verifyKernelProgram,
  size: (p) => `${p.kernels.length} kernels`,
  extension: ".kir",
};
