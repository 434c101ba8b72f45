// Finds the user's source line for a traced op: the first stack frame outside Kiln's own
// dsl/ and compiler/ folders. Errors and IR nodes carry it, so a shape mismatch names the
// line the person wrote, not a frame deep inside a composite op.

import { fileURLToPath } from "node:url";
import path from "node:path";
import type { SourceLoc } from "../compiler/util/errors.ts";

const kilnRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const internalDirs = ["dsl", "compiler", "codegen", "runtime", "cli", "bin"].map((d) => path.join(kilnRoot, d) + path.sep);

const framePattern = /\(?((?:file:\/\/)?[^()\s]+?):(\d+):(\d+)\)?\s*$/;

function isInternal(file: string): boolean {
  return internalDirs.some((d) => file.startsWith(d)) || file.startsWith("node:") || file.includes(`${path.sep}node_modules${path.sep}`);
}

let enabled = true;
/** Location capture costs a stack walk per op; tracing a huge generated graph can turn it off. */
export function setLocCapture(on: boolean): void {
  enabled = on;
}

export function captureUserLoc(): SourceLoc | undefined {
  if (!enabled) return undefined;
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 64;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = saved;
  for (const line of stack.split("\n").slice(1)) {
    const m = framePattern.exec(line.trim());
    if (!m) continue;
    let file = m[1]!;
    if (file.startsWith("file://")) file = fileURLToPath(file);
    if (!path.isAbsolute(file) || isInternal(file)) continue;
    const rel = path.relative(process.cwd(), file);
    return { file: rel.startsWith("..") ? file : rel, line: Number(m[2]), col: Number(m[3]) };
  }
  return undefined;
}
