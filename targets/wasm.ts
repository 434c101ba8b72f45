// The "wasm" target: WebAssembly SIMD modules over one shared memory (codegen/wasm), run on
// worker threads by runtime/wasm. The fast CPU path: "cpu" picks it where wasm SIMD and
// shared memory work. Contractions are register-blocked with a SIMD lane axis
// (block-contraction) instead of the shared register tiling.

import { KilnError } from "../compiler/util/errors.ts";
import { compileWith, type Compiled, type DriverOptions } from "../compiler/compile.ts";
import type { FuseOptions } from "../compiler/kernel/fusion-plan.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { blockContractionPass } from "../compiler/kernel-passes.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { artifactDTypeBytes, type ArtifactStats, type WasmArtifact } from "../runtime/artifact/format.ts";
// The runtime loads with the target (as js's does): k.compile's first cpu compile imported it
// dynamically, ~4 ms of its main thread for one more trip through Node's module loader.
import * as runtime from "../runtime/wasm/run-artifact.ts";
import type { WasmArtifactRunner, WasmRunOptions, WasmSharedMemory } from "../runtime/wasm/run-artifact.ts";
import { sharedStateRegion, type WasmStateRegion } from "../runtime/artifact/wasm-layout.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import { numel } from "../compiler/util/shape.ts";
import { renderWasmProgram, type RenderSink, type WasmBuildOptions } from "../codegen/wasm/render-program.ts";
import { flagGate, relaxedSimdAvailable } from "../runtime/wasm/engine.ts";
import { prestartWorkersNow } from "../runtime/wasm/pool.ts";
import { jsTieringFlag, setJsTieringGate, type NodeProcess } from "../compiler/util/js-tiering.ts";
import type { Backend, Executor, SharedState } from "./backend.ts";
import { compileTimed } from "../compiler/compile-stats.ts";
import { wasmPeaks } from "./peaks.ts";
import { executorProfiling } from "./profile.ts";
import { driverOptionsOf, fuseOptionsOf, type OptionKeys } from "./options.ts";
import { compiledFromCache, openWasmCache } from "./wasm-cache.ts";

export interface WasmOptions extends FuseOptions {
  /** SIMD regions (default true); false: the scalar lowering only. */
  readonly simd?: boolean;
  /** Register-blocked contractions (default true). */
  readonly block?: boolean;
  /**
   * Fused multiply-add (`f32x4.relaxed_madd`) in contractions (default: where this engine has
   * relaxed SIMD; the artifact then also carries each such module without it, for engines that lack it).
   */
  readonly relaxedSimd?: boolean;
  /** Set by k.compileModel's executors (not a k.compile option): the model's state at fixed addresses (wasm-layout.ts). */
  readonly stateRegion?: WasmStateRegion;
}

export type WasmCompileOptions = WasmOptions & DriverOptions;
export type WasmCompiled = Compiled<WasmArtifact>;

/** The k.compile options the wasm target reads. */
export const wasmOptionKeys = ["verify", "threads", "fuseAttention"] as const satisfies OptionKeys<WasmCompileOptions & WasmRunOptions>;

export const wasmBackend: Backend<"wasm", WasmOptions> = {
  name: "wasm",
  description: "WebAssembly SIMD over one shared memory, split across worker threads (option `threads`)",
  priority: 2,
  available: () => wasmAvailable(),
  options: wasmOptionKeys,
  kernelExtension: "wasm.b64",
  memory: { elementBytes: artifactDTypeBytes },
  // An attention backward's query rows run four per f32x4: their q·k and dO·v written out (q and dO loaded once per row).
  fuseOptions: (opts) => ({ ...fuseOptionsOf(opts), attentionUnrolledFeatures: 64 }),
  kernelPasses: (opts) => (opts.block === false || opts.simd === false ? [] : [blockContractionPass]),
  boundsRows: true,
  render: (program, memory, opts) => {
    const r = renderWasmProgram(program, memory, wasmBuildOptions(opts), true, renderSink);
    return { kernels: r.kernels, ...(r.slotOffsets ? { slotOffsets: r.slotOffsets } : {}), extras: {} };
  },
  // wasm kernels are base64 text of the binary module, as the in-memory artifact holds them.
  artifactFiles: {
    kernelExtension: "wasm.b64",
    // Node runs it on all cores (worker_threads, loaded dynamically); a browser page on one thread,
    // a worker of a cross-origin-isolated page on Web Workers (runtime/wasm/pool.ts).
    loader: {
      modules: ["runtime/wasm/run-artifact.ts"],
      imports: [{ names: ["WasmArtifactRunner"], from: "./runtime/wasm/run-artifact.js" }],
      createRunner: "const runner = await WasmArtifactRunner.create(loaded.artifact);",
    },
  },
  compile: (graph, opts = {}) => compileWasm(graph, opts),
  createRunner: (artifact) => runtime.WasmArtifactRunner.create(artifact),
  factory: (graph, opts, shared) => createWasmExecutor(graph, opts as WasmCompileOptions & WasmRunOptions, shared),
};

