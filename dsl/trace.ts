// Tracing: a Tensor is a handle to a value in the graph being built. Running the user's
// function on input handles records every op into one GraphBuilder; nothing is computed.

import { nodeOf } from "../compiler/ir/graph.ts";
import type { Graph, GraphOutput, TensorType } from "../compiler/ir/types.ts";
import type { DType } from "../compiler/ir/dtype.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import { KilnError, type SourceLoc } from "../compiler/util/errors.ts";
import { prepareJsTiering } from "../compiler/util/js-tiering.ts";
import { Tensor, Trace } from "./tensor.ts";
// Installs the op methods (x.add, x.sum, …) on Tensor: every traced tensor comes from here.
import "./tensor-methods.ts";
import { captureUserLoc } from "./loc.ts";
import { DEFAULT_SYMBOL_MAX } from "../compiler/ir/symbolic.ts";
import { strictOptions } from "./options.ts";
import { indexChecksOf, type ComputedIndex, type IndexCheck } from "./index-checks.ts";
import type { HyperDecl } from "./hyper.ts";

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

/** An input spec: what `k.f32([128, 784])` or `k.f32(["batch", 784])` returns. */
export interface InputSpec {
  readonly kind: "input-spec";
  readonly dtype: DType;
  /** The shape; a symbolic leading axis holds its max (declared, or DEFAULT_SYMBOL_MAX until the trace settles it). */
  readonly shape: readonly number[];
  /** A leading axis given by name: any size 1..max at run time (compiler/ir/symbolic.ts). */
  readonly symbolic?: { readonly name: string; readonly max?: number };
}

/** Options of k.f32/k.i32/k.bool: `max` bounds a symbolic dimension (`{ max: { batch: 512 } }`). */
export interface SpecOptions {
  readonly max?: Readonly<Record<string, number>>;
}

export type Specs = readonly InputSpec[] | { readonly [name: string]: InputSpec };

export const isInputSpec = (x: unknown): x is InputSpec => typeof x === "object" && x !== null && (x as { kind?: unknown }).kind === "input-spec";

const SYMBOL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function specOf(dtype: DType, shape: readonly (number | string)[], opts: SpecOptions | undefined, what: string): InputSpec {
  const bad = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message: `${what}: ${message}`, ...locPart(captureUserLoc()) });
  };
  if (!Array.isArray(shape) || !shape.every((d) => (Number.isInteger(d) && (d as number) >= 0) || typeof d === "string"))
    bad(`shape must be an array of non-negative integers (the leading one may be a name, e.g. ["batch", 784]), got ${JSON.stringify(shape)}`);
  strictOptions(what, opts ?? {}, { max: true });
  const names = shape.flatMap((d, i) => (typeof d === "string" ? [[d, i] as const] : []));
  if (names.length === 0) {
    if (opts?.max !== undefined) bad(`'max' bounds a symbolic dimension, but the shape ${JSON.stringify(shape)} names none`);
    return { kind: "input-spec", dtype, shape: Object.freeze([...(shape as number[])]) };
  }
  const [name, axis] = names[0]!;
  if (names.length > 1 || axis !== 0) bad(`only the leading dimension may be symbolic, got ${JSON.stringify(shape)}`);
  if (!SYMBOL_NAME.test(name)) bad(`a symbolic dimension needs an identifier name, got '${name}'`);
  const maxes = opts?.max ?? {};
  for (const key of Object.keys(maxes)) if (key !== name) bad(`'max' names '${key}', but the symbolic dimension is '${name}'`);
  const max = maxes[name];
  if (max !== undefined && !(Number.isInteger(max) && max >= 1)) bad(`max.${name} must be a positive integer, got ${String(max)}`);
  const rest = shape.slice(1) as number[];
  return {
    kind: "input-spec",
    dtype,
    shape: Object.freeze([max ?? DEFAULT_SYMBOL_MAX, ...rest]),
    symbolic: max === undefined ? { name } : { name, max },
  };
}

