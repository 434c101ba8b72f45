// The built-in backends that build artifacts, by target name: what the CLI (compile, run, dump,
// view), the artifact folder writer and the bench look up to compile or run an artifact of a
// given target. Imports every backend's code — WGSL and CUDA renderers included — so the
// library's cold path (k.compile through targets/registry.ts) never imports this module
// statically; dsl/dump.ts reaches it with a dynamic import.

import { KilnError } from "../compiler/util/errors.ts";
import type { ArtifactTarget } from "../runtime/artifact/format.ts";
import type { Backend } from "./backend.ts";
import { cudaBackend } from "./cuda.ts";
import { jsBackend } from "./js.ts";
import { wasmBackend } from "./wasm.ts";
import { webGpuBackend } from "./webgpu.ts";

/** Any built-in backend (its options type erased: callers pass the caller's record through). */
export type AnyBackend = Backend<ArtifactTarget, unknown>;

/** The backends that build artifacts, by target name. */
const builtInBackends: { readonly [T in ArtifactTarget]: Backend<T, unknown> } = {
  js: jsBackend,
  wasm: wasmBackend,
  webgpu: webGpuBackend,
  cuda: cudaBackend,
};

/** The backend of an artifact target (the manifest's `target`), or a usage error naming the known ones. */
export function backendOf(target: string): AnyBackend {
  const backend = (builtInBackends as Readonly<Record<string, AnyBackend>>)[target];
  if (!backend)
    throw new KilnError({ code: "unsupported", message: `no backend builds '${target}' artifacts (targets: ${Object.keys(builtInBackends).join(", ")})` });
  return backend;
}
