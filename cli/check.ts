// `kiln check <file.kir | ->`: parse an IR text file and verify every graph (graph IR) or
// every program (kernel IR, a file opening with `program`) in it. Exit 0 with `ok: N
// graph(s)` / `ok: N kernel program(s)`; a parse or verify error prints file:line:col and a
// caret, exit 1.

import { parseModule } from "../compiler/ir/parser.ts";
import { verifyOrThrow } from "../compiler/ir/verifier.ts";
import { isKernelIrText, parseKernelModule } from "../compiler/kernel/parser.ts";
import { verifyKernelProgram } from "../compiler/kernel/verify.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { expectPositionals, parseCommandArgs } from "./args.ts";
import { readInputText, type CliIO } from "./io.ts";
import type { Command } from "./command.ts";

const usage = "kiln check <file.kir | ->";

export const checkCommand: Command = {
  name: "check",
  summary: "parse and verify a graph IR or kernel IR text file",
  usage,
  help: `Parses a .kir file (the text \`kiln dump\` prints) and runs the IR verifier on every
graph in it. A kernel IR file (\`NN-lower.kir\` and later kernel stages of a dump; its first
word is \`program\`) is parsed as kernel IR and each program runs the kernel IR verifier. \`-\` reads standard input, so \`kiln dump model.ts | kiln check -\` checks
that a dump parses back.

Exit codes: 0 all graphs are valid; 1 a parse or verify error (file:line:col and a caret);
2 bad command line.`,
  flags: {},
  async run(argv: readonly string[], io: CliIO): Promise<void> {
    const args = parseCommandArgs(argv, this.flags, usage);
    const [file] = expectPositionals(args, ["file"], usage);
    const { text, name } = await readInputText(io, file!, (message) => new KilnError({ code: "invalid-argument", message }));
    if (isKernelIrText(text)) {
      const programs = parseKernelModule(text, name);
      for (const p of programs) verifyKernelProgram(p);
      io.out(`ok: ${programs.length} kernel program(s)\n`);
      return;
    }
    const graphs = parseModule(text, name);
    for (const g of graphs) verifyOrThrow(g);
    io.out(`ok: ${graphs.length} graph(s)\n`);
  },
};
