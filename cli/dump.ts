// `kiln dump <model.ts> [--entry name] [--no-locs]`: trace every k.program the file exports
// and print the graph IR text, the form `kiln check` parses back.

import { printModule } from "../compiler/ir/printer.ts";
import { traceProgram } from "../dsl/program.ts";
import { expectPositionals, parseCommandArgs } from "./args.ts";
import type { Command } from "./command.ts";
import type { CliIO } from "./io.ts";
import { loadPrograms, selectEntry } from "./load-programs.ts";

const usage = "kiln dump <model.ts> [--entry <name>] [--no-locs]";

export const dumpCommand: Command = {
  name: "dump",
  summary: "print the graph IR of the programs a model file exports",
  usage,
  help: `Imports <model.ts> (TypeScript runs as is, no build step), traces every export made
with k.program (the export name names the graph) and prints the graph IR text.

  --entry <name>  only the program exported as <name>
  --no-locs       leave out source locations (loc("file":line:col)) on each line

Exit codes: 0 ok; 1 the file cannot be loaded or traced (e.g. a shape error, reported at
the line of the model that caused it); 2 bad command line.`,
  flags: { entry: { type: "string", short: "e" }, locs: { type: "boolean", default: true } },
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["model.ts"], usage);
    const entry = args.flags.entry as string | undefined;
    const programs = selectEntry(await loadPrograms(io.cwd, file!), entry, file!);
    const graphs = programs.map((p) => traceProgram(p.program, p.name).graph);
    const text = printModule(graphs, { locs: args.flags.locs !== false });
    io.out(text.endsWith("\n") ? text : `${text}\n`);
  },
};
