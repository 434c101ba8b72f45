// `kiln view --profile N`: runs the program N steps under exe.profile (per-kernel records, on
// every target) and reduces what it measured to the page's overlay (ViewProfile: calls and
// total milliseconds per rendered kernel). Inputs are all zero: valid indices for integer
// inputs, and a timing does not depend on the values.

import { KilnError } from "../compiler/util/errors.ts";
import { nodeOf } from "../compiler/ir/graph.ts";
import type { Graph } from "../compiler/ir/types.ts";
import { compile } from "../dsl/compile.ts";
import type { Program } from "../dsl/program.ts";
import type { ViewProfile } from "./view-data.ts";

/** One kernel's record as exe.profile reports it (the fields the page reads). */
interface ProfileRecord {
  readonly name: string;
  readonly calls: number;
  readonly totalMs: number;
}

interface Profiled {
  readonly kernels: readonly ProfileRecord[];
  readonly method?: string;
  readonly hostMs?: number;
}

type Profiler = (inputs: Record<string, unknown>, opts: { readonly steps: number }) => Promise<Profiled>;

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
  const result = await profiler.call(exe, inputs, { steps });
  return {
    steps,
    kernels: result.kernels.map((r) => ({ name: r.name, calls: r.calls, totalMs: r.totalMs })),
    ...(result.method !== undefined ? { method: result.method } : {}),
    ...(result.hostMs !== undefined ? { hostMs: result.hostMs } : {}),
  };
}

function zeros(dtype: string, shape: readonly number[]): Float32Array | Int32Array | Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return dtype === "i32" ? new Int32Array(n) : dtype === "bool" ? new Uint8Array(n) : new Float32Array(n);
}
