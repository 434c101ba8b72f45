// `kiln compile --target cuda`: traces the program, takes its state's initial values and
// writes the standalone CUDA folder (targets/cuda-standalone.ts). Kept apart from cli/compile.ts so the
// CLI needs one branch, and from standalone.ts so the writer does not depend on the DSL.

import { HyperStore } from "../dsl/hyper.ts";
import { traceProgram, type Program } from "../dsl/program.ts";
import { writeCudaArtifact } from "../targets/cuda-standalone.ts";

/** Writes the folder and returns the line the CLI prints. */
export async function writeCudaCommandArtifact(
  program: Program,
  name: string,
  dir: string,
  shownDir: string,
  verify: boolean,
  started: number,
): Promise<string> {
  const traced = traceProgram(program, name);
  // The hyperparameters' defaults travel as the state entry `hyper`, as exe.save writes them.
  const state = { ...Object.fromEntries([...traced.state].map(([n, init]) => [n, init()])), ...new HyperStore(traced.hyper).inputs() };
  const written = writeCudaArtifact(dir, { graph: traced.graph, state, options: verify ? { verify: true } : {} });
  const inputs = traced.graph.inputs.length - Object.keys(state).length;
  return (
    `wrote ${shownDir}: ${name} for cuda, ${written.kernels} kernel(s), ${inputs} input(s), ${Object.keys(state).length} state tensor(s) in weights.safetensors` +
    `${written.ptx ? "" : " (no nvcc here: build.sh makes kernels.ptx)"} (${(performance.now() - started).toFixed(0)} ms)\n` +
    `build and run it: cd ${shownDir} && ./build.sh && ./run\n`
  );
}
