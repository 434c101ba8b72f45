// Command-line parsing for the kiln CLI: each command declares its flags as data and gets
// typed values back; any malformed command line becomes a UsageError (exit code 2).

import { parseArgs, type ParseArgsConfig } from "node:util";
import { camelCase, suggestOption } from "../compiler/util/options.ts";

/** Bad command line: the CLI prints the message and the command's usage line, then exits 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedArgs {
  readonly flags: Record<string, string | boolean | undefined>;
  readonly positionals: string[];
}

/** Parses `argv` against `flags`; `--help`/`-h` is always accepted. Unknown flags are usage errors. */
export function parseCommandArgs(argv: readonly string[], flags: FlagSpec, usage: string): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: { help: { type: "boolean", short: "h" }, ...flags },
      allowPositionals: true,
      allowNegative: true,
      strict: true,
    });
    return { flags: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    // node's messages are long and mention `strict: false`; keep the useful first sentence.
    const first = e instanceof Error ? e.message.split(". ")[0]! : String(e);
    throw new UsageError(first.charAt(0).toLowerCase() + first.slice(1) + flagSuggestion(first, flags), usage);
  }
}

/** ` (did you mean '--dump-after'?)` for an unknown flag spelt close to a known one (`--dump_after`, `--dumpAfter`). */
function flagSuggestion(message: string, flags: FlagSpec): string {
  const m = /^Unknown option '--?([^'=]+)'/.exec(message);
  if (!m) return "";
  const names = Object.keys(flags);
  // Flags are kebab-case; compare in camelCase so `dump_after` and `dumpAfter` both find `dump-after`.
  const toCamel = (name: string) => camelCase(name.replace(/-/g, "_"));
  const hit = suggestOption(toCamel(m[1]!), names.map(toCamel));
  return hit === undefined ? "" : ` (did you mean '--${names[names.map(toCamel).indexOf(hit)]}'?)`;
}

/** Exactly `count` positionals, or a usage error naming what is missing or extra. */
export function expectPositionals(args: ParsedArgs, names: readonly string[], usage: string): string[] {
  if (args.positionals.length < names.length)
    throw new UsageError(
      `missing ${names
        .slice(args.positionals.length)
        .map((n) => `<${n}>`)
        .join(" ")}`,
      usage,
    );
  if (args.positionals.length > names.length) throw new UsageError(`unexpected argument '${args.positionals[names.length]}'`, usage);
  return args.positionals;
}
