// The float64 reference interpreter: evaluates a graph node by node on the host. It is the
// oracle every backend is compared with, so it favours exact, documented semantics over speed.
//
// Semantics (every target must match these, up to f32 rounding):
// - f32 values are computed in float64 and returned as Float64Array; i32 is exact with 32-bit
//   two's-complement wraparound (`|0`, Math.imul); bool is a Uint8Array of 0/1.
// - f16 and bf16 (runtime/artifact/half.ts): each op computes in float64 from its operands'
//   16-bit values and rounds its result ONCE to the format (nearest, ties to even, overflow to
//   ±inf, subnormals kept), as PyTorch does per op on CPU; inputs and consts are rounded on
//   entry; a sum or dot accumulates in float64 and rounds once at the end. Movement ops copy.
//   Targets compute a fused chain in f32 and round where they store, so they differ from this
//   by a few units in the last place of the 16-bit format (test tolerances say how many).
// - idiv/mod on i32 use floor semantics, like PyTorch's `//` and `%` (and Python): the quotient
//   rounds toward -inf, the remainder takes the divisor's sign: -7 // 2 = -4, -7 % 2 = 1,
//   7 % -2 = -1. INT32_MIN // -1 wraps to INT32_MIN. A zero divisor is an "interp" error.
// - On bool, add and max are logical or, mul is logical and. cmplt/cmpeq return bool;
//   comparisons with NaN are false. max propagates NaN (torch.maximum).
// - cast f32 → i32 truncates toward zero, saturating at the i32 range, NaN → 0; cast → bool is
//   `x != 0` (so NaN → true); bool → number is 0/1.
// - IEEE float64 everywhere else: sqrt/log2 of negatives → NaN, log2(0) → -inf, exp2 overflow
//   → inf, recip(0) → inf. reduce_max over an empty axis → -inf (f32) or INT32_MIN (i32);
//   reduce_sum over an empty axis → 0. Sums run in row-major order of the input.
// - gather indices must lie in [0, size): anything else is an "interp" error naming the node.
// - rng: see compiler/util/threefry.ts; the seed operand's i32 bits are read as u32.

import { KilnError, assertNever, bug } from "../util/errors.ts";
import { roundToDType } from "./dtype.ts";
import { allocHostData, toHostData, type HostData, type HostTensor } from "./host-tensor.ts";
import { formatShape, numel, shapesEqual } from "../util/shape.ts";
import { formatType } from "./infer.ts";
import { printNode, valueNames } from "./printer.ts";
import * as compute from "./interpret-compute.ts";
import * as movement from "./interpret-movement.ts";
import type { Graph, GraphOutput, Node, TensorType, ValueId } from "./types.ts";
import { operands } from "./op-schema.ts";
import { nodeOf } from "./graph.ts";
import { symbolicInfo, typeAtSize } from "./symbolic.ts";

/** Evaluates `g` on `inputs` (keyed by input name; extra names are ignored). Outputs are keyed by GraphOutput.name. */
export function interpret(g: Graph, inputs: Readonly<Record<string, HostTensor>>): Record<string, HostTensor> {
  const values = evaluate(g, inputs, true);
  const result: Record<string, HostTensor> = {};
  for (const o of g.outputs) result[o.name] = copyTensor(outputValue(values, o));
  return result;
}

/** Every node's value by id (debugging, per-node comparisons). Values may share storage with the inputs and each other (reshape): read them, never write. */
export function interpretAll(g: Graph, inputs: Readonly<Record<string, HostTensor>>): Map<ValueId, HostTensor> {
  return evaluate(g, inputs, false);
}

function evaluate(g: Graph, inputs: Readonly<Record<string, HostTensor>>, freeDeadValues: boolean): Map<ValueId, HostTensor> {
  const values = new Map<ValueId, HostTensor>();
  const lastUse = freeDeadValues ? lastUses(g) : undefined;
  const { typeOf, withSize } = actualTypes(g, inputs);
  g.nodes.forEach((node, position) => {
    values.set(node.id, evaluateNode(g, node, values, withSize, typeOf(node)));
    if (lastUse) for (const id of operands(node)) if (lastUse.get(id) === position) values.delete(id);
  });
  return values;
}

/** For each value, the position of the last node reading it; graph outputs are never freed. */
function lastUses(g: Graph): Map<ValueId, number> {
  const last = new Map<ValueId, number>();
  g.nodes.forEach((node, position) => {
    for (const id of operands(node)) last.set(id, position);
  });
  for (const o of g.outputs) last.delete(o.value);
  return last;
}

