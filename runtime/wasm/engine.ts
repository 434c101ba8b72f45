// The wasm engine's optional features, set up once per process before the first kernel module
// compiles. On Node, V8 flags go in through `v8.setFlagsFromString` (reached synchronously with
// `process.getBuiltinModule`, so a browser bundle imports nothing from node:):
//   --experimental-wasm-relaxed-simd  Node 20's V8 ships relaxed SIMD behind this flag (Node 22
//                                     and browsers have it on); kernels then use f32x4.relaxed_madd
//   --no-liftoff                      compile every kernel with the optimizing tier up front: the
//                                     baseline tier runs big kernels several times slower until
//                                     V8 tiers them up, which made a CNN's first step ~7× a later one
//   --no-wasm-lazy-compilation        compile every function when the module compiles (async: on
//                                     V8's background threads, while the runner is set up) rather
//                                     than at its first call, on the thread that calls it: Node 20's
//                                     V8 compiles lazily by default, which put the kernels' optimizing
//                                     compile on the main thread in the first run (an MLP step's
//                                     first run: ~20 -> ~11 ms of main-thread CPU). Set here, after
//                                     Node's own start, so Node's internal wasm stays lazy
// Flags are process-wide (the user's own wasm compiled later in the process gets them too), so a
// process that names --liftoff/--no-liftoff or --wasm-lazy-compilation/--no-wasm-lazy-compilation
// itself (node's arguments or NODE_OPTIONS) keeps its choice: Kiln leaves that flag alone.
// Workers started later see the flags; the pool sets them in its workers
// too (a worker may be the first to compile in some hosts). Whether relaxed SIMD works is
// feature-detected with `WebAssembly.validate`, never assumed from the engine's version.

interface V8Flags {
  setFlagsFromString(flags: string): void;
}

/** The V8 flags the wasm runtime sets (also spelled out in the worker source of pool.ts). */
export const WASM_ENGINE_FLAGS = ["--experimental-wasm-relaxed-simd", "--no-liftoff", "--no-wasm-lazy-compilation"] as const;

let prepared = false;

/**
 * V8 checks the flags a code cache was made with: once any flag differs from the defaults,
 * Node's own modules compile from source instead of its built-in code cache. A Node worker
 * boots ~50 internal modules, so one started after Kiln set a flag took ~42 ms of CPU instead
 * of ~18 (measured on this 2-core VM). Workers booted ahead of a compile (pool.ts,
 * prestartWorkersNow) therefore share a gate, [workers booted, 1 once the flags are set]: the
 * last of them to boot sets the flags (the wasm ones and the JavaScript tier-up budget,
 * compiler/util/js-tiering.ts, which defers its own while they boot), and the main thread sets
 * them itself only where it needs them before that (prepareWasmEngine).
 */
let bootGate: Int32Array | undefined;

/** Where the process-wide flags stand: "booting" (prestarted workers will set them), "set" (they did), or "none" (no gate: set them yourself). */
export type FlagGate = "booting" | "set" | "none";

/** Called by pool.ts as it boots workers ahead of a compile with `gate` (see bootGate). */
export function setBootGate(gate: Int32Array): void {
  if (!prepared) bootGate = gate;
}

/** Whether the prestarted workers set the flags (then nothing on this thread sets them again). */
let setByWorkers = false;

export function flagGate(): FlagGate {
  if (!bootGate) return setByWorkers ? "set" : "none";
  if (Atomics.load(bootGate, 1) !== 1) return "booting";
  bootGate = undefined;
  setByWorkers = true;
  return "set";
}

export interface EngineProcess {
  readonly env?: Record<string, string | undefined>;
  readonly execArgv?: readonly string[];
}

/**
 * The flags of WASM_ENGINE_FLAGS Kiln sets in this process: all but those the process names
 * itself (either polarity, in its arguments or NODE_OPTIONS), and `--no-liftoff` not with
 * `KILN_WASM_LIFTOFF=1` (V8's baseline tier kept, for measuring the difference).
 */
export function wasmEngineFlags(proc: EngineProcess | undefined): string[] {
  const given = [...(proc?.execArgv ?? []), ...(proc?.env?.["NODE_OPTIONS"] ?? "").split(/\s+/)];
  // `--no-wasm-lazy-compilation` names `wasm-lazy-compilation`; V8 takes - and _ alike.
  const base = (flag: string): string =>
    flag
      .replace(/^--(no-)?/, "")
      .split("=")[0]!
      .replaceAll("_", "-");
  const named = new Set(given.filter((a) => a.startsWith("--")).map(base));
  return WASM_ENGINE_FLAGS.filter((flag) => {
    if (flag === "--no-liftoff" && proc?.env?.["KILN_WASM_LIFTOFF"] === "1") return false;
    return flag === "--experimental-wasm-relaxed-simd" || !named.has(base(flag));
  });
}

/**
 * Sets the engine flags once (Node only; a no-op elsewhere): wasmEngineFlags's, unless the
 * prestarted workers have set them (flagGate). Set here while they still boot, they cost those
 * workers Node's code cache; the gate then opens for the tier-up budget too.
 */
export function prepareWasmEngine(): void {
  if (prepared) return;
  prepared = true;
  // Past this point the flags are set, by the workers or below: the gate is open for js-tiering too.
  const gate = flagGate();
  bootGate = undefined;
  if (gate === "set") return;
  const proc = (globalThis as { process?: EngineProcess & { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = proc?.getBuiltinModule?.("node:v8") as V8Flags | undefined;
  if (!v8) return;
  for (const flag of wasmEngineFlags(proc)) v8.setFlagsFromString(flag);
}

/**
 * A module with one function `(v128, v128, v128) → v128` computing f32x4.relaxed_madd: valid
 * exactly where the engine implements relaxed SIMD.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x08,
  0x01,
  0x60,
  0x03,
  0x7b,
  0x7b,
  0x7b,
  0x01,
  0x7b, // type: (v128 v128 v128) → v128
  0x03,
  0x02,
  0x01,
  0x00, // one function of type 0
  0x0a,
  0x0d,
  0x01,
  0x0b,
  0x00,
  0x20,
  0x00,
  0x20,
  0x01,
  0x20,
  0x02,
  0xfd,
  0x85,
  0x02,
  0x0b, // local.get 0 1 2; f32x4.relaxed_madd
]);

let relaxed: boolean | undefined;

/** Whether this engine validates relaxed-SIMD instructions (after prepareWasmEngine's flags). */
export function relaxedSimdAvailable(): boolean {
  if (relaxed === undefined) {
    prepareWasmEngine();
    relaxed = typeof WebAssembly !== "undefined" && WebAssembly.validate(RELAXED_PROBE);
  }
  return relaxed;
}
