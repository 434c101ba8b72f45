// The "js" target: generated JavaScript over typed arrays (codegen/js), run by runtime/js.
// Runs anywhere; the simplest backend to read and debug. Register-tiles contractions.

import { compileWith, type Compiled, type DriverOptions } from "../compiler/compile.ts";
import type { FuseOptions } from "../compiler/kernel/fusion-plan.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { tilePass } from "../compiler/kernel-passes.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { artifactDTypeBytes, type ArtifactStats, type JsArtifact } from "../runtime/artifact/format.ts";
import { JsArtifactRunner, type JsSharedState } from "../runtime/js/run-artifact.ts";
import { renderJsProgram } from "../codegen/js/render-program.ts";
import type { Backend, Executor, SharedState } from "./backend.ts";
import { compileTimed } from "../compiler/compile-stats.ts";
import { jsPeaks } from "./peaks.ts";
import { executorProfiling } from "./profile.ts";
import { driverOptionsOf, fuseOptionsOf, type OptionKeys } from "./options.ts";

export interface JsOptions extends FuseOptions {
  /** Register-tile contractions (default true). */
  readonly tile?: boolean;
}

export type JsCompileOptions = JsOptions & DriverOptions;
export type JsCompiled = Compiled<JsArtifact>;

/** The k.compile options the js target reads. */
export const jsOptionKeys = [
  "verify",
  "dumpAfter",
  "dumpAll",
  "dump",
  "raw",
  "tile",
  "horizontal",
  "noFusion",
  "maxBuffersPerKernel",
  "fuseAttention",
] as const satisfies OptionKeys<JsCompileOptions>;

export const jsBackend: Backend<"js", JsOptions> = {
  name: "js",
  description: "generated JavaScript over typed arrays: runs anywhere, the simplest backend to read",
  priority: 1,
  options: jsOptionKeys,
  kernelExtension: "js",
  memory: { elementBytes: artifactDTypeBytes },
  fuseOptions: fuseOptionsOf,
  kernelPasses: (opts) => (opts.tile === false ? [] : [tilePass]),
  boundsRows: true,
  render: (program) => ({ kernels: renderJsProgram(program), extras: {} }),
  artifactFiles: {
    kernelExtension: "js",
    loader: {
      modules: ["runtime/js/run-artifact.ts"],
      imports: [{ names: ["JsArtifactRunner"], from: "./runtime/js/run-artifact.js" }],
      createRunner: "const runner = new JsArtifactRunner(loaded.artifact);",
    },
  },
  compile: (graph, opts = {}) => compileJs(graph, opts),
  createRunner: async (artifact) => new JsArtifactRunner(artifact),
  factory: (graph, opts, shared) => createJsExecutor(graph, opts as JsCompileOptions, shared),
};

export function compileJs(graph: Graph, opts: JsCompileOptions = {}): JsCompiled {
  return compileWith(graph, jsBackend, opts, driverOptionsOf(opts));
}

export interface JsExecutor extends Executor {
  readonly stats: ArtifactStats;
  readonly compiled: JsCompiled;
  readonly artifact: JsArtifact;
}

/**
 * With `shared` (k.compileModel's programs), the state lives in one array per entry that every
 * executor of the model binds: resident between runs, handed between programs with no copy.
 */
export async function createJsExecutor(graph: Graph, opts: JsCompileOptions = {}, shared?: SharedState): Promise<JsExecutor> {
  const { compiled, runner, compileStats } = await compileTimed(
    () => compileJs(graph, opts),
    (c) => new JsArtifactRunner(c.artifact, shared && sharedArrays(shared)),
  );
  const read = (names: readonly string[]): Record<string, HostTensor> => runner.readInputs(names) as Record<string, HostTensor>;
  return {
    ...(shared && runner.sharesState ? { sharedState: shared, readInputs: async (names) => read(names), readInputsSync: read } : {}),
    compiled,
    compileStats,
    artifact: compiled.artifact,
    stats: compiled.artifact.stats,
    run: async (inputs, io) =>
      runner.run(inputs, {
        ...(io?.out ? { out: io.out } : {}),
        ...(io?.readback ? { readback: io.readback } : {}),
        ...(io?.profile ? { profile: io.profile } : {}),
      }) as Record<string, HostTensor>,
    profiling: executorProfiling("JavaScript, 1 thread", compiled, jsPeaks),
    get io() {
      return runner.io;
    },
  };
}

/** The arrays of a shared state, made on first use. */
function sharedArrays(shared: SharedState): JsSharedState {
  let arrays = shared.memory.get("js") as JsSharedState | undefined;
  if (!arrays) shared.memory.set("js", (arrays = { names: shared.names, memory: new Map(), resident: new Map() }));
  return arrays;
}
