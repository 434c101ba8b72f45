// `kiln run <artifact-dir> --input x.safetensors`: load a standalone artifact folder with the
// runtime alone (every file checked against the manifest), run it once on the named inputs,
// print each output and optionally write them all to a safetensors file.

import { isFloat } from "../compiler/ir/dtype.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { KilnError } from "../compiler/util/errors.ts";
import { createModel, loadArtifact, type LoadedArtifact, type NamedTensor } from "../runtime/artifact/load.ts";
import { decodeHalf } from "../runtime/artifact/half.ts";
import { ArtifactInvalidError } from "../runtime/artifact/manifest.ts";
import { decodeSafetensors, encodeSafetensors } from "../runtime/artifact/safetensors.ts";
import { backendOf } from "../targets/backends.ts";
import { expectPositionals, parseCommandArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";

const usage = "kiln run <artifact-dir> [--input <inputs.safetensors>] [--output <outputs.safetensors>] [--steps <n>]";

export const runCommand: Command = {
  name: "run",
  summary: "run a standalone artifact folder on inputs from a safetensors file",
  usage,
  help: `Loads <artifact-dir> (written by 'kiln compile' or exe.save) with the runtime only,
refusing it if manifest.json's schemaVersion is unknown or any file's sha256 differs from
the manifest. Runs it once on the tensors of --input (by input name; the state comes from
weights.safetensors) and prints every output. A cuda folder runs through the CUDA addon
where it is built, else through the folder's own host program (./run, built by build.sh).

  --input <file>    inputs as safetensors, one tensor per input name
  --output <file>   also write the outputs (and the state after the run) as safetensors
  --steps <n>       run n times (a training step updates its state each time); default 1

Exit codes: 0 ok; 1 the artifact is invalid or the inputs do not fit it; 2 bad command line.`,
  flags: {
    input: { type: "string", short: "i" },
    output: { type: "string", short: "o" },
    steps: { type: "string", default: "1" },
  },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [dir] = expectPositionals(args, ["artifact-dir"], usage);
    const steps = Number(args.flags.steps);
    if (!Number.isInteger(steps) || steps < 1)
      throw new KilnError({ code: "usage", message: `--steps must be a positive integer, got '${String(args.flags.steps)}'` });
    const loaded = await asKilnError(() => loadArtifact(resolveFrom(io.cwd, dir!)));
    const cuda = loaded.manifest.target === "cuda";
    const backend = backendOf(loaded.manifest.target);
    const inputs = readInputs(io, args.flags.input as string | undefined, loaded);
    let outputs: Record<string, NamedTensor> = {};
    let state: Record<string, NamedTensor>;
    let ms: number;
    if (cuda) {
      // The addon where it is built, else the folder's own host program (cli/run-cuda.ts).
      ({ outputs, state, ms } = await (await import("./run-cuda.ts")).runCudaFolder(resolveFrom(io.cwd, dir!), loaded, inputs, steps));
    } else {
      // Each target's runtime is imported only when an artifact of that target is run.
      const model = createModel(loaded, await backend.createRunner(loaded.artifact));
      const started = performance.now();
      for (let step = 0; step < steps; step++) outputs = await model.run(inputs);
      ms = performance.now() - started;
      state = model.state();
      await model.close();
    }
    io.out(`${loaded.manifest.name} (${loaded.manifest.target}): ${steps} run(s) in ${ms.toFixed(1)} ms\n`);
    for (const [name, t] of Object.entries(outputs)) io.out(`${name}: ${formatTensor(t)}\n`);
    const outFile = args.flags.output as string | undefined;
    if (outFile !== undefined) {
      writeFileSync(resolveFrom(io.cwd, outFile), encodeSafetensors({ ...state, ...outputs }));
      io.out(`wrote ${outFile}\n`);
    }
  },
};

function readInputs(io: CliIO, file: string | undefined, loaded: LoadedArtifact): Record<string, NamedTensor> {
  const wanted = loaded.manifest.inputs.filter((i) => i.role === "user");
  if (file === undefined) {
    if (wanted.length === 0) return {};
    throw new KilnError({
      code: "invalid-argument",
      message: `${loaded.manifest.name} needs input(s) ${wanted.map((i) => `${i.name}: ${i.dtype}[${i.shape.join(",")}]`).join(", ")}: pass them with --input <file.safetensors>`,
    });
  }
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(resolveFrom(io.cwd, file));
  } catch (e) {
    throw new KilnError({
      code: "invalid-argument",
      message: `cannot read '${file}': ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`,
    });
  }
  const tensors = asKilnErrorSync(() => decodeSafetensors(bytes, file).tensors);
  const inputs: Record<string, NamedTensor> = {};
  for (const io of wanted) {
    const t = tensors[io.name];
    if (!t)
      throw new KilnError({
        code: "invalid-argument",
        message: `${file}: no tensor '${io.name}' (the artifact's inputs: ${wanted.map((i) => i.name).join(", ")})`,
      });
    // A symbolic leading axis takes any rows up to its max (run() checks the count).
    const same = io.symbolic
      ? t.shape.slice(1).join(",") === io.shape.slice(1).join(",") && t.shape.length === io.shape.length
      : t.shape.join(",") === io.shape.join(",");
    // A 16-bit float file for an f32 input widens exactly (PyTorch's F16/BF16 checkpoints, docs/cli.md).
    const widen = io.dtype === "f32" && (t.dtype === "f16" || t.dtype === "bf16");
    if ((t.dtype !== io.dtype && !widen) || !same)
      throw new KilnError({
        code: "shape-mismatch",
        message: `${file}: tensor '${io.name}' is ${t.dtype}[${t.shape.join(",")}], the artifact expects ${io.dtype}[${io.shape.join(",")}]`,
      });
    inputs[io.name] =
      widen && (t.dtype === "f16" || t.dtype === "bf16")
        ? { dtype: "f32", shape: t.shape, data: decodeHalf(t.dtype, t.data as Uint16Array, new Float32Array(t.data.length)) }
        : t;
  }
  return inputs;
}

const formatTensor = (t: NamedTensor): string => {
  const shown = Array.from(t.data.subarray(0, 8), (v) => (isFloat(t.dtype) ? Number(v.toPrecision(6)) : v)).join(", ");
  return `${t.dtype}[${t.shape.join(",")}] [${shown}${t.data.length > 8 ? `, … (${t.data.length} elements)` : ""}]`;
};

/** The runtime cannot throw KilnError (it never imports the compiler): rewrap its artifact errors. */
async function asKilnError<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof ArtifactInvalidError) throw new KilnError({ code: "artifact-invalid", message: e.message });
    throw e;
  }
}

function asKilnErrorSync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ArtifactInvalidError) throw new KilnError({ code: "artifact-invalid", message: e.message });
    throw e;
  }
}