function outputValue(values: Map<ValueId, HostTensor>, o: GraphOutput): HostTensor {
  return values.get(o.value) ?? bug(`interpret: output ${o.name} refers to unevaluated value %${o.value}`);
}

function copyTensor(t: HostTensor): HostTensor {
  return { dtype: t.dtype, shape: [...t.shape], data: t.data.slice() };
}

/** The node as a dump prints it (`%3 = idiv %x, %2 : i32[4]`), so an error points at a dump line. */
function describeNode(g: Graph, node: Node): string {
  return `graph @${g.name}: ${printNode(node, valueNames(g))}`;
}

/**
 * Node types at the run's sizes: a graph with a symbolic dimension runs at the size its size
 * input gives (or, when the caller leaves it out, that the symbolic inputs' shapes give).
 */
function actualTypes(
  g: Graph,
  inputs: Readonly<Record<string, HostTensor>>,
): { typeOf: (node: Node) => TensorType; withSize: Readonly<Record<string, HostTensor>> } {
  const sym = symbolicInfo(g);
  if (!sym) return { typeOf: (node) => node.type, withSize: inputs };
  let n: number | undefined;
  const given = inputs[sym.name];
  if (given !== undefined) n = Number(given.data[0]);
  else
    for (const id of g.inputs) {
      const node = nodeOf(g, id);
      const t = inputs[(node as { name: string }).name];
      if (node.op === "input" && node.symbolic && t && Array.isArray(t.shape)) {
        n = t.shape[node.symbolic.axis]! / node.symbolic.scale;
        break;
      }
    }
  if (n === undefined) throw new KilnError({ code: "invalid-argument", message: `missing input '${sym.name}' (the size of the symbolic dimension)` });
  if (!Number.isInteger(n) || n < 1 || n > sym.max)
    throw new KilnError({ code: "invalid-argument", message: `symbolic dimension '${sym.name}' is ${n}, outside 1..${sym.max}` });
  const size = n;
  return {
    typeOf: (node) => (node.id === sym.size ? node.type : typeAtSize(node.type, sym.axes.get(node.id), size)),
    withSize: given !== undefined ? inputs : { ...inputs, [sym.name]: { dtype: "i32", shape: [], data: Int32Array.of(size) } },
  };
}

