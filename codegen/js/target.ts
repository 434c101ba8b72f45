// The "js" target: graph → (simplify) → fusion plan → kernel IR → JS artifact → executor.
// This is the whole compile path for the JavaScript backend; `k.compile(fn, specs,
// { target: "js" })` reaches it through dsl/targets.ts.

import type { Graph } from "../../compiler/ir/types.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { planFusion, type FuseOptions, type FusionPlan } from "../../compiler/passes/fuse.ts";
import { defaultPasses, runPasses } from "../../compiler/pipeline.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import type { Artifact, ArtifactStats } from "../../runtime/artifact/format.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { buildJsArtifact } from "./build-artifact.ts";

export interface JsCompileOptions extends FuseOptions {
  readonly verify?: boolean;
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
  const passes = defaultPasses.filter((p) => p.name !== "fuse");
  const g = opts.raw ? graph : runPasses(graph, passes, opts.verify ? { verify: true } : {}).graph;
  const plan = planFusion(g, opts);
  const program = lowerProgram(g, plan, opts.tile === undefined ? {} : { tile: opts.tile });
  return { graph: g, plan, program, artifact: buildJsArtifact(program) };
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
