// `kiln view --profile N`: runs the program N steps under exe.profile (per-kernel records, on
// every target) and reduces what it measured to the page's overlay (ViewProfile: calls and
// total milliseconds per rendered kernel, what clocked them, host time). Inputs are all zero:
// valid indices for integer inputs, and a timing does not depend on the values.

import { nodeOf } from "../compiler/ir/graph.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { KilnError } from "../compiler/util/errors.ts";
import { compile } from "../dsl/compile.ts";
import type { Program } from "../dsl/program.ts";
import type { ViewProfile } from "./view-data.ts";

/** What the overlay reads of exe.profile's result: per artifact kernel, calls and total ms; the clock; host time per step. */
export interface ProfileLike {
  readonly kernels: readonly { readonly name: string; readonly calls: number; readonly totalMs: number }[];
  readonly clock?: string;
  readonly host?: { readonly inputMs: number; readonly readbackMs: number; readonly otherMs: number };
}

type Profiler = (inputs: Record<string, unknown>, opts: { readonly steps: number }) => Promise<ProfileLike>;

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

/** Compiles `program` for `target`, profiles `steps` steps and returns the overlay. */
export async function profileForView(program: Program, graph: Graph, name: string, target: string, steps: number): Promise<ViewProfile> {
  const exe = await compile(program, undefined, { target, name });
  const profiler = (exe as unknown as { profile?: Profiler }).profile;
  if (typeof profiler !== "function")
    throw new KilnError({ code: "unsupported", message: `--profile: the '${target}' executable has no profile() in this build of Kiln` });
  const inputs: Record<string, unknown> = {};
  const state = new Set(Object.keys(exe.state()));
  for (const id of graph.inputs) {
    const n = nodeOf(graph, id);
    if (n.op === "input" && !state.has(n.name)) inputs[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data: zeros(n.type.dtype, n.type.shape) };
  }
  return viewProfileOf(await profiler.call(exe, inputs, { steps }), steps);
}

function zeros(dtype: string, shape: readonly number[]): Float32Array | Int32Array | Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return dtype === "i32" ? new Int32Array(n) : dtype === "bool" ? new Uint8Array(n) : new Float32Array(n);
}
