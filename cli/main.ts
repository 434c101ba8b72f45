// The kiln CLI: a table of commands, one dispatcher, one place that turns errors into
// exit codes — 0 ok, 1 a user error (KilnError: bad model, bad IR, missing file),
// 2 a malformed command line. Anything else is a Kiln bug and prints its stack.

import { existsSync, readFileSync } from "node:fs";
import { KilnError } from "../compiler/util/errors.ts";
import { UsageError } from "./args.ts";
import { checkCommand } from "./check.ts";
import type { Command } from "./command.ts";
import { compileCommand } from "./compile.ts";
import { dumpCommand } from "./dump.ts";
import { processIO, type CliIO } from "./io.ts";
import { profileCommand } from "./profile.ts";
import { tuneCommand } from "./tune.ts";
import { runCommand } from "./run.ts";
import { trainCommand } from "./train.ts";
import { viewCommand } from "./view.ts";

export const commands: readonly Command[] = [dumpCommand, checkCommand, compileCommand, runCommand, profileCommand, tuneCommand, trainCommand, viewCommand];

export const EXIT_OK = 0;
export const EXIT_USER_ERROR = 1;
export const EXIT_USAGE = 2;

function globalHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "usage: kiln <command> [options]",
    "",
    "Kiln compiles deep-learning models written in a TypeScript DSL.",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run 'kiln <command> --help' for a command's options.",
    "",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return `usage: ${c.usage}\n\n${c.help}\n`;
}

function version(): string {
  // ../package.json from cli/main.ts in a checkout, ../../package.json from the built dist/cli/main.js.
  const pkgUrl = [new URL("../package.json", import.meta.url), new URL("../../package.json", import.meta.url)].find((u) => existsSync(u))!;
  const pkg = JSON.parse(readFileSync(pkgUrl, "utf8")) as { version: string };
  return `kiln ${pkg.version}\n`;
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(globalHelp());
    return EXIT_USAGE;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? rest[0] : undefined;
    const about = commands.find((c) => c.name === topic);
    if (topic !== undefined && !about) {
      io.err(`kiln: no command '${topic}' (commands: ${commands.map((c) => c.name).join(", ")})\n`);
      return EXIT_USAGE;
    }
    io.out(about ? commandHelp(about) : globalHelp());
    return EXIT_OK;
  }
  if (name === "--version" || name === "-V") {
    io.out(version());
    return EXIT_OK;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(`kiln: unknown command '${name}' (commands: ${commands.map((c) => c.name).join(", ")})\nusage: kiln <command> [options]\n`);
    return EXIT_USAGE;
  }
  const beforeSeparator = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (beforeSeparator.includes("--help") || beforeSeparator.includes("-h")) {
    io.out(commandHelp(command));
    return EXIT_OK;
  }
  try {
    await command.run(rest, io);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`kiln ${command.name}: ${e.message}\nusage: ${e.usage ?? command.usage}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof KilnError && e.code === "usage") {
      io.err(`kiln ${command.name}: ${e.message}\nusage: ${command.usage}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof KilnError) {
      io.err(`error: ${e.message}\n`);
      return EXIT_USER_ERROR;
    }
    // An exception from the user's own model code is their error too; show where it came from.
    io.err(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT_USER_ERROR;
  }
}
