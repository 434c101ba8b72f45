// The one op schema of the graph IR: for each op, its operands by role name in order, its
// attributes and how they print, and its rewrite role. Operand iteration, remapping (the
// builder's copy, the rewrite engine), the printer and the parser read it instead of each
// listing ops; the table is checked against the Node types, so a new op, operand or
// attribute that the schema misses does not compile.

import type {
  BinaryNode,
  CastNode,
  ConstNode,
  DotNode,
  GatherNode,
  InputNode,
  IotaNode,
  Node,
  NodeSpec,
  Op,
  PadNode,
  PermuteNode,
  ReduceNode,
  ReshapeNode,
  RngNode,
  SliceNode,
  ExpandNode,
  FlipNode,
  UnaryNode,
  ValueId,
  WhereNode,
} from "./types.ts";

/**
 * What a rewrite or fusion pass may assume of an op:
 * - source: no tensor operands read per element (graph inputs, constants, iota, rng's scalar seed);
 * - elementwise: output[i] depends on each operand at i only;
 * - reduce: reduces `axes` of x (kept as size 1);
 * - movement: output[i] is x at an index map of i (a view: folds into loads);
 * - contraction: sums products over a contracted axis (dot);
 * - gather: reads x at a position taken from another tensor's values.
 */
export type OpRole = "source" | "elementwise" | "reduce" | "movement" | "contraction" | "gather";

/** The node types of each role: the schema's role column is checked against it. */
export interface RoleNodes {
  readonly source: InputNode | ConstNode | IotaNode | RngNode;
  readonly elementwise: UnaryNode | CastNode | BinaryNode | WhereNode;
  readonly reduce: ReduceNode;
  readonly movement: ReshapeNode | PermuteNode | ExpandNode | PadNode | SliceNode | FlipNode;
  readonly contraction: DotNode;
  readonly gather: GatherNode;
}

/** How an attribute prints and parses: an integer, a list of integers, any number, a quoted string. */
export type AttrKind = "int" | "ints" | "number" | "string";

/** The node type of op K (a node type whose `op` union includes K). */
export type NodeOf<K extends Op> = Node extends infer N ? (N extends Node ? (K extends N["op"] ? N : never) : never) : never;
/** Fields of a node that hold an operand. */
export type OperandKey<N> = { [P in keyof N]-?: P extends "id" ? never : N[P] extends ValueId ? P : never }[keyof N];
/** Fields of a node that hold an attribute (everything but id, type, loc, scope, op, operands and an input's symbolic marks, which its type prints). */
export type AttrKey<N> = Exclude<keyof N, "id" | "type" | "loc" | "scope" | "op" | "symbolic" | "dimMax" | OperandKey<N>>;
type RoleOf<K extends Op> = { [R in OpRole]: K extends RoleNodes[R]["op"] ? R : never }[OpRole];

export interface OpSchema<K extends Op = Op> {
  readonly role: RoleOf<K>;
  /** Operand fields in role order: what `operands(n)` returns and printing lists. */
  readonly operands: readonly OperandKey<NodeOf<K>>[];
  /** Attributes in printing order, each with its kind. */
  readonly attrs: { readonly [A in AttrKey<NodeOf<K>>]: AttrKind };
  /** `positional` (default): `op %a, %b`; `keyword`: `op seed=%a` (an operand that reads like a setting). */
  readonly operandStyle?: "positional" | "keyword";
  /** An attribute written alone after the op (`const 0.5`, `input "x"`), not as `key=value`. */
  readonly literal?: AttrKey<NodeOf<K>>;
}

const unary = { role: "elementwise", operands: ["x"], attrs: {} } as const;
const binary = { role: "elementwise", operands: ["x", "y"], attrs: {} } as const;
const reduce = { role: "reduce", operands: ["x"], attrs: { axes: "ints" } } as const;

export const OP_SCHEMA = {
  input: { role: "source", operands: [], attrs: { name: "string" }, literal: "name" },
  const: { role: "source", operands: [], attrs: { value: "number" }, literal: "value" },
  iota: { role: "source", operands: [], attrs: { axis: "int" } },
  rng: { role: "source", operands: ["seed"], attrs: { stream: "int" }, operandStyle: "keyword" },
  neg: unary,
  exp2: unary,
  log2: unary,
  sin: unary,
  sqrt: unary,
  recip: unary,
  cast: unary,
  add: binary,
  mul: binary,
  max: binary,
  cmplt: binary,
  cmpeq: binary,
  idiv: binary,
  mod: binary,
  where: { role: "elementwise", operands: ["cond", "x", "y"], attrs: {} },
  reduce_sum: reduce,
  reduce_max: reduce,
  reshape: { role: "movement", operands: ["x"], attrs: {} },
  permute: { role: "movement", operands: ["x"], attrs: { perm: "ints" } },
  expand: { role: "movement", operands: ["x"], attrs: {} },
  pad: { role: "movement", operands: ["x"], attrs: { low: "ints", high: "ints", value: "number" } },
  slice: { role: "movement", operands: ["x"], attrs: { start: "ints", stop: "ints", step: "ints" } },
  flip: { role: "movement", operands: ["x"], attrs: { axes: "ints" } },
  dot: { role: "contraction", operands: ["lhs", "rhs"], attrs: {} },
  gather: { role: "gather", operands: ["x", "index"], attrs: { axis: "int" } },
} as const satisfies { readonly [K in Op]: OpSchema<K> };

// Compile-time: every operand field of every node type is listed in its op's `operands`.
// (Attributes are covered by the mapped `attrs` type above; a missing one does not compile.)
type UnlistedOperands = { [K in Op]: Exclude<OperandKey<NodeOf<K>>, (typeof OP_SCHEMA)[K]["operands"][number]> }[Op];
const everyOperandListed: [UnlistedOperands] extends [never] ? true : UnlistedOperands = true;
void everyOperandListed;

/** Every op of the graph IR, in schema order. */
export const OPS: readonly Op[] = Object.keys(OP_SCHEMA) as Op[];

export const isOp = (s: string): s is Op => Object.hasOwn(OP_SCHEMA, s);
export const opSchema = <K extends Op>(op: K): OpSchema<K> => OP_SCHEMA[op] as unknown as OpSchema<K>;
export const opRole = (op: Op): OpRole => OP_SCHEMA[op].role;

/** Operand ids of a node, in role order. */
export function operands(n: Node): ValueId[] {
  const roles = OP_SCHEMA[n.op].operands as readonly string[];
  const fields = n as unknown as Readonly<Record<string, ValueId>>;
  return roles.map((r) => fields[r]!);
}

/** `n` (or a spec) as a NodeSpec with every operand passed through `remap`: the usual move of a rewriting pass. */
export function remapOperands(n: Node | NodeSpec, remap: (id: ValueId) => ValueId): NodeSpec {
  const { id: _id, type: _type, ...rest } = n as Node;
  const spec = rest as Record<string, unknown>; // a fresh object already
  for (const r of OP_SCHEMA[n.op].operands as readonly string[]) spec[r] = remap(spec[r] as ValueId);
  return spec as unknown as NodeSpec;
}

/** A node viewed by its role: switching on `role` narrows `node` to that role's node types. */
export type RoleView = { [R in OpRole]: { readonly role: R; readonly node: RoleNodes[R] } }[OpRole];

/** Sound because the schema's role column is typed by RoleNodes (RoleOf). */
export const roleView = (n: Node): RoleView => ({ role: OP_SCHEMA[n.op].role, node: n }) as RoleView;
