/**
 * Strict option objects for the runtime's runners (WasmRunOptions, WebGpuRunnerOptions): an
 * unknown key is refused by name, as k.compile refuses one (compiler/util/options.ts; the
 * runtime cannot import the compiler, so this is its own small copy of the rule).
 */

/** Throws naming the first key of `opts` not in `accepted` (or saying `opts` is not an options object). */
export function refuseUnknownOptions(where: string, opts: object, accepted: readonly string[]): void {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts))
    throw new Error(`${where}: options must be an object, got ${opts === null ? "null" : Array.isArray(opts) ? "an array" : typeof opts}`);
  for (const key of Object.keys(opts)) if (!accepted.includes(key)) throw new Error(`${where}: unknown option '${key}' (options: ${accepted.join(", ")})`);
}
