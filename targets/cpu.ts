// "cpu": another name for the fastest CPU backend this engine runs — wasm (SIMD, threads)
// where it works, else js. Resolvable by name; left out of availableTargets().

import type { TargetEntry } from "./backend.ts";
import { jsBackend, jsOptionKeys } from "./js.ts";
import { wasmAvailable, wasmBackend, wasmOptionKeys } from "./wasm.ts";

/** The backend "cpu" stands for on this engine. */
export const cpuBackend = (): typeof jsBackend | typeof wasmBackend => (wasmAvailable() ? wasmBackend : jsBackend);

export const cpuTarget: TargetEntry = {
  name: "cpu",
  description: "the fastest CPU backend available here: wasm when it runs, else js",
  priority: -1,
  alias: true,
  options: [...new Set([...wasmOptionKeys, ...jsOptionKeys])],
  factory: (graph, opts) => cpuBackend().factory(graph, opts),
};
