// Catching the KilnError a test expects, and the caller's line for tests that assert an
// error points at it. A different error, or none, fails the test with what happened.

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
