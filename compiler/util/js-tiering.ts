// How eagerly V8 optimizes Kiln's own JavaScript while it traces and compiles (Node only).
// A compile runs thousands of the compiler's functions a few times each: V8's default budget
// sends hundreds of them to its optimizing compiler (TurboFan, on a background thread) and
// deoptimizes and re-optimizes many of them as new IR shapes arrive. The first GPT-2-small
// compile in a process spent ~1.3 s of CPU there beside ~0.8 s on the main thread (issue 14):
// on a 2-core machine that background work competes with the compile itself. A budget 4×
// V8's default (bytecode executed before a function is considered for optimization) cuts that
// compile's CPU by ~30 % for ~4 % more main-thread time; the tiers still optimize what stays hot.
// V8 reads the budget whenever it resets a function's counter, so setting it at run time
// (`v8.setFlagsFromString`, as runtime/wasm/engine.ts does for the wasm flags) takes effect at
// once. Process-wide and set once, at the first trace or compile (or by the wasm workers a
// compile starts ahead of its trace, once they have booted: see flagGate); left alone where the
// process names the flag itself (node --interrupt-budget=…, NODE_OPTIONS), or KILN_JS_TIERING=default.
// Reached through globalThis.process, so browser bundles import nothing from node:.

/** The budget Kiln sets: 4 × V8's default of Node 20 (66 KiB of bytecode). */
export const COMPILE_INTERRUPT_BUDGET = 4 * 66 * 1024;

export interface NodeProcess {
  readonly getBuiltinModule?: (id: string) => unknown;
  readonly env?: Record<string, string | undefined>;
  readonly execArgv?: readonly string[];
}

let prepared = false;

/**
 * Where the process-wide V8 flags stand (runtime/wasm/engine.ts's flagGate, registered by
 * targets/wasm.ts, as compiler code does not import the runtime): "booting" while wasm workers
 * started ahead of a compile boot (a flag set now would cost them Node's code cache: the last
 * of them sets this budget with the wasm flags), "set" once they did, "none" otherwise.
 */
let flagGate: () => "booting" | "set" | "none" = () => "none";

export function setJsTieringGate(gate: () => "booting" | "set" | "none"): void {
  flagGate = gate;
}

/** Whether the process chose the budget itself (a flag of its own) or opted out. */
function processDecides(proc: NodeProcess): boolean {
  if (proc.env?.["KILN_JS_TIERING"] === "default") return true;
  const named = (s: string | undefined): boolean => s !== undefined && /interrupt[-_]budget/.test(s);
  return (proc.execArgv ?? []).some(named) || named(proc.env?.["NODE_OPTIONS"]);
}

/** The V8 flag Kiln sets in this process (see the module comment), or undefined where it sets none: not Node, or the process decides. */
export function jsTieringFlag(proc: NodeProcess | undefined): string | undefined {
  if (!proc?.getBuiltinModule || processDecides(proc)) return undefined;
  return `--interrupt-budget=${COMPILE_INTERRUPT_BUDGET}`;
}

/**
 * Sets the compile's tier-up budget once per process; returns the flag it set now, if any.
 * While prestarted wasm workers boot (flagGate) it sets nothing and stays unprepared: they set
 * it, or a later call (the driver's, after the wasm engine's own flags) does.
 */
export function prepareJsTiering(): string | undefined {
  if (prepared) return undefined;
  const gate = flagGate();
  if (gate === "booting") return undefined;
  prepared = true;
  if (gate === "set") return undefined;
  const proc = (globalThis as { process?: NodeProcess }).process;
  const flag = jsTieringFlag(proc);
  const v8 = flag === undefined ? undefined : (proc?.getBuiltinModule?.("node:v8") as { setFlagsFromString?: (flags: string) => void } | undefined);
  if (flag === undefined || !v8?.setFlagsFromString) return undefined;
  v8.setFlagsFromString(flag);
  return flag;
}
