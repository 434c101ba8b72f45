// Random tensors from the IR's counter-based `rng` primitive. Every draw is keyed by the
// graph's i32 `seed` input and a per-graph stream number handed out in trace order, so the
// same program and seed give the same bits on every target, and two draws never coincide.

import { type Tensor, prim } from "./tensor.ts";
import type { Trace } from "./tensor.ts";

/** Uniform f32 values in [0, 1) of `shape`, from the next rng stream of `trace`. */
export function uniform(trace: Trace, shape: readonly number[]): Tensor {
  return prim(trace, { op: "rng", seed: trace.seed(), stream: trace.nextRngStream() }, { dtype: "f32", shape });
}
