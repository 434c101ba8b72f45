// Non-finite values, found and contained. Two graph variants that k.compile builds only when
// asked (a normal run compiles and runs the traced graph untouched, so it pays nothing):
//
// - `guardStateUpdates` (exe.run(…, { skipNonFinite: true }), and checkNumerics): one flag,
//   "the user's outputs (the loss) and every state update are finite", computed in the graph
//   as a count of elements failing max(v, -v) < +Inf (false for NaN and ±Inf), which must be
//   0; each state update becomes where(flag, new, old) and the flag is one more output. Only
//   comparisons decide: GPU compilers may assume NaN-free arithmetic and fold v · 0 to 0
//   (Mesa does), which would make a NaN-propagating test such as Σ v · 0 = 0 always pass. The step is skipped
//   on the device itself, so it is right on every target, WebGPU's device-resident state
//   included, with no host snapshot and no extra readback (a snapshot/restore would copy all
//   the state every step; the guard costs one reduction and one select per update).
// - `exposeValues` (checkNumerics / KILN_DEBUG=nan): every computed f32 value also becomes an
//   output, so the run hands the host each node's value; `findFirstNonFinite` scans them in
//   program order and names the first node that produced NaN or ±Inf: its op and IR line, the
//   user's source line, the module path, the kernel that computed it and the position. Indices
//   the graph computes (gather/embedding/class ids not read straight from an input, which
//   exe.run checks on the host) are exposed too and range-checked in the same scan.
//
// Infinities are not always a fault: attention masks write -Inf on purpose. An infinity that
// flows from an infinite constant or input through ops that pass one on (movement, where, max,
// add, mul, neg, cast) is allowed; anything else holding ±Inf, and any NaN, is reported.

import { isFloat } from "../compiler/ir/dtype.ts";
import { GraphBuilder, nodeOf } from "../compiler/ir/graph.ts";
import { printNode, valueNames } from "../compiler/ir/printer.ts";
import { isMovementOp, type Graph, type GraphOutput, type Node, type ValueId } from "../compiler/ir/types.ts";
import { operands } from "../compiler/ir/op-schema.ts";
import { KilnError } from "../compiler/util/errors.ts";
import type { HostTensor } from "../compiler/ir/host-tensor.ts";
import type { ComputedIndex, IndexUse } from "./index-checks.ts";

/** What the check reads of a target's artifact to name kernels (a structural slice of runtime/artifact's Artifact). */
export interface KernelMap {
  readonly outputs: readonly { readonly name: string; readonly buffer: number }[];
  readonly kernels: readonly { readonly name: string; readonly writes: readonly number[] }[];
}

/** Name of the guard's flag output: true when the outputs and every update were finite (the step was kept). */
export const FINITE_OUTPUT = "%finite";
const CHECK_PREFIX = "%check.";

/** Whether KILN_DEBUG (a comma-separated list: `KILN_DEBUG=nan`, `KILN_DEBUG=2,nan`) asks for checkNumerics. */
export function checkNumericsFromEnv(): boolean {
  const raw = typeof process !== "undefined" ? process.env?.["KILN_DEBUG"] : undefined;
  return raw !== undefined && raw.split(",").some((part) => part.trim().toLowerCase() === "nan");
}

/** Copies every node of `g` into a builder (ids may change); returns the builder and the id map. */
function copyGraph(g: Graph): { b: GraphBuilder; idOf: (id: ValueId) => ValueId } {
  const b = new GraphBuilder(g.name);
  const ids = new Map<ValueId, ValueId>();
  const idOf = (id: ValueId): ValueId => ids.get(id) ?? badId(id);
  for (const n of g.nodes) ids.set(n.id, b.copy(n, idOf));
  return { b, idOf };
}

/** A scalar value broadcast to `shape` (a reshape to rank-many 1s, then expand). */
function broadcastScalar(b: GraphBuilder, id: ValueId, shape: readonly number[]): ValueId {
  if (shape.length === 0) return id;
  const dtype = b.typeOf(id).dtype;
  const ones = b.add({ op: "reshape", x: id }, { dtype, shape: shape.map(() => 1) });
  return b.add({ op: "expand", x: ones }, { dtype, shape: [...shape] });
}