function evaluateNode(g: Graph, node: Node, values: Map<ValueId, HostTensor>, inputs: Readonly<Record<string, HostTensor>>, type: TensorType): HostTensor {
  const get = (id: ValueId): HostTensor => values.get(id) ?? bug(`interpret: ${describeNode(g, node)} reads unevaluated value %${id}`);
  const fail = (message: string): never => {
    throw new KilnError({ code: "interp", message: `${message} in ${describeNode(g, node)}`, ...(node.loc ? { loc: node.loc } : {}) });
  };
  // A fresh output buffer of the node's type, filled by `fill`.
  const produce = (fill: (out: HostData) => void): HostTensor => {
    const data = allocHostData(type.dtype, numel(type.shape));
    fill(data);
    roundToDType(type.dtype, data);
    return { dtype: type.dtype, shape: type.shape, data };
  };
  switch (node.op) {
    case "input":
      return bindInput(node.name, type, inputs[node.name]);
    case "const":
      return produce((out) => out.fill(node.value));
    case "iota":
      return produce((out) => compute.iota(type.shape, node.axis, out));
    case "rng": {
      const seed = get(node.seed).data[0]! >>> 0;
      return produce((out) => compute.rng(seed, node.stream, out));
    }
    case "neg":
    case "exp2":
    case "log2":
    case "sin":
    case "sqrt":
    case "recip": {
      const { op } = node;
      const x = get(node.x);
      return produce((out) => compute.unary(op, x.data, out));
    }
    case "cast": {
      const x = get(node.x);
      return produce((out) => compute.cast(x.dtype, type.dtype, x.data, out));
    }
    case "add":
    case "mul":
    case "max":
    case "cmplt":
    case "cmpeq":
    case "idiv":
    case "mod": {
      const { op } = node;
      const x = fitTo(get(node.x), type.shape);
      const y = fitTo(get(node.y), type.shape);
      return produce((out) => compute.binary(op, x.dtype, x.data, y.data, out, fail));
    }
    case "where": {
      const [cond, x, y] = [get(node.cond), get(node.x), get(node.y)].map((t) => fitTo(t, type.shape)) as [HostTensor, HostTensor, HostTensor];
      return produce((out) => compute.where(cond.data, x.data, y.data, out));
    }
    case "reduce_sum":
    case "reduce_max": {
      const { op, axes } = node;
      const x = get(node.x);
      return produce((out) => compute.reduce(op, type.dtype, x.data, x.shape, axes, out));
    }
    case "reshape":
      // Row-major reshape keeps the flat order, so the data is shared (values are never mutated).
      return { dtype: type.dtype, shape: type.shape, data: get(node.x).data };
    case "permute": {
      const { perm } = node;
      const x = get(node.x);
      return produce((out) => movement.permute(x.data, x.shape, perm, out));
    }
    case "expand": {
      const x = get(node.x);
      return produce((out) => movement.expand(x.data, x.shape, type.shape, out));
    }
    case "pad": {
      const { low, value } = node;
      const x = get(node.x);
      return produce((out) => movement.pad(x.data, x.shape, low, value, type.shape, out));
    }
    case "slice": {
      const { start, step } = node;
      const x = get(node.x);
      return produce((out) => movement.slice(x.data, x.shape, start, step, type.shape, out));
    }
    case "flip": {
      const { axes } = node;
      const x = get(node.x);
      return produce((out) => movement.flip(x.data, x.shape, axes, out));
    }
    case "dot": {
      const [l, r] = [get(node.lhs), get(node.rhs)];
      const rank = type.shape.length;
      const k = Math.min(l.shape[rank - 1]!, r.shape[rank - 2]!);
      const lhs = fitTo(l, [...type.shape.slice(0, -1), k]);
      const rhs = fitTo(r, [...type.shape.slice(0, -2), k, type.shape[rank - 1]!]);
      return produce((out) => compute.dot(type.dtype, lhs.data, lhs.shape, rhs.data, rhs.shape, out));
    }
    case "gather": {
      const { axis } = node;
      const index = fitTo(get(node.index), type.shape);
      const gx = get(node.x);
      const x = fitTo(
        gx,
        type.shape.map((d, i) => (i === axis ? gx.shape[i]! : d)),
      );
      return produce((out) => compute.gather(x.data, x.shape, index.data, index.shape, axis, out, fail));
    }
    default:
      return assertNever(node, "node");
  }
}

/**
 * A value broadcast along an axis (an expand, a constant: `uniform` in compiler/ir/symbolic.ts)
 * keeps the maximum size there while its symbolic partner has the run's size; any prefix of
 * it holds the same entries. Static graphs never get here with differing shapes.
 */
function fitTo(t: HostTensor, shape: readonly number[]): HostTensor {
  if (shapesEqual(t.shape, shape)) return t;
  const data = allocHostData(t.dtype, numel(shape));
  movement.slice(
    t.data,
    t.shape,
    shape.map(() => 0),
    shape.map(() => 1),
    shape,
    data,
  );
  return { dtype: t.dtype, shape, data };
}

/** Checks a caller's tensor against the input's declared type and converts it to canonical storage. */
function bindInput(name: string, expected: TensorType, given: HostTensor | undefined): HostTensor {
  const want = formatType(expected);
  if (given === undefined) throw new KilnError({ code: "invalid-argument", message: `missing input '${name}' (expected ${want})` });
  const got = `${String(given.dtype)}${Array.isArray(given.shape) || ArrayBuffer.isView(given.shape) ? formatShape(given.shape) : "[?]"}`;
  if (given.dtype !== expected.dtype) throw new KilnError({ code: "dtype-mismatch", message: `input '${name}': expected ${want}, got ${got}` });
  if (!shapesEqual(given.shape, expected.shape)) throw new KilnError({ code: "shape-mismatch", message: `input '${name}': expected ${want}, got ${got}` });
  const length = numel(expected.shape);
  const raw = given.data as ArrayLike<number> | undefined;
  if (raw === undefined || typeof raw.length !== "number" || raw.length !== length)
    throw new KilnError({ code: "shape-mismatch", message: `input '${name}': ${want} needs ${length} elements, got ${raw?.length ?? "no data"}` });
  // Widen f32 data to float64 so every intermediate is computed in float64.
  const data: HostData =
    expected.dtype === "f32" && !(raw instanceof Float64Array) ? Float64Array.from(raw) : toHostData(expected.dtype, raw, `input '${name}'`);
  return { dtype: expected.dtype, shape: expected.shape, data };
}