export const f32 = (shape: readonly (number | string)[] = [], opts?: SpecOptions): InputSpec => specOf("f32", shape, opts, "k.f32");
/** An f16 (IEEE binary16) input: values round to nearest even; computed per op as PyTorch's float16. */
export const f16 = (shape: readonly (number | string)[] = [], opts?: SpecOptions): InputSpec => specOf("f16", shape, opts, "k.f16");
/** A bf16 (bfloat16) input. */
export const bf16 = (shape: readonly (number | string)[] = [], opts?: SpecOptions): InputSpec => specOf("bf16", shape, opts, "k.bf16");
export const i32 = (shape: readonly (number | string)[] = [], opts?: SpecOptions): InputSpec => specOf("i32", shape, opts, "k.i32");
export const bool = (shape: readonly (number | string)[] = [], opts?: SpecOptions): InputSpec => specOf("bool", shape, opts, "k.bool");

/** The one symbolic dimension the specs name, with its max (declared on any spec, all agreeing, or the default). */
function symbolOfSpecs(specs: readonly InputSpec[], loc: SourceLoc | undefined): { name: string; max: number } | undefined {
  const named = specs.filter((s) => s.symbolic !== undefined);
  if (named.length === 0) return undefined;
  const fail = (message: string): never => {
    throw new KilnError({ code: "invalid-argument", message, ...locPart(loc) });
  };
  const names = [...new Set(named.map((s) => s.symbolic!.name))];
  if (names.length > 1) fail(`one symbolic dimension per program: the specs name ${names.map((n) => `'${n}'`).join(" and ")}`);
  const maxes = [...new Set(named.flatMap((s) => (s.symbolic!.max === undefined ? [] : [s.symbolic!.max])))];
  if (maxes.length > 1) fail(`symbolic dimension '${names[0]}' is given different maxima: ${maxes.join(" and ")}`);
  return { name: names[0]!, max: maxes[0] ?? DEFAULT_SYMBOL_MAX };
}

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
  /** Runtime hyperparameters, in the order of the `hyper` input's elements (dsl/hyper.ts); empty without a k.trainStep. */
  readonly hyper: readonly HyperDecl[];
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
  prepareJsTiering();
  const trace = new Trace(name);
  return withTrace(trace, () => {
    // Inputs carry `inputLoc` (a k.program's definition line) or else the caller's line.
    const loc = inputLoc ?? captureUserLoc();
    const specList = (Array.isArray(specs) ? specs : Object.values(specs)) as readonly InputSpec[];
    const symbol = symbolOfSpecs(specList.filter(isInputSpec), loc);
    // A symbolic leading axis holds the symbol's max; the input node records which axis it is.
    const inputOf = (name: string, s: InputSpec): Tensor => {
      if (!s.symbolic) return new Tensor(trace, trace.builder.input(name, { dtype: s.dtype, shape: s.shape }, loc));
      const shape = [symbol!.max, ...s.shape.slice(1)];
      return new Tensor(trace, trace.builder.add({ op: "input", name, symbolic: { axis: 0, scale: 1 }, loc }, { dtype: s.dtype, shape }));
    };
    let args: unknown[];
    if (Array.isArray(specs)) {
      const names = parameterNames(fn, specs.length);
      args = (specs as readonly InputSpec[]).map((s, i) => {
        if (!isInputSpec(s))
          throw new KilnError({ code: "invalid-argument", message: `spec ${i} is not an input spec (use k.f32/k.i32/k.bool)`, ...locPart(loc) });
        return inputOf(names[i]!, s);
      });
    } else {
      const record: Record<string, Tensor> = {};
      for (const [key, s] of Object.entries(specs as Record<string, InputSpec>)) {
        if (!isInputSpec(s))
          throw new KilnError({ code: "invalid-argument", message: `spec '${key}' is not an input spec (use k.f32/k.i32/k.bool)`, ...locPart(loc) });
        record[key] = inputOf(key, s);
      }
      args = [record];
    }
    if (symbol) {
      const taken = trace.builder.build([]).nodes.some((n) => n.op === "input" && n.name === symbol.name);
      if (taken)
        throw new KilnError({
          code: "invalid-argument",
          message: `an input is named '${symbol.name}' like the symbolic dimension: rename one`,
          ...locPart(loc),
        });
      const size = trace.builder.add({ op: "input", name: symbol.name, dimMax: symbol.max, loc }, { dtype: "i32", shape: [] });
      trace.symbol = { ...symbol, size };
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
    return { graph, unflatten, state, hyper: trace.hyper, userOutputCount: leaves.length, indexChecks, computedIndices };
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