const badId = (id: ValueId): never => {
  throw new Error(`kiln internal error: numerics: value ${id} used before it is defined`);
};

/**
 * The graph with its state updates guarded: outputs keep their names and order, each
 * aliasing output becomes where(finite, new, old), and FINITE_OUTPUT (bool[]) is appended.
 * `userOutputCount` outputs (the loss) are checked but not changed.
 */
export function guardStateUpdates(g: Graph, userOutputCount: number): Graph {
  const { b, idOf } = copyGraph(g);
  const inputByName = new Map(g.inputs.map((id) => nodeOf(g, id)).flatMap((n) => (n.op === "input" ? [[n.name, n.id] as const] : [])));
  const checked = g.outputs.filter((o, i) => (i < userOutputCount || o.aliases !== undefined) && isFloat(nodeOf(g, o.value).type.dtype));
  let total: ValueId | undefined;
  for (const o of checked) {
    const v = idOf(o.value);
    const shape = b.typeOf(v).shape;
    const scalar = (value: number): ValueId => broadcastScalar(b, b.add({ op: "const", value }, { dtype: "f32", shape: [] }), shape);
    const magnitude = b.add({ op: "max", x: v, y: b.add({ op: "neg", x: v }) });
    const finite = b.add({ op: "cmplt", x: magnitude, y: scalar(Infinity) });
    const bad = b.add({ op: "where", cond: finite, x: scalar(0), y: scalar(1) }); // 1 where v is NaN or ±Inf
    let s = shape.length > 0 ? b.add({ op: "reduce_sum", x: bad, axes: shape.map((_, i) => i) }) : bad;
    if (shape.length > 0) s = b.add({ op: "reshape", x: s }, { dtype: "f32", shape: [] });
    total = total === undefined ? s : b.add({ op: "add", x: total, y: s });
  }
  const finite =
    total === undefined
      ? b.add({ op: "const", value: 1 }, { dtype: "bool", shape: [] })
      : b.add({ op: "cmpeq", x: total, y: b.add({ op: "const", value: 0 }, { dtype: "f32", shape: [] }) });
  const outputs: GraphOutput[] = g.outputs.map((o) => {
    if (o.aliases === undefined) return { ...o, value: idOf(o.value) };
    const old = inputByName.get(o.aliases);
    if (old === undefined) throw new Error(`kiln internal error: numerics: output ${o.name} aliases unknown input ${o.aliases}`);
    const type = b.typeOf(idOf(o.value));
    const cond = broadcastScalar(b, finite, type.shape);
    return { ...o, value: b.add({ op: "where", cond, x: idOf(o.value), y: idOf(old) }) };
  });
  return b.build([...outputs, { name: FINITE_OUTPUT, value: finite }]);
}

/** One value the check reads back: the node (of the graph `exposeValues` was given) and its output name. */
export interface CheckedValue {
  readonly node: Node;
  readonly output: string;
  /** For a computed index: how an op uses it (valid values [0, high), or ignoreIndex). Else a finiteness check. */
  readonly index?: IndexUse;
}

export interface ExposedGraph {
  readonly graph: Graph;
  /** The computed f32 values of the original graph, in program order. */
  readonly checks: readonly CheckedValue[];
}

/**
 * Adds an output for every computed f32 value of `g` that is not a plain output already
 * (constants, inputs, rng and movement ops are left out: they compute nothing that can
 * overflow). A state update gets an output of its own: guardStateUpdates replaces the value
 * of the aliasing one, and the check must see the update as computed.
 */
export function exposeValues(g: Graph, computedIndices: readonly ComputedIndex[] = []): ExposedGraph {
  const { b, idOf } = copyGraph(g);
  const already = new Map(g.outputs.filter((o) => o.aliases === undefined).map((o) => [o.value, o.name]));
  const checks: CheckedValue[] = [];
  const extra: GraphOutput[] = [];
  const exposed = new Set<ValueId>();
  const outputOf = (id: ValueId): string => {
    const name = already.get(id) ?? `${CHECK_PREFIX}${id}`;
    if (!already.has(id) && !exposed.has(id)) extra.push({ name, value: idOf(id) });
    exposed.add(id);
    return name;
  };
  const indexUses = new Map<ValueId, IndexUse[]>();
  for (const { value, ...use } of computedIndices) indexUses.set(value, [...(indexUses.get(value) ?? []), use]);
  for (const n of g.nodes) {
    for (const use of indexUses.get(n.id) ?? []) checks.push({ node: n, output: outputOf(n.id), index: use });
    if (!isFloat(n.type.dtype) || n.op === "input" || n.op === "const" || n.op === "rng" || n.op === "iota" || isMovementOp(n.op)) continue;
    checks.push({ node: n, output: outputOf(n.id) });
  }
  return { graph: b.build([...g.outputs.map((o) => ({ ...o, value: idOf(o.value) })), ...extra]), checks };
}

