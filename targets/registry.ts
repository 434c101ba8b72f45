// The target registry: every target by name, built in or registered (registerTarget). The DSL
// (k.compile) and the CLI resolve targets here; the backends that build artifacts, by name,
// are targets/backends.ts (the CLI, the artifact writer, the loader generator).
// The js, wasm and cpu targets load with the registry; webgpu, cuda and the reference
// interpreter are entries from targets/deferred-targets.ts whose factory imports the target's
// code on first use, so `import "kiln"` for a CPU program loads none of it (issue 14: cold start).

import { KilnError } from "../compiler/util/errors.ts";
import { checkOptions } from "../compiler/util/options.ts";
import type { TargetDevice, TargetEntry, TargetFactory } from "./backend.ts";
import { cpuBackend, cpuTarget } from "./cpu.ts";
import { cudaInfo, referenceInfo, webGpuInfo } from "./deferred-targets.ts";
import { jsBackend } from "./js.ts";
import { prestartWasmWorkers, wasmBackend } from "./wasm.ts";

/**
 * The factory of a target whose code `load` imports on first use. A load that fails (a chunk
 * missing from an installed package, a browser's failed fetch of a dynamically imported
 * module) is a KilnError naming the target (k.compile adds the call's line), not the loader's
 * own error from in here; the target's factory's errors pass through.
 */
export function deferredFactory(name: string, load: () => Promise<{ readonly factory: TargetFactory }>): TargetFactory {
  return async (graph, opts, shared) => {
    let target: { readonly factory: TargetFactory };
    try {
      target = await load();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new KilnError({ code: "target-unavailable", message: `target '${name}': its code failed to load (${why})` });
    }
    return target.factory(graph, opts, shared);
  };
}

const webGpuTarget: TargetEntry = { ...webGpuInfo, factory: deferredFactory("webgpu", async () => (await import("./webgpu.ts")).webGpuBackend) };
const cudaTarget: TargetEntry = { ...cudaInfo, factory: deferredFactory("cuda", async () => (await import("./cuda.ts")).cudaBackend) };
const referenceTarget: TargetEntry = { ...referenceInfo, factory: deferredFactory("reference", async () => (await import("./reference.ts")).referenceTarget) };

/**
 * What a deferred target's first compile will wait for, started without waiting: its code
 * (the dynamic import its factory does) and, for webgpu, the device (Dawn's Vulkan instance
 * and lavapipe). Both run mostly off the main thread (Node's module loader, the driver), so
 * k.compile starts them before tracing and the three overlap. The wasm (and cpu) target's
 * worker threads start here too, synchronously, to boot while the program is traced.
 */
type Preparer = (opts: Readonly<Record<string, unknown>>) => Promise<unknown> | undefined;
const preparers: ReadonlyMap<string, Preparer> = new Map<string, Preparer>([
  ["webgpu", () => Promise.all([import("./webgpu.ts"), webGpuInfo.available()])],
  ["cuda", () => import("./cuda.ts")],
  ["reference", () => import("./reference.ts")],
  // The wasm worker threads boot while the program is traced (targets/wasm.ts).
  [
    "wasm",
    (opts) => {
      prestartWasmWorkers(opts);
      return undefined;
    },
  ],
  [
    "cpu",
    (opts) => {
      if (cpuBackend() === wasmBackend) prestartWasmWorkers(opts);
      return undefined;
    },
  ],
]);

/**
 * Starts what target `name` needs before the compile traces (preparers), if it is a built-in
 * one: a deferred target's code and device, the wasm target's worker threads. `opts`: the
 * compile's options. Never throws (the compile reports any failure).
 */
export function prepareTarget(name: string, opts: Readonly<Record<string, unknown>> = {}): void {
  const prepare = registry.has(name) && registry.get(name) === builtIn.get(name) ? preparers.get(name) : undefined;
  try {
    prepare?.(opts)?.catch(() => undefined);
  } catch {
    // The compile meets the same failure where it can report it.
  }
}

const registry = new Map<string, TargetEntry>();
for (const t of [referenceTarget, jsBackend, webGpuTarget, wasmBackend, cpuTarget, cudaTarget] as readonly TargetEntry[]) registry.set(t.name, t);
/** The built-in entries: a name registerTarget has taken over is not prepared. */
const builtIn: ReadonlyMap<string, TargetEntry> = new Map(registry);

export function registerTarget(
  name: string,
  factory: TargetFactory,
  info: Omit<TargetEntry, "name" | "factory" | "priority"> & { priority?: number } = {},
): void {
  checkOptions("registerTarget", info, ["available", "auto", "device", "whyUnavailable", "description", "options", "alias", "priority"]);
  registry.set(name, { ...info, name, factory, priority: info.priority ?? 0 });
}

export function registeredTargets(): string[] {
  return [...registry.keys()];
}

/** Names of the registered targets that can run on this machine, best first. */
export async function availableTargets(): Promise<string[]> {
  const usable: TargetEntry[] = [];
  for (const t of registry.values()) if (!t.alias && (!t.available || (await t.available()))) usable.push(t);
  return usable.sort((a, b) => b.priority - a.priority).map((t) => t.name);
}

/** The device `name` runs on here (the WebGPU adapter, and whether it is a software one); undefined when it has none to describe or no device is present. */
export async function targetDevice(name: string): Promise<TargetDevice | undefined> {
  const t = registry.get(name);
  if (!t) throw new KilnError({ code: "invalid-argument", message: `k.targetDevice: unknown target '${name}' (targets: ${[...registry.keys()].join(", ")})` });
  return t.device?.();
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
export async function resolveTarget(name: string): Promise<TargetEntry> {
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
