// Tracing: a Tensor is a handle to a value in the graph being built. Running the user's
// function on input handles records every op into one GraphBuilder; nothing is computed.

import { nodeOf } from "../compiler/ir/graph.ts";
import type { Graph, GraphOutput, TensorType } from "../compiler/ir/types.ts";
import type { DType } from "../compiler/ir/dtype.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { KilnError, type SourceLoc } from "../compiler/util/errors.ts";
import { Tensor, Trace } from "./tensor.ts";
// Installs the op methods (x.add, x.sum, …) on Tensor: every traced tensor comes from here.
import "./tensor-methods.ts";
import { captureUserLoc } from "./loc.ts";
import { indexChecksOf, type ComputedIndex, type IndexCheck } from "./index-checks.ts";

let active: Trace[] = [];

export function currentTrace(): Trace | undefined {
  return active[active.length - 1];
}

export function requireTrace(what: string): Trace {
  const t = currentTrace();
  if (!t)
    throw new KilnError({
      code: "invalid-argument",
      message: `${what} needs a traced context: call it inside a function given to k.compile/k.program/k.grad`,
      ...locPart(captureUserLoc()),
    });
  return t;
}

export function withTrace<T>(trace: Trace, fn: () => T): T {
  active.push(trace);
  try {
    return fn();
  } finally {
    active = active.filter((t) => t !== trace);
  }
}

export function locPart(loc: SourceLoc | undefined): { loc?: SourceLoc } {
  return loc ? { loc } : {};
}

