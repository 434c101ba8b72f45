// The target registry: every target by name, built in or registered (registerTarget). The DSL
// (k.compile), the CLI (compile, run, dump), the loader generator and the artifact writer all
// look targets up here, so a new backend is one Backend value added to `builtInBackends`.

import { KilnError } from "../compiler/util/errors.ts";
import { checkOptions } from "../compiler/util/options.ts";
import type { ArtifactTarget } from "../runtime/artifact/format.ts";
import type { Backend, TargetDevice, TargetEntry, TargetFactory } from "./backend.ts";
import { cpuTarget } from "./cpu.ts";
import { cudaBackend } from "./cuda.ts";
import { jsBackend } from "./js.ts";
import { referenceTarget } from "./reference.ts";
import { wasmBackend } from "./wasm.ts";
import { webGpuBackend } from "./webgpu.ts";

/** Any built-in backend (its options type erased: the registry passes the caller's record through). */
export type AnyBackend = Backend<ArtifactTarget, unknown>;

/** The backends that build artifacts, by target name. */
const builtInBackends: { readonly [T in ArtifactTarget]: Backend<T, unknown> } = {
  js: jsBackend,
  wasm: wasmBackend,
  webgpu: webGpuBackend,
  cuda: cudaBackend,
};

const registry = new Map<string, TargetEntry>();
for (const t of [referenceTarget, jsBackend, webGpuBackend, wasmBackend, cpuTarget, cudaBackend] as readonly TargetEntry[]) registry.set(t.name, t);

/** The backend of an artifact target (the manifest's `target`), or a usage error naming the known ones. */
export function backendOf(target: string): AnyBackend {
  const backend = (builtInBackends as Readonly<Record<string, AnyBackend>>)[target];
  if (!backend)
    throw new KilnError({ code: "unsupported", message: `no backend builds '${target}' artifacts (targets: ${Object.keys(builtInBackends).join(", ")})` });
  return backend;
}

/** The built-in backends, in registry order. */
export function backends(): readonly AnyBackend[] {
  return Object.values(builtInBackends) as readonly AnyBackend[];
}

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
