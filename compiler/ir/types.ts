// The graph IR's node types. A graph is SSA over tensors with static shapes and dtypes,
// built from a small set of primitives (DESIGN.md): composite ops (softmax, conv2d, adam…)
// never appear here, so autodiff, fusion and every backend see only these.
//
// Conventions every pass may rely on:
// - binary ops and `where` take operands of identical shape (broadcasting is an explicit
//   `expand`), and identical dtype (comparisons return bool);
// - reductions keep the reduced axes as size 1 (keepdim), `axes` sorted and unique;
// - `dot` contracts the last axis of lhs with the second-to-last of rhs over identical
//   leading batch dims: [...B, M, K] x [...B, K, N] -> [...B, M, N].

import type { SourceLoc } from "../util/errors.ts";
import type { Shape } from "../util/shape.ts";
import type { DType } from "./dtype.ts";

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export type ValueId = number & { readonly __brand: "ValueId" };
export const valueId = (n: number): ValueId => n as ValueId;

export const UNARY_OPS = ["neg", "exp2", "log2", "sin", "sqrt", "recip"] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

export const BINARY_OPS = ["add", "mul", "max", "cmplt", "cmpeq", "idiv", "mod"] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export const REDUCE_OPS = ["reduce_sum", "reduce_max"] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

export const MOVEMENT_OPS = ["reshape", "permute", "expand", "pad", "slice", "flip"] as const;
export type MovementOp = (typeof MOVEMENT_OPS)[number];

interface Base {
  readonly id: ValueId;
  readonly type: TensorType;
  readonly loc?: SourceLoc;
  /** The module path the node was traced in (`blocks.0.attn`; the root module is ""), from Module.call. */
  readonly scope?: string;
}

/** A graph input. `name` is unique within the graph and is how callers bind data. */
export interface InputNode extends Base {
  readonly op: "input";
  readonly name: string;
  /**
   * A symbolic axis (compiler/ir/symbolic.ts): at run time `axis` holds `scale × n` entries,
   * n the value of the graph's size input (1 ≤ n ≤ its max); the type's shape holds the maximum.
   */
  readonly symbolic?: { readonly axis: number; readonly scale: number };
  /** Set on the graph's size input (an i32[] named after the symbol, e.g. `batch`): the largest size a run may give. */
  readonly dimMax?: number;
}
/** A tensor filled with one value (a scalar when shape is []). */
export interface ConstNode extends Base {
  readonly op: "const";
  readonly value: number;
}
/** int32 tensor whose value at each position is its index along `axis`. */
export interface IotaNode extends Base {
  readonly op: "iota";
  readonly axis: number;
}
/**
 * Counter-based uniform random numbers in [0, 1): threefry2x32 (20 rounds) keyed by
 * (seed, stream) over the counter (flat index, 0). Same seed and stream, same bits on
 * every target. `seed` is an i32[] value so a training loop can feed a fresh one per step.
 */
export interface RngNode extends Base {
  readonly op: "rng";
  readonly seed: ValueId;
  readonly stream: number;
}
export interface UnaryNode extends Base {
  readonly op: UnaryOp;
  readonly x: ValueId;
}
export interface CastNode extends Base {
  readonly op: "cast";
  readonly x: ValueId;
}
export interface BinaryNode extends Base {
  readonly op: BinaryOp;
  readonly x: ValueId;
  readonly y: ValueId;
}
export interface WhereNode extends Base {
  readonly op: "where";
  readonly cond: ValueId;
  readonly x: ValueId;
  readonly y: ValueId;
}
export interface ReduceNode extends Base {
  readonly op: ReduceOp;
  readonly x: ValueId;
  readonly axes: readonly number[];
}
export interface ReshapeNode extends Base {
  readonly op: "reshape";
  readonly x: ValueId;
}
export interface PermuteNode extends Base {
  readonly op: "permute";
  readonly x: ValueId;
  readonly perm: readonly number[];
}
export interface ExpandNode extends Base {
  readonly op: "expand";
  readonly x: ValueId;
}
/** Constant padding: `low[i]` values before and `high[i]` after axis i, all >= 0. */
export interface PadNode extends Base {
  readonly op: "pad";
  readonly x: ValueId;
  readonly low: readonly number[];
  readonly high: readonly number[];
  readonly value: number;
}
/** Strided window per axis: start <= stop within the axis, step >= 1; size ceil((stop-start)/step). */
export interface SliceNode extends Base {
  readonly op: "slice";
  readonly x: ValueId;
  readonly start: readonly number[];
  readonly stop: readonly number[];
  readonly step: readonly number[];
}
export interface FlipNode extends Base {
  readonly op: "flip";
  readonly x: ValueId;
  readonly axes: readonly number[];
}
export interface DotNode extends Base {
  readonly op: "dot";
  readonly lhs: ValueId;
  readonly rhs: ValueId;
}
/**
 * PyTorch `gather` on equal shapes: out[p] = x[p with p[axis] := index[p]].
 * `index` is i32 with x's shape except along `axis`; the output has index's shape.
 */
export interface GatherNode extends Base {
  readonly op: "gather";
  readonly x: ValueId;
  readonly index: ValueId;
  readonly axis: number;
}

export type Node =
  | InputNode
  | ConstNode
  | IotaNode
  | RngNode
  | UnaryNode
  | CastNode
  | BinaryNode
  | WhereNode
  | ReduceNode
  | ReshapeNode
  | PermuteNode
  | ExpandNode
  | PadNode
  | SliceNode
  | FlipNode
  | DotNode
  | GatherNode;

export type Op = Node["op"];
/** A node before it is given an id and a type: what the builder and parser construct. */
export type NodeSpec = Node extends infer N ? (N extends Node ? Omit<N, "id" | "type"> : never) : never;

export interface GraphOutput {
  readonly name: string;
  readonly value: ValueId;
  /** Name of the input this output replaces (a parameter or optimizer state updated in place). */
  readonly aliases?: string;
}

/**
 * A graph is a value: passes return new graphs and never mutate their input.
 * `nodes` is in topological order (every operand is defined earlier); the input nodes
 * are listed in `inputs` in calling order.
 */
export interface Graph {
  readonly name: string;
  readonly nodes: readonly Node[];
  readonly inputs: readonly ValueId[];
  readonly outputs: readonly GraphOutput[];
}

export const isUnaryOp = (op: string): op is UnaryOp => (UNARY_OPS as readonly string[]).includes(op);
export const isBinaryOp = (op: string): op is BinaryOp => (BINARY_OPS as readonly string[]).includes(op);
export const isReduceOp = (op: string): op is ReduceOp => (REDUCE_OPS as readonly string[]).includes(op);
export const isMovementOp = (op: string): op is MovementOp => (MOVEMENT_OPS as readonly string[]).includes(op);
export const isComparison = (op: BinaryOp): boolean => op === "cmplt" || op === "cmpeq";

/** A node or spec of a unary op: lets a `switch (n.op)` after it end in assertNever without listing unary ops. */
export const hasUnaryOp = <N extends { readonly op: string }>(n: N): n is Extract<N, { readonly op: UnaryOp }> => isUnaryOp(n.op);
/** A node or spec of a binary op (see hasUnaryOp). */
export const hasBinaryOp = <N extends { readonly op: string }>(n: N): n is Extract<N, { readonly op: BinaryOp }> => isBinaryOp(n.op);
