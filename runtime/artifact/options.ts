/**
 * Strict option objects for the runtime's runners (WasmRunOptions, WebGpuRunnerOptions): an
 * unknown key is refused by name, as k.compile refuses one (compiler/util/options.ts; the
 * runtime cannot import the compiler, so this is its own small copy of the rule).
 */

/** Throws naming the first key of `opts` not in `accepted`. */
export function refuseUnknownOptions(where: string, opts: object, accepted: readonly string[]): void {
  for (const key of Object.keys(opts)) if (!accepted.includes(key)) throw new Error(`${where}: unknown option '${key}' (options: ${accepted.join(", ")})`);
}