/** Ops through which an infinity from a deliberately infinite source may pass unreported. */
const PASSES_INFINITY = new Set<string>(["where", "max", "add", "mul", "neg", "cast", "reshape", "permute", "expand", "pad", "slice", "flip"]);

/** Values that may hold ±Inf on purpose: infinite constants (or pads) and inputs holding ±Inf, and what they flow into through PASSES_INFINITY. */
function infinitySources(g: Graph, infiniteInputs: ReadonlySet<string>): Set<ValueId> {
  const allowed = new Set<ValueId>();
  for (const n of g.nodes) {
    const source =
      (n.op === "const" && !Number.isFinite(n.value) && !Number.isNaN(n.value)) ||
      (n.op === "pad" && !Number.isFinite(n.value) && !Number.isNaN(n.value)) ||
      (n.op === "input" && infiniteInputs.has(n.name));
    if (source || (PASSES_INFINITY.has(n.op) && operands(n).some((id) => allowed.has(id)))) allowed.add(n.id);
  }
  return allowed;
}

/** The first non-finite element of `data`: its position and value, or undefined. */
function firstNonFinite(data: ArrayLike<number>, nanOnly: boolean): { at: number; value: number } | undefined {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isNaN(v) || (!nanOnly && !Number.isFinite(v))) return { at: i, value: v };
  }
  return undefined;
}

const describeValue = (v: number): string => (Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");

/** The module path a node was traced in, where the tracer records one (`scope`, e.g. "blocks.0.attn"). */
function scopeOf(node: Node): string | undefined {
  // KILN-SCOPE: graph nodes gain a `scope` (module path) with the kir work; until then this
  // reads it without depending on the field, and the message leaves the module path out.
  const scope = (node as { readonly scope?: unknown }).scope;
  return typeof scope === "string" && scope !== "" ? scope : undefined;
}

/** The error for the first value of a computed index outside [0, high) (ignoreIndex aside), or undefined. */
function checkComputedIndex(g: Graph, node: Node, use: IndexUse, t: HostTensor, artifact: KernelMap | undefined, output: string): KilnError | undefined {
  const data = t.data;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if ((v >= 0 && v < use.high) || v === use.ignoreIndex) continue;
    const range = `[0, ${use.high})${use.ignoreIndex !== undefined ? ` or ignoreIndex ${use.ignoreIndex}` : ""}`;
    const kernel = kernelWriting(artifact, output);
    const lines = [
      `  node:   ${printNode(node, valueNames(g))}`,
      ...(node.loc ? [`  computed at ${node.loc.file}:${node.loc.line}:${node.loc.col}`] : []),
      ...(kernel ? [`  kernel: ${kernel}`] : []),
    ];
    return new KilnError({
      code: "invalid-argument",
      message: `checkNumerics: ${use.op} takes a computed ${use.what} in ${range}, but ${node.op} produced ${v} at position ${i} of ${node.type.dtype}[${node.type.shape.join(",")}]`,
      ...(use.loc ? { loc: use.loc } : node.loc ? { loc: node.loc } : {}),
      detail: lines.join("\n"),
    });
  }
  return undefined;
}

