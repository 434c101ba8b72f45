// A symbolic dimension (the batch): which axes of which values have a size only known at run
// time. Shapes in the graph always hold the maximum size (`scale × max`), so every pass, the
// memory plan and every kernel work on the largest program; this analysis says which axes
// are really `scale × n` (n = the value of the graph's size input, an i32[] input named after
// the symbol and marked with `dimMax`). Two consumers need it: the mask pass
// (compiler/passes/mask-symbolic.ts), which makes every reduction or contraction over such an
// axis ignore the entries past n, and the interpreter, which runs the graph at the actual size.
//
// One symbol per graph. Per axis, a value is `symbolic` (a scale), `uniform` (its entries do
// not vary along the axis: broadcasts, constants, size 1, so it combines with a symbolic axis)
// or `fixed` (a real size). What is supported (anything else is a KilnError at the node's
// source line): elementwise ops and broadcasting, reductions and contractions over the axis,
// permutes, reshapes that keep the symbolic axis leading (`[B,T,C]` ↔ `[B*T,C]`,
// `[B,784]` ↔ `[B,1,28,28]`), slices and pads that leave the axis whole, gathers along other axes.

import { KilnError, bug, type SourceLoc } from "../util/errors.ts";
import { formatShape, numel } from "../util/shape.ts";
import { nodeOf } from "./graph.ts";
import { allocHostData, type HostData, type HostTensor } from "./host-tensor.ts";
import { hasBinaryOp, hasUnaryOp, type Graph, type Node, type TensorType, type ValueId } from "./types.ts";

/**
 * A symbolic axis holds `scale × n` entries; see the module comment for `uniform` and `fixed`.
 * `index`: entries vary along the axis but position i holds the same value whatever the
 * axis's length (iota along it, rng along a leading axis): it combines with a symbolic axis.
 */
export type AxisState = number | "uniform" | "index" | "fixed";

export interface SymbolicInfo {
  /** The symbol's name, which is also the name of its size input. */
  readonly name: string;
  readonly max: number;
  /** The size input (i32[]). */
  readonly size: ValueId;
  readonly axes: ReadonlyMap<ValueId, readonly AxisState[]>;
}

/** Default largest size of a symbolic dimension declared without `max`. */
export const DEFAULT_SYMBOL_MAX = 256;

const cache = new WeakMap<Graph, SymbolicInfo | null>();

/** The symbol of `g` and every value's axis states; undefined for a graph with static shapes only. Throws a KilnError at an unsupported use. */
export function symbolicInfo(g: Graph): SymbolicInfo | undefined {
  const hit = cache.get(g);
  if (hit !== undefined) return hit ?? undefined;
  const info = analyze(g);
  cache.set(g, info ?? null);
  return info;
}

/** The size input of `g`, if it has one (no analysis: safe on a broken graph). */
export function sizeInputOf(g: Graph): Extract<Node, { op: "input" }> | undefined {
  // One sweep over the nodes, not a search per input: a training step has hundreds of inputs.
  const sized = new Map<ValueId, Extract<Node, { op: "input" }>>();
  for (const n of g.nodes) if (n.op === "input" && n.dimMax !== undefined && !sized.has(n.id)) sized.set(n.id, n);
  if (sized.size === 0) return undefined;
  for (const id of g.inputs) {
    const n = sized.get(id);
    if (n) return n;
  }
  return undefined;
}

const unsupported = (message: string, n: Node): never => {
  throw new KilnError({ code: "unsupported", message, ...(n.loc ? { loc: n.loc as SourceLoc } : {}) });
};

/** `[batch,784]`, `[16*batch,64]`: a shape with its symbolic axes named. */
export function formatSymbolicShape(shape: readonly number[], states: readonly AxisState[] | undefined, name: string): string {
  if (!states) return formatShape(shape);
  return `[${shape.map((d, i) => formatDim(d, states[i], name)).join(",")}]`;
}

const formatDim = (d: number, s: AxisState | undefined, name: string): string => (typeof s === "number" ? (s === 1 ? name : `${s}*${name}`) : String(d));

function analyze(g: Graph): SymbolicInfo | undefined {
  const sizes = g.inputs.map((id) => nodeOf(g, id)).filter((n): n is Extract<Node, { op: "input" }> => n.op === "input" && n.dimMax !== undefined);
  const symbolicInputs = g.inputs.map((id) => nodeOf(g, id)).filter((n) => n.op === "input" && n.symbolic !== undefined);
  if (sizes.length === 0) {
    if (symbolicInputs.length > 0)
      unsupported(`input '${(symbolicInputs[0] as { name: string }).name}' has a symbolic axis but the graph has no size input`, symbolicInputs[0]!);
    return undefined;
  }
  if (sizes.length > 1) unsupported(`one symbolic dimension per program: found ${sizes.map((s) => `'${s.name}'`).join(" and ")}`, sizes[1]!);
  const sizeNode = sizes[0]!;
  const max = sizeNode.dimMax!;
  const name = sizeNode.name;
  if (!Number.isInteger(max) || max < 1) unsupported(`symbolic dimension '${name}': max must be a positive integer, got ${max}`, sizeNode);
  if (sizeNode.type.dtype !== "i32" || sizeNode.type.shape.length !== 0) unsupported(`size input '${name}' must be i32[]`, sizeNode);
  const axes = new Map<ValueId, readonly AxisState[]>();
  const statesOf = (id: ValueId): readonly AxisState[] => axes.get(id) ?? bug(`symbolic: value ${id} not analyzed`);
  for (const n of g.nodes)
    axes.set(
      n.id,
      normalize(
        n.type,
        nodeStates(n, statesOf, (id) => nodeOf(g, id).type, name, max),
      ),
    );
  return { name, max, size: sizeNode.id, axes };
}

