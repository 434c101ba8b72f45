// `kiln run` on a cuda artifact folder: through the CUDA addon where it is built and a GPU is
// present, else through the folder's own host program (./run, built by build.sh with nvcc),
// which reads and writes safetensors as `kiln run` does. Without a CUDA driver neither can
// run, and the error says so in one line before anything is built.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { KilnError } from "../compiler/util/errors.ts";
import { createModel, type LoadedArtifact, type NamedTensor } from "../runtime/artifact/load.ts";
import { decodeSafetensors, encodeSafetensors } from "../runtime/artifact/safetensors.ts";
import type { CudaRunnableArtifact } from "../runtime/cuda/index.ts";

export interface CudaRunResult {
  readonly outputs: Record<string, NamedTensor>;
  readonly state: Record<string, NamedTensor>;
  readonly ms: number;
  /** "addon" or "host program". */
  readonly via: string;
}

/** Whether a CUDA driver library is where the dynamic loader looks (ldconfig's cache or LD_LIBRARY_PATH). */
function driverPresent(): boolean {
  for (const dir of (process.env["LD_LIBRARY_PATH"] ?? "").split(":")) if (dir && existsSync(path.join(dir, "libcuda.so.1"))) return true;
  const cache = spawnSync("sh", ["-c", "ldconfig -p 2>/dev/null"], { encoding: "utf8" });
  return /\blibcuda\.so\.1\b/.test(cache.stdout ?? "");
}

const unavailable = (why: string): KilnError =>
  new KilnError({ code: "target-unavailable", message: `this artifact is for cuda and CUDA cannot run here: ${why}` });

export async function runCudaFolder(dir: string, loaded: LoadedArtifact, inputs: Readonly<Record<string, NamedTensor>>, steps: number): Promise<CudaRunResult> {
  const cuda = await import("../runtime/cuda/index.ts");
  const addonProblem = cuda.cudaUnavailableReason();
  if (addonProblem === undefined) {
    const artifact = { ...loaded.artifact, cudaSource: readFileSync(path.join(dir, "kernels.cu"), "utf8") } as CudaRunnableArtifact;
    const runner = new cuda.CudaArtifactRunner(cuda.openCuda(), artifact);
    const model = createModel(loaded, { run: (i) => runner.run(i) as Record<string, NamedTensor>, destroy: () => runner.dispose() });
    let outputs: Record<string, NamedTensor> = {};
    const started = performance.now();
    for (let step = 0; step < steps; step++) outputs = await model.run(inputs);
    const ms = performance.now() - started;
    const state = model.state();
    await model.close();
    return { outputs, state, ms, via: "addon" };
  }
  if (!driverPresent()) throw unavailable(`no CUDA driver (libcuda.so.1 is not installed; ${addonProblem.replace(/\s+/g, " ")})`);
  return runHostProgram(dir, loaded, inputs, steps);
}

function runHostProgram(dir: string, loaded: LoadedArtifact, inputs: Readonly<Record<string, NamedTensor>>, steps: number): CudaRunResult {
  const program = path.join(dir, "run");
  if (!existsSync(program)) {
    const built = spawnSync("bash", [path.join(dir, "build.sh")], { cwd: dir, encoding: "utf8" });
    if (built.status !== 0)
      throw unavailable(`the CUDA addon is not built and ./build.sh failed (${(built.stderr || built.error?.message || "").trim().split("\n").at(-1)})`);
  }
  const scratch = mkdtempSync(path.join(tmpdir(), "kiln-run-cuda-"));
  try {
    const inputFile = path.join(scratch, "inputs.safetensors");
    const outputFile = path.join(scratch, "outputs.safetensors");
    writeFileSync(inputFile, encodeSafetensors(inputs));
    const started = performance.now();
    const r = spawnSync(program, ["--input", inputFile, "--output", outputFile, "--steps", String(steps)], { encoding: "utf8" });
    const ms = performance.now() - started;
    if (r.status !== 0) {
      const line = (r.stderr || r.error?.message || `exit ${String(r.status)}`)
        .trim()
        .split("\n")[0]!
        .replace(/^error: /, "");
      if (/no CUDA driver|no device|reports no device/i.test(line)) throw unavailable(line);
      throw new KilnError({ code: "invalid-argument", message: `${program}: ${line}` });
    }
    const written = decodeSafetensors(readFileSync(outputFile), outputFile).tensors;
    const outputs: Record<string, NamedTensor> = {};
    const state: Record<string, NamedTensor> = {};
    for (const o of loaded.manifest.outputs) if (o.role === "user") outputs[o.name] = written[o.name]!;
    // State no output updates (the `hyper` input of a train step) keeps its value from weights.safetensors.
    for (const i of loaded.manifest.inputs) if (i.role === "state") state[i.name] = written[i.name] ?? loaded.state[i.name]!;
    return { outputs, state, ms, via: "host program" };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
