// `kiln dump <model.ts>`: trace every k.program the file exports, run the pass pipeline and
// print the graph IR text (the form `kiln check` parses back); --after/--all print the
// graph after chosen passes instead (docs/debugging.md), --dump-dir also writes the files.
// With --target T it runs the whole compile driver for T (compiler/compile.ts) and dumps
// every stage: graph passes, fusion groups, kernel IR after lowering and each kernel pass,
// the memory plan and the rendered kernels — exactly what `kiln compile --target T` builds.

import { formatCompileStats, stagesOf } from "../compiler/compile-stats.ts";
import type { DumpFile } from "../compiler/passes/pass.ts";
import { dumpProgram, passesFromList } from "../compiler/pipeline.ts";
import { printKernelProgram } from "../compiler/kernel/print.ts";
import { cpuBackend } from "../targets/cpu.ts";
import { backendOf, type AnyBackend } from "../targets/backends.ts";
import { folderDumpSink } from "../dsl/dump-folder.ts";
import { traceProgram } from "../dsl/program.ts";
import { UsageError, expectPositionals, parseCommandArgs } from "./args.ts";
import type { Command } from "./command.ts";
import { resolveFrom, type CliIO } from "./io.ts";
import { loadPrograms, selectEntry, selectOne } from "./load-programs.ts";

const usage =
  "kiln dump <model.ts> [--entry <name>] [--target <name>] [--after <pass,…> | --all] [--dump-dir <dir>] [--verify] [--no-locs] [--time] [--fuse-attention]";

export const dumpCommand: Command = {
  name: "dump",
  summary: "print the graph IR of the programs a model file exports",
  usage,
  help: `Imports <model.ts> (TypeScript runs as is, no build step), traces every export made
with k.program (the export name names the graph), runs the pass pipeline and prints the
resulting graphs as IR text.

  --entry <name>       only the program exported as <name>
  --target <name>      compile for js, wasm, webgpu, cuda (or cpu) through the whole driver:
                       the stages are the graph passes, fuse (NN-fuse.groups.txt), lower
                       (kernel IR), the target's kernel passes, memory-plan and render
                       (NN-render/<kernel>.<ext>, the sources 'kiln compile' writes); without
                       --after/--all it prints the final kernel IR
  --after <pass,…>     print the graph after each named pass instead ('input': as traced),
                       each under a '// ---- 01-simplify.kir ----' header
  --all                print the traced graph and the graph after every pass
  --dump-dir <dir>     also write those dumps as numbered files into <dir>
  --verify             verify the graph after every pass; a failure names the pass
  --no-locs            leave out source locations (loc("file":line:col))
  --time               print the compile time by stage (stage, ms, % of total) to stderr
  --fuse-attention     with --target: fuse every attention into one online-softmax kernel
                       (an 'attention' fusion group, 'form attention' in the kernel IR), not
                       only those whose scores would take 64 MiB or more (docs/kernels.md)

Exit codes: 0 ok; 1 the file cannot be loaded or traced (e.g. a shape error, reported at
the line of the model that caused it) or a pass broke the graph; 2 bad command line.`,
  flags: {
    entry: { type: "string", short: "e" },
    target: { type: "string", short: "t" },
    after: { type: "string" },
    all: { type: "boolean" },
    "dump-dir": { type: "string" },
    verify: { type: "boolean" },
    locs: { type: "boolean", default: true },
    time: { type: "boolean" },
    "fuse-attention": { type: "boolean" },
  },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const target = args.flags.target as string | undefined;
    const after = typeof args.flags.after === "string" ? passNames(args.flags.after, target !== undefined) : undefined;
    const dumpDir = args.flags["dump-dir"] as string | undefined;
    const programs = selectEntry(await loadPrograms(io.cwd, file!), args.flags.entry as string | undefined, file!);
    if (target !== undefined) {
      const { name, program } = selectOne(programs, undefined, file!);
      const backend = target === "cpu" ? (cpuBackend() as AnyBackend) : backendOf(target);
      const started = performance.now();
      const graph = traceProgram(program, name).graph;
      const traceMs = performance.now() - started;
      const compiled = backend.compile(graph, {
        ...(await backend.machineOptions?.()),
        ...(after ? { dumpAfter: after } : {}),
        ...(args.flags.all === true ? { dumpAll: true } : {}),
        ...(args.flags.verify === true ? { verify: true } : {}),
        ...(args.flags["fuse-attention"] === true ? { fuseAttention: true } : {}),
        locs: args.flags.locs !== false,
      });
      if (args.flags.time === true)
        io.err(formatCompileStats({ totalMs: performance.now() - started, stages: [{ name: "trace", ms: traceMs }, ...stagesOf(compiled.timings)] }));
      writeDumps(io, dumpDir, compiled.dumps);
      const selected = args.flags.all === true || after !== undefined;
      const text = selected ? compiled.dumps.map((f) => `// ---- ${f.name} ----\n${f.text}`).join("\n") : printKernelProgram(compiled.program);
      io.out(text.endsWith("\n") ? text : `${text}\n`);
      return;
    }
    const started = performance.now();
    const graphs = programs.map((p) => traceProgram(p.program, p.name).graph);
    const traceMs = performance.now() - started;
    const { text, files, timings } = dumpProgram(graphs, {
      ...(after ? { after } : {}),
      ...(args.flags.all === true ? { all: true } : {}),
      ...(args.flags.verify === true ? { verify: true } : {}),
      locs: args.flags.locs !== false,
    });
    if (args.flags.time === true)
      io.err(formatCompileStats({ totalMs: performance.now() - started, stages: [{ name: "trace", ms: traceMs }, ...stagesOf(timings)] }));
    writeDumps(io, dumpDir, files);
    io.out(text.endsWith("\n") ? text : `${text}\n`);
  },
};

function writeDumps(io: CliIO, dumpDir: string | undefined, files: readonly DumpFile[]): void {
  if (dumpDir === undefined) return;
  const sink = folderDumpSink(resolveFrom(io.cwd, dumpDir));
  for (const f of files) sink.write(f.name, f.text);
}

/** Checks a --after list up front, so a typo is a usage error before any tracing (the driver checks its own stage names). */
function passNames(list: string, driverStages: boolean): string[] {
  const names = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0) throw new UsageError("--after needs at least one pass name", usage);
  if (driverStages) return names;
  try {
    passesFromList(names.filter((n) => n !== "input").join(","));
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e), usage);
  }
  return names;
}
