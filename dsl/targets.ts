// The target registry: a name ("reference", later "js", "webgpu", "cuda") maps to a factory
// turning a graph into an Executor. k.compile and the CLI look targets up here only, so a
// new backend is one registerTarget call; heavy backends import their runtime lazily inside
// the factory, so `import "kiln"` never loads a GPU binding it does not use.

import { interpret } from "../compiler/ir/interpret.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/util/host-tensor.ts";
import type { CudaCompileOptions } from "../codegen/cuda/compile.ts";
import type { JsCompileOptions } from "../codegen/js/target.ts";
import type { WebGpuTargetOptions } from "../codegen/wgsl/target.ts";
import { checkOptions } from "../compiler/util/options.ts";
import type { KeyTable } from "./options.ts";

/** A compiled graph, ready to run. Inputs and outputs are keyed by graph input/output names. */
export interface Executor {
  /**
   * Runs the graph. With `readback`, a target that keeps state on a device returns only the
   * named outputs; the others (updated parameters, optimizer state) stay where they are.
   */
  run(inputs: Readonly<Record<string, HostTensor>>, opts?: ExecutorRunOptions): Promise<Record<string, HostTensor>>;
  /**
   * Present on targets whose state lives on a device: reads the current device value of the
   * named inputs (the state, after in-place updates). k.compile then reads back only the
   * user's outputs each step and fetches the state on demand (exe.fetchState()).
   */
  readInputs?(names: readonly string[]): Promise<Record<string, HostTensor>>;
  readonly stats?: ExecutorStats;
}

export interface ExecutorRunOptions {
  readonly readback?: readonly string[];
}

/** Counters a target may report per run; each target fills the ones it knows. */
export interface ExecutorStats {
  /** Kernel launches per run. */
  readonly kernels?: number;
  readonly bytesRead?: number;
  readonly bytesWritten?: number;
  /** Bytes of device or host memory a run allocates. */
  readonly peakBytes?: number;
}

/** Options every target sees; targets read the fields they know and ignore the rest. */
export interface TargetOptions {
  readonly [option: string]: unknown;
}

export type TargetFactory = (graph: Graph, opts: TargetOptions) => Executor | Promise<Executor>;

export interface TargetInfo {
  readonly name: string;
  readonly factory: TargetFactory;
  /** Higher wins when the caller asks for "auto". */
  readonly priority: number;
  /** Whether the target can run here (a GPU present, a toolchain installed); absent means always. */
  readonly available?: () => boolean | Promise<boolean>;
  /** Whether "auto" may pick it when available (a software GPU adapter: only by name); absent means yes. */
  readonly auto?: () => boolean | Promise<boolean>;
  /** Why an unavailable target cannot run here (named in the error when it is asked for). */
  readonly whyUnavailable?: () => string | undefined | Promise<string | undefined>;
  readonly description?: string;
  /** The k.compile options this target reads (besides `target` and `name`); any other key is an error. */
  readonly options?: readonly string[];
  /** Another name for the best of several targets ("cpu"): resolvable by name, left out of availableTargets. */
  readonly alias?: boolean;
}

const registry = new Map<string, TargetInfo>();

export function registerTarget(
  name: string,
  factory: TargetFactory,
  info: Omit<TargetInfo, "name" | "factory" | "priority"> & { priority?: number } = {},
): void {
  checkOptions("registerTarget", info, Object.keys({ available: true, auto: true, whyUnavailable: true, description: true, options: true, alias: true, priority: true } satisfies KeyTable<typeof info>));
  registry.set(name, { ...info, name, factory, priority: info.priority ?? 0 });
}

export function registeredTargets(): string[] {
  return [...registry.keys()];
}

/** Names of the registered targets that can run on this machine, best first. */
export async function availableTargets(): Promise<string[]> {
  const usable: TargetInfo[] = [];
  for (const t of registry.values()) if (!t.alias && (!t.available || (await t.available()))) usable.push(t);
  return usable.sort((a, b) => b.priority - a.priority).map((t) => t.name);
}

/**
 * The option keys a target reads: its own list; for "auto", every registered target's (the
 * choice depends on the machine, so an option of any of them is accepted).
 */
export function targetOptionKeys(name: string): readonly string[] {
  if (name === "auto") return [...new Set([...registry.values()].flatMap((t) => t.options ?? []))];
  return registry.get(name)?.options ?? [];
}

/** Targets (other than `name`) that read option `key`: named in the unknown-option error. */
export function targetsReadingOption(key: string, except: string): string[] {
  return [...registry.values()].filter((t) => t.name !== except && (t.options ?? []).includes(key)).map((t) => t.name);
}