/** What an operand held: followed through movement ops to the value or input they move. */
function describeOperand(
  g: Graph,
  id: ValueId,
  names: ReadonlyMap<ValueId, string>,
  checks: readonly CheckedValue[],
  results: Readonly<Record<string, HostTensor | undefined>>,
  infiniteInputs: ReadonlySet<string>,
): string {
  let n = nodeOf(g, id);
  const moves: string[] = [];
  while (isMovementOp(n.op) && "x" in n) {
    moves.push(n.op);
    n = nodeOf(g, n.x);
  }
  const via = moves.length > 0 ? `${moves.join(" of ")} of ${names.get(n.id)}, ` : "";
  if (n.op === "input") return `${via}input '${n.name}'${infiniteInputs.has(n.name) ? ", holds ±Inf" : ", finite"}`;
  if (n.op === "const") return `${via}constant ${n.value}`;
  const value = results[checks.find((x) => x.node.id === n.id)?.output ?? ""];
  if (!value) return `${via}${n.op}`;
  const bad = firstNonFinite(value.data, false);
  return `${via}${n.op}, ${bad ? `holds ${describeValue(bad.value)} at position ${bad.at} (allowed: it flows from an infinite input or constant)` : "finite"}`;
}

/** The kernel (by name) that writes output `name` last in launch order, or undefined. */
function kernelWriting(artifact: KernelMap | undefined, name: string): string | undefined {
  if (!artifact) return undefined;
  const out = artifact.outputs.find((o) => o.name === name);
  if (!out) return undefined;
  let found: string | undefined;
  for (const k of artifact.kernels) if (k.writes.includes(out.buffer)) found = k.name;
  return found;
}

/**
 * Checks the host inputs of a run (user inputs and host-side state): the error for the first
 * input holding NaN (or ±Inf where `allowInfinite` does not name it), else the names of the
 * inputs holding ±Inf (the infinities the program may pass on).
 */
export function checkInputs(g: Graph, inputs: Readonly<Record<string, HostTensor>>): { error?: KilnError; infinite: Set<string> } {
  const infinite = new Set<string>();
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input" || !isFloat(n.type.dtype)) continue;
    const t = inputs[n.name];
    if (!t) continue;
    const bad = firstNonFinite(t.data, true);
    if (bad)
      return {
        error: new KilnError({
          code: "invalid-argument",
          message: `checkNumerics: input '${n.name}' holds ${describeValue(bad.value)} at position ${bad.at} of ${n.type.dtype}[${n.type.shape.join(",")}]; the run was not started`,
        }),
        infinite,
      };
    if (firstNonFinite(t.data, false)) infinite.add(n.name);
  }
  return { infinite };
}

/**
 * Scans the values of a checked run in program order; returns the error naming the first node
 * that produced NaN (or an infinity not flowing from an infinite constant or input), or undefined.
 */
export function findFirstNonFinite(
  g: Graph,
  checks: readonly CheckedValue[],
  results: Readonly<Record<string, HostTensor | undefined>>,
  infiniteInputs: ReadonlySet<string>,
  artifact: KernelMap | undefined,
): KilnError | undefined {
  const allowed = infinitySources(g, infiniteInputs);
  for (const c of checks) {
    const t = results[c.output];
    if (!t) continue;
    if (c.index) {
      const error = checkComputedIndex(g, c.node, c.index, t, artifact, c.output);
      if (error) return error;
      continue;
    }
    const bad = firstNonFinite(t.data, allowed.has(c.node.id));
    if (!bad) continue;
    const names = valueNames(g);
    const kernel = kernelWriting(artifact, c.output);
    const scope = scopeOf(c.node);
    const inputsHolding = [...infiniteInputs];
    const lines = [
      `  node:   ${printNode(c.node, names)}`,
      ...(scope ? [`  module: ${scope}`] : []),
      ...(kernel ? [`  kernel: ${kernel}`] : []),
      ...operands(c.node).map((id) => `  operand ${names.get(id)}: ${describeOperand(g, id, names, checks, results, infiniteInputs)}`),
      ...(inputsHolding.length > 0 ? [`  inputs holding ±Inf (allowed to flow on): ${inputsHolding.join(", ")}`] : ["  every input was finite"]),
    ];
    return new KilnError({
      code: "invalid-argument",
      message: `checkNumerics: ${c.node.op} produced ${describeValue(bad.value)} at position ${bad.at} of ${c.node.type.dtype}[${c.node.type.shape.join(",")}], the first non-finite value in program order${kernel ? ` (kernel ${kernel}${scope ? `, module ${scope}` : ""})` : scope ? ` (module ${scope})` : ""}`,
      ...(c.node.loc ? { loc: c.node.loc } : {}),
      detail: lines.join("\n"),
    });
  }
  return undefined;
}
