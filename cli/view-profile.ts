// `kiln view --profile N`: runs the program N steps under exe.profile (per-kernel records, on
// every target) and reduces what it measured to the page's overlay (ViewProfile: calls and
// total milliseconds per rendered kernel, what clocked them, host time). The inputs are the
// ones `kiln profile` makes (cli/profile.ts): a timing does not depend on the values.

import { compile } from "../dsl/compile.ts";
import type { Program } from "../dsl/program.ts";
import { inputsFor } from "./profile.ts";
import type { ViewProfile } from "./view-data.ts";

/** What the overlay reads of exe.profile's result: per artifact kernel, calls and total ms; the clock; host time per step. */
export interface ProfileLike {
  readonly kernels: readonly { readonly name: string; readonly calls: number; readonly totalMs: number }[];
  readonly clock?: string;
  readonly host?: { readonly inputMs: number; readonly readbackMs: number; readonly otherMs: number };
}

const CLOCKS: Readonly<Record<string, string>> = {
  "device-timestamps": "GPU timestamp queries",
  "host-per-submission": "one submission per kernel, timed on the host",
  host: "host timers around each kernel",
  "cuda-events": "CUDA events",
};

/** The overlay of a profile over `steps` steps. */
export function viewProfileOf(result: ProfileLike, steps: number): ViewProfile {
  const host = result.host;
  return {
    steps,
    kernels: result.kernels.map((r) => ({ name: r.name, calls: r.calls, totalMs: r.totalMs })),
    ...(result.clock !== undefined ? { method: CLOCKS[result.clock] ?? result.clock } : {}),
    ...(host ? { hostMs: (host.inputMs + host.readbackMs + host.otherMs) * steps } : {}),
  };
}

/** Compiles `program` for `target`, profiles `steps` steps (the inputs `kiln profile` uses) and returns the overlay. */
export async function profileForView(program: Program, name: string, target: string, steps: number): Promise<ViewProfile> {
  const exe = await compile(program, undefined, { target, name });
  try {
    // One unprofiled warm-up step (exe.profile's default); the page shows no share of the machine's peaks, so none are measured.
    return viewProfileOf(await exe.profile(inputsFor(program.specs), { steps, peaks: false }), steps);
  } finally {
    await exe.close();
  }
}