/** Resolves "auto" to the best available target and checks that a named one exists. */
export async function resolveTarget(name: string): Promise<TargetInfo> {
  if (name === "auto") {
    let best: string | undefined;
    for (const t of await availableTargets()) {
      const auto = registry.get(t)!.auto;
      if (!auto || (await auto())) {
        best = t;
        break;
      }
    }
    if (best === undefined) throw new KilnError({ code: "target-unavailable", message: "no target is available on this machine" });
    return registry.get(best)!;
  }
  const t = registry.get(name);
  if (!t) throw new KilnError({ code: "invalid-argument", message: `unknown target '${name}' (available: ${["auto", ...registeredTargets()].join(", ")})` });
  if (t.available && !(await t.available())) {
    const reason = t.whyUnavailable ? await t.whyUnavailable() : undefined;
    throw new KilnError({ code: "target-unavailable", message: `target '${name}' is registered but cannot run on this machine${reason ? `: ${reason}` : ""}` });
  }
  return t;
}

// ---- built-in targets (a new backend: one registerTarget call here) ----

// The option keys each factory passes on, checked against the options types so a new field
// cannot be forgotten here (and so rejected by k.compile).
const jsOptions = {
  verify: true, dumpAfter: true, dumpAll: true, dump: true, raw: true, tile: true, horizontal: true, noFusion: true, maxBuffersPerKernel: true,
} as const satisfies KeyTable<JsCompileOptions>;
const jsOptionKeys = Object.keys(jsOptions);
const cudaOptionKeys = Object.keys({ ...jsOptions, reduction: true, symbolPrefix: true } satisfies KeyTable<CudaCompileOptions>);
const webGpuOptionKeys = Object.keys({ verify: true, limits: true, tiledMatmul: true } satisfies KeyTable<WebGpuTargetOptions>);
const wasmOptionKeys = ["verify", "threads"];

registerTarget("reference", (graph) => ({ run: async (inputs) => interpret(graph, inputs) }), {
  priority: 0,
  description: "float64 interpreter of the graph IR: the oracle every target is compared against",
});

registerTarget("js", async (graph, opts) => (await import("../codegen/js/target.ts")).createJsExecutor(graph, opts as import("../codegen/js/target.ts").JsCompileOptions), {
  priority: 1,
  options: jsOptionKeys,
  description: "generated JavaScript over typed arrays: runs anywhere, the simplest backend to read",
});

registerTarget("webgpu", async (graph, opts) => (await import("../codegen/wgsl/target.ts")).createWebGpuExecutor(graph, opts), {
  priority: 2,
  options: webGpuOptionKeys,
  available: async () => (await (await import("../codegen/wgsl/target.ts")).webGpuAdapterKind()) !== "none",
  // A software adapter (lavapipe, SwiftShader) runs only when asked for by name: the CPU backends beat it.
  auto: async () => (await (await import("../codegen/wgsl/target.ts")).webGpuAdapterKind()) === "hardware",
  description: "WGSL on a WebGPU adapter (navigator.gpu in a browser, Dawn in Node)",
});

registerTarget(
  "wasm",
  async (graph, opts) => {
    const { createWasmExecutor } = await import("../codegen/wasm/target.ts");
    const threads = typeof opts["threads"] === "number" ? opts["threads"] : undefined;
    return createWasmExecutor(graph, { verify: opts["verify"] === true, ...(threads !== undefined ? { threads } : {}) });
  },
  {
    priority: 2,
    options: wasmOptionKeys,
    available: async () => (await import("../codegen/wasm/target.ts")).wasmAvailable(),
    description: "WebAssembly SIMD over one shared memory, split across worker threads (option `threads`)",
  },
);

// "cpu": the fastest CPU backend this engine runs — wasm (SIMD, threads) where it works, else js.
registerTarget(
  "cpu",
  async (graph, opts) => {
    const wasm = await (await import("../codegen/wasm/target.ts")).wasmAvailable();
    return registry.get(wasm ? "wasm" : "js")!.factory(graph, opts);
  },
  { priority: -1, alias: true, options: [...new Set([...wasmOptionKeys, ...jsOptionKeys])], description: "the fastest CPU backend available here: wasm when it runs, else js" },
);

// Lazy like every GPU backend: the addon is loaded (and the driver probed) only when asked.
registerTarget("cuda", async (graph, opts) => (await import("../codegen/cuda/target.ts")).createCudaExecutor(graph, opts as import("../codegen/cuda/compile.ts").CudaCompileOptions), {
  priority: 3,
  options: cudaOptionKeys,
  available: async () => (await (await import("../codegen/cuda/target.ts")).cudaUnavailableReason()) === undefined,
  whyUnavailable: async () => (await import("../codegen/cuda/target.ts")).cudaUnavailableReason(),
  description: "CUDA C on an NVIDIA GPU through the driver API (node-addon-api addon; build it with npm run build:cuda)",
});
