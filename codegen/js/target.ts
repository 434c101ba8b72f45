// The "js" target: graph → (simplify) → fusion plan → kernel IR → JS artifact → executor.
// This is the whole compile path for the JavaScript backend; `k.compile(fn, specs,
// { target: "js" })` reaches it through dsl/targets.ts.

import type { Graph } from "../../compiler/ir/types.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { fuse, planFusion } from "../../compiler/passes/fuse.ts";
import type { FuseOptions, FusionPlan } from "../../compiler/kernel/fusion-plan.ts";
import { defaultPasses, runPasses, type DumpSink, type PipelineOptions } from "../../compiler/pipeline.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import type { Artifact, ArtifactStats } from "../../runtime/artifact/format.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { buildJsArtifact } from "./build-artifact.ts";

export interface JsCompileOptions extends FuseOptions {
  readonly verify?: boolean;
  /** Pipeline dump options (see compiler/pipeline.ts); kernel sources are dumped with the fuse pass. */
  readonly dumpAfter?: readonly string[];
  readonly dumpAll?: boolean;
  /** Where dump files go (kernel sources too, when `fuse` is dumped). */
  readonly dump?: DumpSink;
  /** Skip the simplify pipeline (tests of fusion on a hand-built graph). */
  readonly raw?: boolean;
  /** Register-tile contractions (default true). */
  readonly tile?: boolean;
}

export interface JsCompiled {
  readonly graph: Graph;
  readonly plan: FusionPlan;
  readonly program: KernelProgram;
  readonly artifact: Artifact;
}

export function compileJs(graph: Graph, opts: JsCompileOptions = {}): JsCompiled {
  // The fuse pass only adds dumps here (the plan is made below, with this call's options).
  const dumpsFusion = opts.dumpAll === true || opts.dumpAfter?.includes("fuse") === true;
  const passes = [...defaultPasses.filter((p) => p.name !== "fuse"), ...(dumpsFusion ? [fuse] : [])];
  const pipelineOpts: PipelineOptions = {
    ...(opts.verify ? { verify: true } : {}),
    ...(opts.dumpAfter ? { dumpAfter: opts.dumpAfter } : {}),
    ...(opts.dumpAll ? { dumpAll: true } : {}),
    ...(opts.dump !== undefined ? { dump: opts.dump } : {}),
  };
  const g = opts.raw ? graph : runPasses(graph, passes, pipelineOpts).graph;
  const plan = planFusion(g, opts);
  const program = lowerProgram(g, plan, opts.tile === undefined ? {} : { tile: opts.tile });
  const artifact = buildJsArtifact(program);
  if (opts.dump !== undefined && dumpsFusion) for (const k of artifact.kernels) opts.dump.write(`${k.name}.js`, k.source);
  return { graph: g, plan, program, artifact };
}

export interface JsExecutor {
  run(inputs: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>>;
  readonly stats: ArtifactStats;
  readonly compiled: JsCompiled;
}

export function createJsExecutor(graph: Graph, opts: JsCompileOptions = {}): JsExecutor {
  const compiled = compileJs(graph, opts);
  const runner = new JsArtifactRunner(compiled.artifact);
  return {
    compiled,
    stats: compiled.artifact.stats,
    run: async (inputs) => runner.run(inputs) as Record<string, HostTensor>,
  };
}
