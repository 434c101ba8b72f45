// Runs every FileCheck-style pass test in this folder: each `.kir` file names passes on a
// `// RUN:` line, holds input IR and CHECK lines. The passes run (verified after each) on
// every graph of the file; the printed result must satisfy the CHECK lines, and the file
// itself must round-trip print → parse → print byte-identically.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { parseModule } from "../../compiler/ir/parser.ts";
import { printModule } from "../../compiler/ir/printer.ts";
import { passesFromList, runPasses } from "../../compiler/pipeline.ts";
import { readDirectives, readRunLine, runFileCheck } from "../util/filecheck.ts";

const here = dirname(fileURLToPath(import.meta.url));
const kirFiles = readdirSync(here)
  .filter((f) => f.endsWith(".kir"))
  .sort();

function runLine(text: string, file: string): string {
  const passes = readRunLine(text);
  if (!passes || passes.length === 0) throw new Error(`${file}: no '// RUN: <passes>' line`);
  return passes.join(",");
}

test("there are .kir pass tests to run", () => {
  expect(kirFiles.length).toBeGreaterThan(0);
});

describe.each(kirFiles)("%s", (file) => {
  const text = readFileSync(join(here, file), "utf8");

  test("round-trips print → parse → print", () => {
    const printed = printModule(parseModule(text, file));
    expect(printModule(parseModule(printed, file))).toBe(printed);
  });

  test("the RUN passes produce what the CHECK lines describe", () => {
    const passes = passesFromList(runLine(text, file));
    const output = printModule(parseModule(text, file).map((g) => runPasses(g, passes, { verify: true }).graph));
    expect(readDirectives(text).length, `${file} has no CHECK lines`).toBeGreaterThan(0);
    const result = runFileCheck(text, output);
    expect(result.ok, `${file}:\n${result.message}`).toBe(true);
  });
});
