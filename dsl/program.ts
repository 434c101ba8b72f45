// k.program: a function paired with its input specs, so it can be compiled without more
// arguments. A model file exports programs; `kiln dump model.ts` traces every one of them
// (the export name names the graph). A program is plain data: nothing is traced until used.

import { KilnError, type SourceLoc } from "../compiler/util/errors.ts";
import { isInputSpec, locPart, traceFunction, type Specs, type TraceResult } from "./trace.ts";
import { captureUserLoc } from "./loc.ts";
import { strictOptions } from "./options.ts";

export type TracedFn = (...args: never[]) => unknown;

export interface Program<F extends TracedFn = TracedFn> {
  readonly kind: "kiln-program";
  readonly fn: F;
  readonly specs: Specs;
  /** Graph name; when absent, the export name (CLI) or the function's name is used. */
  readonly name?: string;
  /** Where k.program was called: the graph inputs' source location. */
  readonly loc?: SourceLoc;
}

/** Names `fn` with its input specs (array: positional arguments; record: one object argument). */
export function program<F extends TracedFn>(fn: F, specs: Specs, opts: { name?: string } = {}): Program<F> {
  const loc = captureUserLoc();
  strictOptions("k.program", opts, { name: true });
  if (typeof fn !== "function") throw new KilnError({ code: "invalid-argument", message: `k.program: expected a function, got ${typeof fn}`, ...locPart(loc) });
  checkSpecs(specs, "k.program", loc);
  return Object.freeze({ kind: "kiln-program" as const, fn, specs, ...(opts.name ? { name: opts.name } : {}), ...locPart(loc) });
}

/** Duck-typed, so a program made by another copy of the module (a user's node_modules) still counts. */
export function isProgram(x: unknown): x is Program {
  return typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "kiln-program" && typeof (x as { fn?: unknown }).fn === "function";
}

export function checkSpecs(specs: unknown, what: string, loc = captureUserLoc()): asserts specs is Specs {
  const fail = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message: `${what}: ${message}`, ...locPart(loc) });
  };
  if (typeof specs !== "object" || specs === null)
    fail(`specs must be an array or a record of input specs (k.f32/k.i32/k.bool), got ${specs === null ? "null" : typeof specs}`);
  const entries = Array.isArray(specs) ? specs.map((s, i) => [String(i), s] as const) : Object.entries(specs as object);
  for (const [key, s] of entries) if (!isInputSpec(s)) fail(`spec '${key}' is not an input spec (use k.f32/k.i32/k.bool)`);
}

/** Traces a program into a graph named `name` (default: the program's own name, then the function's). */
export function traceProgram(p: Program, name?: string): TraceResult {
  return traceFunction(name ?? p.name ?? graphNameOf(p.fn), p.fn, p.specs, p.loc);
}

export function graphNameOf(fn: TracedFn): string {
  return fn.name && /^[A-Za-z_$][\w$]*$/.test(fn.name) ? fn.name : "main";
}
