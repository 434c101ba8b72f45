// Test helper: trace a DSL function and evaluate it on the float64 reference interpreter.
// `data[i]` binds to the i-th spec (positional) — the graph's own input names don't matter.

import { hostArrayFrom } from "../../compiler/ir/dtype.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { traceFunction, type InputSpec } from "../../dsl/trace.ts";

export interface RefResult {
  readonly graph: Graph;
  /** Outputs in the order the function returned them (flattened). */
  readonly outputs: HostTensor[];
  /** The first output's data as a plain array. */
  readonly values: number[];
  readonly shape: readonly number[];
}

export function runRef(
  fn: (...args: never[]) => unknown,
  specs: readonly InputSpec[],
  data: readonly ArrayLike<number>[],
  extra: Record<string, HostTensor> = {},
): RefResult {
  const { graph } = traceFunction("test", fn, specs);
  const inputs: Record<string, HostTensor> = { ...extra };
  specs.forEach((s, i) => {
    const node = nodeOf(graph, graph.inputs[i]!);
    if (node.op !== "input") throw new Error("runRef: input order");
    const raw = data[i] ?? [];
    const typed = hostArrayFrom(s.dtype, raw);
    inputs[node.name] = { dtype: s.dtype, shape: s.shape, data: typed };
  });
  const byName = interpret(graph, inputs);
  const outputs = graph.outputs.map((o) => byName[o.name]!);
  return { graph, outputs, values: Array.from(outputs[0]!.data), shape: outputs[0]!.shape };
}

/** Max |a-b| check with a readable failure. */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-9, rtol = 1e-9): void {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} ≠ expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) ? !Number.isNaN(a) : !(Math.abs(a - e) <= atol + rtol * Math.abs(e) || a === e))
      throw new Error(
        `mismatch at flat index ${i}: got ${a}, expected ${e} (atol ${atol}, rtol ${rtol})\n got: ${Array.from(actual).slice(0, 16).join(", ")}\n exp: ${Array.from(expected).slice(0, 16).join(", ")}`,
      );
  }
}
