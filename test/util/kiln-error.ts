// Catching the KilnError a test expects, and the caller's line for tests that assert an
// error points at it. A different error, or none, fails the test with what happened.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { KilnError } from "../../compiler/util/errors.ts";

/** The line number of the caller, read from a plain V8 stack trace. */
export function thisLine(): number {
  const frame = new Error().stack!.split("\n")[2]!;
  return Number(/:(\d+):\d+\)?$/.exec(frame)![1]);
}

/** The KilnError `fn` throws. */
export function thrownKilnError(fn: () => unknown): KilnError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a KilnError");
}

/** The KilnError `p` rejects with. */
export async function rejectedKilnError(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof KilnError) return e;
    throw e;
  }
  throw new Error("expected a KilnError");
}

/** The KilnError `fn` throws or rejects with (`fn` may be sync or async). */
export function kilnErrorOf(fn: () => unknown): Promise<KilnError> {
  return rejectedKilnError(Promise.resolve().then(fn));
}

/**
 * A check that a KilnError's message ends with the test file at `testUrl` (its
 * `import.meta.url`), as the path from the working folder, then `line` and a column inside
 * that line.
 */
export function atLineChecker(testUrl: string): (err: KilnError, line: number) => void {
  const file = fileURLToPath(testUrl);
  const rel = path.relative(process.cwd(), file).split(path.sep).join("/");
  const pattern = new RegExp(` at ${rel.replace(/[./]/g, "\\$&")}:(\\d+):(\\d+)$`);
  const lines = readFileSync(file, "utf8").split("\n");
  return (err, line) => {
    const m = pattern.exec(err.message);
    expect(m, err.message).not.toBeNull();
    expect(Number(m![1])).toBe(line);
    const col = Number(m![2]);
    expect(col).toBeGreaterThan(0);
    expect(col).toBeLessThanOrEqual(lines[line - 1]!.length);
  };
}
