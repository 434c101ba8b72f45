// The shape of one CLI command. main.ts keeps the table; adding a command is one module
// exporting a Command plus one line in that table.

import type { FlagSpec } from "./args.ts";
import type { CliIO } from "./io.ts";

export interface Command {
  readonly name: string;
  /** One line for `kiln --help`. */
  readonly summary: string;
  /** The usage line printed with a usage error. */
  readonly usage: string;
  /** The body of `kiln <name> --help`, after the usage line. */
  readonly help: string;
  readonly flags: FlagSpec;
  /** Throws UsageError (exit 2) or KilnError (exit 1); returning means success (exit 0). */
  run(argv: readonly string[], io: CliIO): Promise<void>;
}