/**
 * Where render hands the kernels' memory and each kernel module as it is built: set by
 * createWasmExecutor around its compile (which is synchronous, so no other compile runs
 * meanwhile), to start mapping the memory's pages and the engine's compile of each module at
 * once (runtime/wasm/run-artifact.ts, EarlyModules).
 */
let renderSink: RenderSink | undefined;

function withRenderSink<T>(sink: RenderSink | undefined, f: () => T): T {
  const previous = renderSink;
  renderSink = sink;
  try {
    return f();
  } finally {
    renderSink = previous;
  }
}

/** Codegen options from the target's: FMA only with SIMD, and by default where the engine has relaxed SIMD. */
export function wasmBuildOptions(opts: WasmOptions): WasmBuildOptions {
  const simd = opts.simd !== false;
  return { simd, fma: simd && (opts.relaxedSimd ?? relaxedSimdAvailable()), ...(opts.stateRegion ? { stateRegion: opts.stateRegion } : {}) };
}

export function compileWasm(graph: Graph, opts: WasmCompileOptions = {}): WasmCompiled {
  return compileWith(graph, wasmBackend, opts, driverOptionsOf(opts));
}

export interface WasmExecutor extends Executor {
  readonly stats: ArtifactStats;
  readonly compiled: WasmCompiled;
  readonly artifact: WasmArtifact;
  readonly runner: WasmArtifactRunner;
  close(): Promise<void>;
}

/**
 * With `shared` (k.compileModel's programs), every program runs in one memory with the model's
 * state entries at the same addresses (the state region, laid out once from every program's
 * state: kernels bake their addresses in): the state stays there and switching programs copies
 * nothing. A program that cannot join (a state input outside the region, no pool control block
 * left) keeps its own memory and gets the state through the host.
 */