/** Size-1 axes never vary: uniform. */
const normalize = (t: TensorType, states: AxisState[]): AxisState[] => states.map((s, i) => (t.shape[i] === 1 && typeof s !== "number" ? "uniform" : s));

const fixedOrUniform = (t: TensorType): AxisState[] => t.shape.map((d) => (d === 1 ? "uniform" : "fixed"));

function nodeStates(n: Node, statesOf: (id: ValueId) => readonly AxisState[], typeOf: (id: ValueId) => TensorType, name: string, max: number): AxisState[] {
  const join = (a: AxisState, b: AxisState, axis: number): AxisState => {
    if (a === b || b === "uniform") return a;
    if (a === "uniform") return b;
    if (a === "index") return b;
    if (b === "index") return a;
    if (typeof a === "number" && typeof b === "number")
      return unsupported(`${n.op}: symbolic axes ${formatDim(0, a, name)} and ${formatDim(0, b, name)} meet at axis ${axis}`, n);
    return unsupported(
      `${n.op}: symbolic dimension '${name}' (at most ${max}) meets a fixed dimension of size ${n.type.shape[axis]} at axis ${axis}; both operands must have '${name}' there`,
      n,
    );
  };
  const joinAll = (...lists: (readonly AxisState[])[]): AxisState[] =>
    lists[0]!.map((s, i) => lists.slice(1).reduce<AxisState>((acc, l) => join(acc, l[i]!, i), s));
  if (hasUnaryOp(n)) return [...statesOf(n.x)];
  if (hasBinaryOp(n)) return joinAll(statesOf(n.x), statesOf(n.y));
  switch (n.op) {
    case "input": {
      const states = fixedOrUniform(n.type);
      if (n.symbolic) {
        const { axis, scale } = n.symbolic;
        if (!(axis >= 0 && axis < n.type.shape.length) || !Number.isInteger(scale) || scale < 1 || n.type.shape[axis] !== scale * max)
          unsupported(`input '${n.name}': symbolic axis ${axis} of ${formatShape(n.type.shape)} must hold ${scale}×${max} (${scale}*${name} at its max)`, n);
        states[axis] = scale;
      }
      return states;
    }
    case "const":
      return n.type.shape.map(() => "uniform");
    case "iota":
      return n.type.shape.map((_, i) => (i === n.axis ? "index" : "uniform"));
    case "rng":
      // The counter is the flat index: along the leading axis a row holds the same bits at any length.
      return n.type.shape.map((_, i) => (i === 0 ? "index" : "fixed"));
    case "cast":
      return [...statesOf(n.x)];
    case "where":
      return joinAll(statesOf(n.cond), statesOf(n.x), statesOf(n.y));
    case "reduce_sum":
    case "reduce_max":
      return statesOf(n.x).map((s, i) => (n.axes.includes(i) ? "uniform" : s));
    case "expand": {
      const xs = typeOf(n.x).shape;
      return statesOf(n.x).map((s, i) => (xs[i] === 1 && n.type.shape[i] !== 1 ? "uniform" : s));
    }
    case "permute": {
      const xs = statesOf(n.x);
      return n.perm.map((p) => xs[p]!);
    }
    case "reshape":
      return reshapeStates(n, statesOf(n.x), typeOf(n.x).shape, name, max);
    case "pad":
    case "slice":
    case "flip": {
      const xs = statesOf(n.x);
      const touched = (i: number): boolean =>
        n.op === "pad"
          ? n.low[i] !== 0 || n.high[i] !== 0
          : n.op === "slice"
            ? n.start[i] !== 0 || n.step[i] !== 1 || n.stop[i] !== typeOf(n.x).shape[i]
            : n.axes.includes(i);
      return xs.map((s, i) => {
        if (!touched(i)) return s;
        if (typeof s === "number")
          return unsupported(`${n.op} along the symbolic axis ${i} ('${name}') is not supported: only whole-axis ${n.op === "slice" ? "slices" : "use"}`, n);
        return n.op === "flip" && s !== "index" ? s : "fixed";
      });
    }
    case "dot": {
      const a = statesOf(n.lhs);
      const b = statesOf(n.rhs);
      const r = a.length;
      const out = joinAll(a.slice(0, r - 2), b.slice(0, r - 2));
      join(a[r - 1]!, b[r - 2]!, r - 1);
      return [...out, a[r - 2]!, b[r - 1]!];
    }
    case "gather": {
      const x = statesOf(n.x);
      const idx = statesOf(n.index);
      if (typeof x[n.axis] === "number") unsupported(`gather along the symbolic axis ${n.axis} ('${name}') is not supported`, n);
      return idx.map((s, i) => (i === n.axis ? s : join(x[i]!, s, i)));
    }
    default:
      return bug(`symbolic: unhandled op ${(n as Node).op}`);
  }
}