/** An input spec: what `k.f32([128, 784])` returns. */
export interface InputSpec {
  readonly kind: "input-spec";
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export type Specs = readonly InputSpec[] | { readonly [name: string]: InputSpec };

export const isInputSpec = (x: unknown): x is InputSpec => typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "input-spec";

function checkShape(shape: readonly number[], what: string): readonly number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new KilnError({
      code: "invalid-argument",
      message: `${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
      ...locPart(captureUserLoc()),
    });
  return Object.freeze([...shape]);
}

export const f32 = (shape: readonly number[] = []): InputSpec => ({ kind: "input-spec", dtype: "f32", shape: checkShape(shape, "k.f32") });
export const i32 = (shape: readonly number[] = []): InputSpec => ({ kind: "input-spec", dtype: "i32", shape: checkShape(shape, "k.i32") });
export const bool = (shape: readonly number[] = []): InputSpec => ({ kind: "input-spec", dtype: "bool", shape: checkShape(shape, "k.bool") });

/** A function's outputs: tensors in arrays and records, nested. */
export type TensorTree = Tensor | readonly TensorTree[] | { readonly [key: string]: TensorTree };

/** Flattens an output tree into named leaves ("loss", "0", "params.fc1.weight"); a lone tensor is "out". */
export function flattenTree(tree: unknown, prefix = ""): { name: string; tensor: Tensor }[] {
  if (tree instanceof Tensor) return [{ name: prefix === "" ? "out" : prefix, tensor: tree }];
  const join = (k: string) => (prefix === "" ? k : `${prefix}.${k}`);
  if (Array.isArray(tree)) return tree.flatMap((t, i) => flattenTree(t, join(String(i))));
  if (typeof tree === "object" && tree !== null) return Object.entries(tree).flatMap(([k, v]) => flattenTree(v, join(k)));
  throw new KilnError({ code: "invalid-argument", message: `a traced function must return tensors (in arrays or records), found ${typeof tree}` });
}

/** Parameter names of a function, for readable graph inputs; falls back to arg0, arg1, … */
export function parameterNames(fn: (...args: never[]) => unknown, count: number): string[] {
  const src = fn.toString();
  const m = /^(?:async\s+)?(?:function\b[^(]*)?\(([^)]*)\)/.exec(src) ?? /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  const raw = m
    ? m[1]!.split(",").map((p) =>
        p
          .trim()
          .replace(/[:=].*$/s, "")
          .trim(),
      )
    : [];
  return Array.from({ length: count }, (_, i) => {
    const n = raw[i];
    return n && /^[A-Za-z_$][\w$]*$/.test(n) ? n : `arg${i}`;
  });
}

export interface TraceResult {
  readonly graph: Graph;
  /** State inputs (parameters, optimizer state) by input name, with their initial values. */
  readonly state: ReadonlyMap<string, () => HostTensor>;
  /** How many of graph.outputs the traced function returned; state updates follow them. */
  readonly userOutputCount: number;
  /** Index inputs exe.run range-checks before each run (class ids, gather/embedding indices). */
  readonly indexChecks: readonly IndexCheck[];
  /** Indices the graph computes (not straight from an input): checked after a run in checkNumerics mode. */
  readonly computedIndices: readonly ComputedIndex[];
  /** Rebuilds the output structure from a flat list of per-output values. */
  readonly unflatten: <T>(values: readonly T[]) => unknown;
}

/**
 * Traces `fn` on inputs described by `specs` (array: positional arguments; record: one
 * object argument) into a graph named `name`.
 */
export function traceFunction(name: string, fn: (...args: never[]) => unknown, specs: Specs, inputLoc?: SourceLoc): TraceResult {
  const trace = new Trace(name);
  return withTrace(trace, () => {
    // Inputs carry `inputLoc` (a k.program's definition line) or else the caller's line.
    const loc = inputLoc ?? captureUserLoc();
    let args: unknown[];
    if (Array.isArray(specs)) {
      const names = parameterNames(fn, specs.length);
      args = (specs as readonly InputSpec[]).map((s, i) => {
        if (!isInputSpec(s))
          throw new KilnError({ code: "invalid-argument", message: `spec ${i} is not an input spec (use k.f32/k.i32/k.bool)`, ...locPart(loc) });
        return new Tensor(trace, trace.builder.input(names[i]!, { dtype: s.dtype, shape: s.shape }, loc));
      });
    } else {
      const record: Record<string, Tensor> = {};
      for (const [key, s] of Object.entries(specs as Record<string, InputSpec>)) {
        if (!isInputSpec(s))
          throw new KilnError({ code: "invalid-argument", message: `spec '${key}' is not an input spec (use k.f32/k.i32/k.bool)`, ...locPart(loc) });
        record[key] = new Tensor(trace, trace.builder.input(key, { dtype: s.dtype, shape: s.shape }, loc));
      }
      args = [record];
    }
    const result = (fn as (...a: unknown[]) => unknown)(...args);
    const leaves = flattenTree(result);
    for (const l of leaves)
      if (l.tensor.trace !== trace) throw new KilnError({ code: "invalid-argument", message: `output '${l.name}' comes from another traced function` });
    const outputs: GraphOutput[] = leaves.map((l) => ({ name: l.name, value: l.tensor.id }));
    for (const [stateName, value] of trace.stateUpdates) {
      if (outputs.some((o) => o.name === stateName))
        throw new KilnError({ code: "invalid-argument", message: `output '${stateName}' collides with the name of a state update` });
      outputs.push({ name: stateName, value: value.id, aliases: stateName });
    }
    const graph = trace.builder.build(outputs);
    const unflatten = <T>(values: readonly T[]): unknown => rebuild(result, values, { i: 0 });
    const state = new Map([...trace.state].map(([n, s]) => [n, s.init]));
    const userInputs = new Set(
      graph.inputs.slice(0, Array.isArray(specs) ? specs.length : Object.keys(specs).length).flatMap((id) => {
        const n = nodeOf(graph, id);
        return n.op === "input" ? [n.name] : [];
      }),
    );
    const { fromInputs: indexChecks, computed: computedIndices } = indexChecksOf(graph, trace.indexUses, userInputs);
    return { graph, unflatten, state, userOutputCount: leaves.length, indexChecks, computedIndices };
  });
}

function rebuild<T>(tree: unknown, values: readonly T[], cursor: { i: number }): unknown {
  if (tree instanceof Tensor) return values[cursor.i++];
  if (Array.isArray(tree)) return tree.map((t) => rebuild(t, values, cursor));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(tree as object)) out[k] = rebuild(v, values, cursor);
  return out;
}

export type { TensorType };
export { Trace }; // its home is tensor.ts (beside Tensor); re-exported for the callers that import it from here