export async function createWasmExecutor(graph: Graph, opts: WasmCompileOptions & WasmRunOptions = {}, shared?: SharedState): Promise<WasmExecutor> {
  if (opts.threads !== undefined && !(Number.isSafeInteger(opts.threads) && opts.threads >= 1))
    throw new KilnError({ code: "invalid-argument", message: `wasm option threads: must be a whole number ≥ 1, got ${String(opts.threads)}` });
  const runOpts: WasmRunOptions = {
    ...(typeof opts.threads === "number" ? { threads: opts.threads } : {}),
    ...(opts.minParallelWork !== undefined ? { minParallelWork: opts.minParallelWork } : {}),
  };
  const model = shared ? sharedMemory(shared) : undefined;
  const region = model && joinsRegion(graph, shared!, model.region) ? model.region : undefined;
  // The workers boot while the compiler runs (and the first runs need not wait for them: pool.ts).
  await runtime.prestartThreads(runOpts);
  const compileOpts = region ? { ...opts, stateRegion: region } : opts;
  // The codegen options only where the cache needs them: finding whether the engine has
  // relaxed SIMD sets the wasm flags, which the prestarted workers set once booted (engine.ts,
  // bootGate); a compile first needs them at its render, tens of ms later.
  const cache = await openWasmCache(graph, compileOpts, () => wasmBuildOptions(compileOpts));
  // With worker threads the kernels run over a shared memory as rendered: each compiles as it renders, on the prestarted worker.
  const early = (await runtime.runnerThreads(runOpts)) > 1 ? await runtime.EarlyModules.create() : undefined;
  const build = (useHit: boolean) =>
    compileTimed(
      (): WasmCompiled => {
        if (useHit && cache?.artifact) return compiledFromCache(cache.artifact, () => compileWasm(graph, compileOpts), cache.lookupMs);
        const fresh = withRenderSink(early?.sink, () => compileWasm(graph, compileOpts));
        cache?.store(fresh.artifact);
        return fresh;
      },
      // A hit's runner gets the entry as read: a module the engine refuses must fail (and be
      // replaced), not fall back to the portable twin compiled.artifact builds on demand.
      (c) => runtime.WasmArtifactRunner.start(useHit && cache?.artifact ? cache.artifact : c.artifact, runOpts, model?.memory, early),
    );
  let timed: Awaited<ReturnType<typeof build>>;
  try {
    try {
      timed = await build(true);
    } catch (e) {
      if (!cache?.artifact) throw e;
      // A cached entry this engine refuses (a module that does not compile): warn, compile afresh, replace it.
      cache.reject(`the engine refused it (${(e as Error).message})`);
      timed = await build(false);
    }
  } catch (e) {
    await runtime.stopPrestartedThreads();
    throw e;
  }
  const { compiled, runner, compileStats } = timed;
  if (shared) runner.stateInputs = shared.names;
  return {
    ...(shared && runner.sharesState ? { sharedState: shared } : {}),
    compiled,
    compileStats,
    artifact: compiled.artifact,
    runner,
    stats: compiled.artifact.stats,
    run: async (inputs, io) => runner.run(inputs, io) as Record<string, HostTensor>,
    readInputs: async (names) => runner.readInputs(names) as Record<string, HostTensor>,
    readInputsSync: (names) => runner.readInputs(names) as Record<string, HostTensor>,
    get io() {
      return runner.io;
    },
    keep: (name) => runner.keep(name),
    close: () => runner.close(),
    profiling: executorProfiling(`wasm SIMD, ${runner.threads} thread(s)`, compiled, () => wasmPeaks(runner.threads)),
  };
}

// The tier-up budget waits while workers prestarted by prestartWasmWorkers boot (engine.ts: a
// flag set then costs them Node's code cache).
setJsTieringGate(flagGate);

/**
 * k.compile's preparation for this target (targets/registry.ts, prepareTarget), before it
 * traces: the worker threads its runner will take start booting now, synchronously, so they
 * boot on the other cores while the program is traced (the compile's own prestart finds them
 * idle), and on Node's code cache (the last of them sets the V8 flags once booted, the
 * tier-up budget among them). `opts`: the compile's options (their `threads`, when valid).
 */
export function prestartWasmWorkers(opts: { readonly threads?: unknown }): void {
  const threads = typeof opts.threads === "number" && Number.isSafeInteger(opts.threads) && opts.threads >= 1 ? opts.threads : undefined;
  const flag = jsTieringFlag((globalThis as { process?: NodeProcess }).process);
  prestartWorkersNow(threads, flag === undefined ? [] : [flag]);
}

/** Whether this JavaScript engine runs wasm SIMD over a shared memory (what the target needs). */
export function wasmAvailable(): boolean {
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    // (module (func (result v128) v128.const i32x4 0 0 0 0))
    const probe = Uint8Array.from([
      0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
    ]);
    return WebAssembly.validate(probe);
  } catch {
    return false;
  }
}

interface WasmModelState {
  readonly region: WasmStateRegion;
  readonly memory: WasmSharedMemory;
}

/** The state region and memory of a model's programs, laid out by the first executor from every declared entry. */
function sharedMemory(shared: SharedState): WasmModelState {
  let state = shared.memory.get("wasm") as WasmModelState | undefined;
  if (!state) {
    const entries = [...shared.types].map(([name, t]) => [name, numel(t.shape) * artifactDTypeBytes(t.dtype)] as const);
    state = { region: sharedStateRegion(entries), memory: { names: shared.names, resident: new Map(), pools: 0 } };
    shared.memory.set("wasm", state);
  }
  return state;
}

/** Whether every state input of `graph` has its place in the region (all were declared before the first program compiled). */
function joinsRegion(graph: Graph, shared: SharedState, region: WasmStateRegion): boolean {
  return graph.inputs.every((id) => {
    const n = nodeOf(graph, id);
    return n.op !== "input" || !shared.names.has(n.name) || region.offsets[n.name] !== undefined;
  });
}
