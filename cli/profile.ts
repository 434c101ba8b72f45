// `kiln profile <model.ts> --entry <name> --target <t> --steps <n>`: compile one exported
// k.program as k.compile does, run it under exe.profile and print the per-kernel table
// (targets/profile.ts's formatProfile); --json writes the structured Profile too. Inputs are
// deterministic: f32 a small sine ramp, integers and booleans zero (valid indices and labels);
// a kernel's time does not depend on the values. Compile time (with WebGPU's pipeline
// creation, reported while it runs when it takes over a second) is printed apart, on stderr.

import { writeFileSync } from "node:fs";
import { formatCompileStats } from "../compiler/compile-stats.ts";
import { compile } from "../dsl/compile.ts";
import type { HostArray } from "../dsl/host-data.ts";
import type { InputSpec, Specs } from "../dsl/trace.ts";
import { formatProfile } from "../targets/profile.ts";
import { throttledProgress } from "../targets/webgpu.ts";
import { expectPositionals, parseCommandArgs, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadPrograms, selectOne } from "./load-programs.ts";

const usage =
  "kiln profile <model.ts> [--entry <name>] [--target <name>] [--steps <n>] [--warmup <n>] [--top <n>] [--sort time|launch] [--no-peaks] [--json <file>] [--time]";

export const profileCommand: Command = {
  name: "profile",
  summary: "run a program a model file exports under exe.profile and print time per kernel",
  usage,
  help: `Imports <model.ts>, compiles the k.program named by --entry (optional when the file
exports only one) for --target, runs it --warmup times unprofiled and --steps times profiled
(a training step trains: the state advances) and prints one row per kernel: calls, total ms,
share of the step, GFLOP/s and GB/s (in parentheses: their share of the machine's peaks,
measured once per process) and the source lines and parameters it touches. Above the table:
how kernel times were taken (WebGPU timestamp queries, or one submission per kernel timed on
the host where the adapter has none; host timers on js and wasm), and the host's own time per
step (inputs in, readback, the rest). See docs/profiling.md.

  --entry <name>       the exported program to profile
  --target <name>      js, wasm, webgpu, cuda, cpu or auto (default: auto)
  --steps <n>          profiled steps (default 10)
  --warmup <n>         unprofiled steps first (default 1)
  --top <n>            show the n longest kernels (the rest summed in one row)
  --sort time|launch   row order: longest first (default) or launch order
  --no-peaks           skip measuring the machine's peaks (no share-of-peak columns)
  --json <file>        also write the profile as JSON (the Profile type of exe.profile)
  --time               print the compile time by stage to stderr

Exit codes: 0 ok; 1 the model cannot be loaded, compiled or run; 2 bad command line.`,
  flags: {
    entry: { type: "string", short: "e" },
    target: { type: "string", short: "t", default: "auto" },
    steps: { type: "string", default: "10" },
    warmup: { type: "string", default: "1" },
    top: { type: "string" },
    sort: { type: "string", default: "time" },
    peaks: { type: "boolean", default: true },
    json: { type: "string" },
    time: { type: "boolean" },
  },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const count = (flag: string, min: number): number | undefined => {
      const raw = args.flags[flag];
      if (raw === undefined) return undefined;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, got '${String(raw)}'`, usage);
      return n;
    };
    const steps = count("steps", 1)!;
    const warmup = count("warmup", 0)!;
    const top = count("top", 1);
    const sort = args.flags.sort;
    if (sort !== "time" && sort !== "launch") throw new UsageError(`--sort must be 'time' or 'launch', got '${String(sort)}'`, usage);
    const { name, program } = selectOne(await loadPrograms(io.cwd, file!), args.flags.entry as string | undefined, file!);
    const target = args.flags.target as string;
    // WebGPU's pipeline creation reports its progress on stderr when it takes over a second.
    const progress = target === "webgpu" ? { progress: throttledProgress((line) => io.err(`kiln: ${line}\n`)) } : {};
    const exe = await compile(program, undefined, { target, name, ...progress });
    try {
      const runner = exe.compileStats.stages.find((s) => s.name === "runner");
      io.err(`compiled ${name} for ${exe.target} in ${exe.compileStats.totalMs.toFixed(0)} ms${runner ? ` (runner ${runner.ms.toFixed(0)} ms)` : ""}\n`);
      if (args.flags.time === true) io.err(formatCompileStats(exe.compileStats));
      const profile = await exe.profile(inputsFor(program.specs), { steps, warmup, peaks: args.flags.peaks !== false });
      io.out(formatProfile(profile, { sort, ...(top !== undefined ? { top } : {}) }));
      const json = args.flags.json as string | undefined;
      if (json !== undefined) {
        writeFileSync(resolveFrom(io.cwd, json), `${JSON.stringify(profile, null, 1)}\n`);
        io.out(`wrote ${json}\n`);
      }
    } finally {
      await exe.close();
    }
  },
};

/** Deterministic host inputs in the structure of the program's specs (a symbolic leading axis at its max). */
export function inputsFor(specs: Specs): Record<string, HostArray> | HostArray[] {
  const fill = (spec: InputSpec): HostArray => {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    return spec.dtype === "f32"
      ? Float32Array.from({ length: size }, (_, i) => 0.5 * Math.sin(i))
      : spec.dtype === "i32"
        ? new Int32Array(size)
        : new Uint8Array(size);
  };
  return Array.isArray(specs) ? specs.map(fill) : Object.fromEntries(Object.entries(specs as Record<string, InputSpec>).map(([n, spec]) => [n, fill(spec)]));
}