/** A reshape keeps the symbolic axis leading (only size-1 axes before it) and a whole number of rows per symbol entry. */
function reshapeStates(n: Extract<Node, { op: "reshape" }>, xs: readonly AxisState[], xShape: readonly number[], name: string, max: number): AxisState[] {
  const out = n.type.shape;
  // Only size-1 axes inserted or removed: every other axis keeps its state.
  const kept = xShape.flatMap((d, i) => (d === 1 ? [] : [i]));
  const outKept = out.flatMap((d, i) => (d === 1 ? [] : [i]));
  if (kept.length === outKept.length && kept.every((a, i) => xShape[a] === out[outKept[i]!])) {
    const states: AxisState[] = out.map(() => "uniform");
    outKept.forEach((o, i) => (states[o] = xs[kept[i]!]!));
    return states;
  }
  const symAxes = xs.flatMap((s, i) => (typeof s === "number" ? [i] : []));
  if (symAxes.length === 0) return xs.every((s) => s === "uniform") ? out.map(() => "uniform") : fixedOrUniform(n.type);
  const fail = (): never =>
    unsupported(
      `reshape ${formatSymbolicShape(xShape, xs, name)} to ${formatShape(out)}: the symbolic dimension '${name}' must stay the leading axis (e.g. [${name},T,C] to [T*${name},C] or back)`,
      n,
    );
  if (symAxes.length > 1) fail();
  const a = symAxes[0]!;
  if (xShape.slice(0, a).some((d) => d !== 1)) fail();
  const perEntry = (xs[a] as number) * numel(xShape.slice(a + 1));
  const j = out.findIndex((d) => d !== 1);
  if (j < 0) fail();
  const rest = numel(out.slice(j + 1));
  const scale = perEntry / rest;
  if (!Number.isInteger(scale) || scale < 1 || out[j] !== scale * max) fail();
  return out.map((d, i) => (i === j ? scale : d === 1 ? "uniform" : "fixed"));
}

/** `type` at symbol size `n`: every symbolic axis becomes `scale × n`. */
export function typeAtSize(type: TensorType, states: readonly AxisState[] | undefined, n: number): TensorType {
  if (!states || !states.some((s) => typeof s === "number")) return type;
  return { dtype: type.dtype, shape: type.shape.map((d, i) => (typeof states[i] === "number" ? (states[i] as number) * n : d)) };
}

/** The first `rows` entries of axis 0 of `t` (a view where the data allows), shape adjusted. */
export function leadingRows(t: HostTensor, rows: number): HostTensor {
  const per = numel(t.shape.slice(1));
  return { dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data: t.data.subarray(0, rows * per) as HostData };
}

/** `t` grown along axis 0 to `rows` entries, the new ones zero (a no-op when it has them). */
export function padRows(t: HostTensor, rows: number): HostTensor {
  if (t.shape[0] === rows) return t;
  const per = numel(t.shape.slice(1));
  const data = allocHostData(t.dtype, rows * per);
  data.set(t.data as never);
  return { dtype: t.dtype, shape: [rows, ...t.shape.slice(1)], data };
}

/**
 * Runs `run` (an interpreter at the actual size) for a graph whose executors take and give
 * tensors at the maximum size (what every compiled target does): inputs are cut to the run's
 * size, outputs padded back to the maximum.
 */
export function atActualSize(
  g: Graph,
  inputs: Readonly<Record<string, HostTensor>>,
  run: (inputs: Readonly<Record<string, HostTensor>>) => Record<string, HostTensor>,
): Record<string, HostTensor> {
  const sym = symbolicInfo(g);
  const given = sym ? inputs[sym.name] : undefined;
  if (!sym || given === undefined) return run(inputs);
  const n = Number(given.data[0]);
  const cut: Record<string, HostTensor> = { ...inputs };
  for (const id of g.inputs) {
    const node = nodeOf(g, id);
    const t = node.op === "input" && node.symbolic?.axis === 0 ? inputs[node.name] : undefined;
    if (t && node.op === "input" && t.shape[0] === node.type.shape[0]) cut[node.name] = leadingRows(t, n * node.symbolic!.scale);
  }
  const out = run(cut);
  for (const o of g.outputs) {
    const lead = sym.axes.get(o.value)?.[0];
    if (typeof lead === "number" && out[o.name]) out[o.name] = padRows(out[o.name]!, nodeOf(g, o.value).type.shape[0]!);
  }
  return out;
}
