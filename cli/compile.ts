// `kiln compile <model.ts> --entry <name> --target <t> --out <dir>`: compile one exported
// k.program exactly as k.compile does in-process, then save its artifact as a standalone
// folder (manifest.json, kernels, weights.safetensors, typed loader; docs/artifacts.md).

import { formatCompileStats } from "../compiler/compile-stats.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { compile } from "../dsl/compile.ts";
import { expectPositionals, parseCommandArgs, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadPrograms, selectOne } from "./load-programs.ts";

const usage = "kiln compile <model.ts> [--entry <name>] [--target <name>] --out <dir> [--verify] [--time]";

export const compileCommand: Command = {
  name: "compile",
  summary: "compile a program a model file exports into a standalone artifact folder",
  usage,
  help: `Imports <model.ts>, compiles the k.program named by --entry (optional when the file
exports only one) for --target, and writes the artifact folder <dir>: manifest.json (schema
version, graph hash, sha256 of every file), the kernel sources, weights.safetensors (the
program's state: parameters and optimizer state as initialized), graph.kir, and index.ts /
index.js exposing load() and run() typed with the model's inputs and outputs. The folder
runs in Node or a browser without Kiln; 'kiln run <dir>' runs it too.

  --entry <name>    the exported program to compile
  --target <name>   js, webgpu, … or auto (default: js)
  --out <dir>       the folder to write (created; its kernels/ and runtime/ are replaced)
  --verify          verify the graph after every pass
  --time            print the compile time by stage (stage, ms, % of total) to stderr

Exit codes: 0 ok; 1 the model cannot be loaded, traced or compiled for the target; 2 bad
command line.`,
  flags: {
    entry: { type: "string", short: "e" },
    target: { type: "string", short: "t", default: "js" },
    out: { type: "string", short: "o" },
    verify: { type: "boolean" },
    time: { type: "boolean" },
  },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const out = args.flags.out;
    if (typeof out !== "string" || out === "") throw new UsageError("missing --out <dir>", usage);
    const { name, program } = selectOne(await loadPrograms(io.cwd, file!), args.flags.entry as string | undefined, file!);
    const started = performance.now();
    if (args.flags.target === "cuda") {
      if (args.flags.time === true)
        throw new UsageError("--time: not available with --target cuda (the standalone CUDA folder is built without the driver's timings)", usage);
      // A native folder (kernels.cu/.ptx, main.cpp, build.sh) written without a GPU: targets/cuda-standalone.ts.
      const { writeCudaCommandArtifact } = await import("./cuda-standalone-command.ts");
      io.out(await writeCudaCommandArtifact(program, name, resolveFrom(io.cwd, out), out, args.flags.verify === true, started));
      return;
    }
    const exe = await compile(program, undefined, { target: args.flags.target as string, name, ...(args.flags.verify === true ? { verify: true } : {}) });
    if (args.flags.time === true) io.err(formatCompileStats(exe.compileStats));
    const artifact = exe.artifact;
    if (!artifact) throw new KilnError({ code: "unsupported", message: `target '${exe.target}' builds no artifact (try --target js, wasm, webgpu or cuda)` });
    const dir = resolveFrom(io.cwd, out);
    await exe.save(dir);
    // The weights hold the state and, for a train step, its hyperparameters (the entry `hyper`).
    const stateCount = Object.keys(exe.state()).length + (Object.keys(exe.hyper()).length > 0 ? 1 : 0);
    io.out(
      `wrote ${out}: ${name} for ${exe.target}, ${artifact.kernels.length} kernel(s), ${artifact.inputs.length - stateCount} input(s), ${stateCount} state tensor(s) in weights.safetensors (${(performance.now() - started).toFixed(0)} ms)\n`,
    );
  },
};
