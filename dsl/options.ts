// Strict options for the DSL surface: each public function lists the keys its options type
// has (a table the compiler checks against the type, so the list cannot drift) and an
// unknown key becomes a KilnError at the user's line, with a PyTorch-spelling suggestion.

import { KilnError } from "../compiler/util/errors.ts";
import { checkOptions } from "../compiler/util/options.ts";
import { captureUserLoc } from "./loc.ts";

/** Every key of an options type, each `true`: `{ lr: true, momentum: true, … } satisfies KeyTable<SgdOptions>`. */
export type KeyTable<T> = { readonly [K in keyof Required<T>]-?: true };

/** Checks `opts` against `keys` (see compiler/util/options.ts) and returns it, `{}` when absent. */
export function strictOptions<T extends object>(where: string, opts: T | undefined, keys: KeyTable<T>): T {
  // The common case (a plain object of known keys) captures no location.
  if (opts === undefined || (typeof opts === "object" && opts !== null && !Array.isArray(opts) && Object.keys(opts).every((key) => Object.hasOwn(keys, key))))
    return opts ?? ({} as T);
  checkOptions(where, opts, Object.keys(keys), captureUserLoc());
  return opts ?? ({} as T);
}

/**
 * keepdim given positionally (`x.sum(1, true)`) or as PyTorch's keyword (`x.sum(1, { keepdim: true })`);
 * anything else is an error rather than a truthy accident.
 */
export type KeepdimArg = boolean | { readonly keepdim?: boolean };

export function keepdimOf(arg: KeepdimArg | undefined, where: string): boolean {
  if (arg === undefined || typeof arg === "boolean") return arg ?? false;
  if (typeof arg !== "object" || arg === null) {
    const loc = captureUserLoc();
    throw new KilnError({
      code: "invalid-argument",
      message: `${where}: keepdim must be a boolean or { keepdim }, got ${JSON.stringify(arg)}`,
      ...(loc ? { loc } : {}),
    });
  }
  const { keepdim } = strictOptions<{ readonly keepdim?: boolean }>(where, arg, { keepdim: true });
  if (keepdim !== undefined && typeof keepdim !== "boolean") {
    const loc = captureUserLoc();
    throw new KilnError({ code: "invalid-argument", message: `${where}: keepdim must be a boolean, got ${JSON.stringify(keepdim)}`, ...(loc ? { loc } : {}) });
  }
  return keepdim ?? false;
}
