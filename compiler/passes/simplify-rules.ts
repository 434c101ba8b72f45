// The simplify pass's rules: constant folding and algebraic identities, one small rule
// per job. Every rule keeps the value's type and is exact for f32: folding evaluates in
// float64 and rounds with Math.fround after each op, which is the IEEE single-precision
// result an f32 backend computes for +, *, neg, max and comparisons (double has enough
// bits that one op then one rounding is correctly rounded). exp2/log2/sin/sqrt/recip fold
// to the correctly rounded value; a GPU's approximations may differ from it by a few ulps.
// Folds producing NaN or ±Infinity are left in the graph (x*0 is never folded either:
// it is NaN for an infinite x).

import { floatToI32, floorDivI32, floorModI32 } from "../ir/interpret-compute.ts";
import { hasBinaryOp, hasUnaryOp, type BinaryOp, type Node, type NodeSpec, type UnaryOp, type ValueId } from "../ir/types.ts";
import { isFloat, type DType } from "../ir/dtype.ts";
import { roleView } from "../ir/op-schema.ts";
import { assertNever } from "../util/errors.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import { numel } from "../util/shape.ts";
import type { NamedRule, RewriteView, Rule } from "./rewrite.ts";

// ---- scalar evaluation of primitives on constants ----

/** Rounds a float64 to what a `dtype` value holds. */
export function roundTo(dtype: DType, v: number): number {
  switch (dtype) {
    case "f32":
      return Math.fround(v);
    case "f16":
      return roundToHalf(v);
    case "bf16":
      return roundToBfloat16(v);
    case "i32":
      return v | 0;
    case "bool":
      return v !== 0 ? 1 : 0;
    default:
      return assertNever(dtype, "dtype");
  }
}

type Folded = number | undefined;

/** A unary op on one f32 constant; the inputs are already f32 values. */
function evalUnary(op: UnaryOp, a: number): Folded {
  switch (op) {
    case "neg":
      return -a;
    case "exp2":
      return Math.pow(2, a);
    case "log2":
      return Math.log2(a);
    case "sin":
      return Math.sin(a);
    case "sqrt":
      return Math.sqrt(a);
    case "recip":
      return 1 / a;
    default:
      return assertNever(op, "unary op");
  }
}

/** A binary op on constants of `dtype` (bool add/mul/max are or/and/or, like the interpreter). */
function evalBinary(op: BinaryOp, dtype: DType, a: number, b: number): Folded {
  switch (op) {
    case "add":
      return addIn(dtype, a, b);
    case "mul":
      return mulIn(dtype, a, b);
    case "max":
      return Math.max(a, b); // NaN propagates, then constOf declines to fold it
    case "cmplt":
      return a < b ? 1 : 0;
    case "cmpeq":
      return a === b ? 1 : 0;
    case "idiv":
      // Floor semantics as in the interpreter; a zero divisor is left for it to report.
      return b === 0 ? undefined : floorDivI32(a, b);
    case "mod":
      return b === 0 ? undefined : floorModI32(a, b);
    default:
      return assertNever(op, "binary op");
  }
}

/** a + b in `dtype`'s arithmetic (f32 rounds later, in constOf). */
function addIn(dtype: DType, a: number, b: number): number {
  switch (dtype) {
    case "f32":
    case "f16":
    case "bf16":
      return a + b;
    case "i32":
      return (a + b) | 0; // wraps like two's complement
    case "bool":
      return a || b ? 1 : 0; // logical or
    default:
      return assertNever(dtype, "dtype");
  }
}

/** a * b in `dtype`'s arithmetic (f32 rounds later, in constOf). */
function mulIn(dtype: DType, a: number, b: number): number {
  switch (dtype) {
    case "f32":
    case "f16":
    case "bf16":
      return a * b;
    case "i32":
      return Math.imul(a, b);
    case "bool":
      return a && b ? 1 : 0; // logical and
    default:
      return assertNever(dtype, "dtype");
  }
}

/** A cast of one constant, with the interpreter's semantics (f32 → i32 truncates and saturates). */
function evalCast(from: DType, to: DType, a: number): Folded {
  switch (to) {
    case "bool":
      return a !== 0 ? 1 : 0;
    case "i32":
      return isFloat(from) ? floatToI32(a) : a;
    case "f32":
    case "f16":
    case "bf16":
      return a; // rounded to `to` in constOf
    default:
      return assertNever(to, "dtype");
  }
}

// ---- helpers for rules ----

/** The literal of a const operand, as written (movement folds keep it unchanged). */
function literalOf(g: RewriteView, id: ValueId): number | undefined {
  const n = g.node(id);
  return n.op === "const" ? n.value : undefined;
}

/** The value an operand holds on a backend: an f32 literal is rounded to f32 first. */
function constValue(g: RewriteView, id: ValueId): number | undefined {
  const n = g.node(id);
  return n.op === "const" ? roundTo(n.type.dtype, n.value) : undefined;
}

const isConstant = (g: RewriteView, id: ValueId, value: number): boolean => constValue(g, id) === value;

/**
 * A const node of n's type, or undefined when the folded value is not an ordinary number:
 * NaN, ±Infinity and -0 stay unfolded (the text form spells none of them, and -0 matters
 * to a later recip).
 */
function constOf(n: Node, value: Folded): NodeSpec | undefined {
  if (value === undefined) return undefined;
  const rounded = roundTo(n.type.dtype, value);
  if (!Number.isFinite(rounded) || Object.is(rounded, -0)) return undefined;
  return { op: "const", value: rounded };
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

// ---- constant folding ----

/** A movement op of a fill is the same fill in the new shape (pad only when it pads with the fill value). */
const foldMovementOfConst: Rule = (n, g) => {
  const view = roleView(n);
  if (view.role !== "movement") return undefined;
  const v = literalOf(g, view.node.x);
  if (v === undefined) return undefined;
  if (view.node.op === "pad" && view.node.value !== v) return undefined;
  return { op: "const", value: v };
};

const foldUnaryConst: Rule = (n, g) => {
  if (!hasUnaryOp(n)) return undefined;
  const a = constValue(g, n.x);
  return a === undefined ? undefined : constOf(n, evalUnary(n.op, a));
};

const foldBinaryConst: Rule = (n, g) => {
  if (!hasBinaryOp(n)) return undefined;
  const a = constValue(g, n.x);
  const b = constValue(g, n.y);
  if (a === undefined || b === undefined) return undefined;
  return constOf(n, evalBinary(n.op, g.node(n.x).type.dtype, a, b));
};

const foldCastConst: Rule = (n, g) => {
  if (n.op !== "cast") return undefined;
  const a = constValue(g, n.x);
  return a === undefined ? undefined : constOf(n, evalCast(g.node(n.x).type.dtype, n.type.dtype, a));
};

/**
 * reduce_max of a fill is the fill; reduce_sum is count × fill, folded only where every
 * partial sum is exact (i32 always, wrapping; f32 for integers up to 2^24), so the result
 * does not depend on a backend's summation order.
 */
const foldReduceConst: Rule = (n, g) => {
  if (n.op !== "reduce_sum" && n.op !== "reduce_max") return undefined;
  const a = constValue(g, n.x);
  if (a === undefined) return undefined;
  const count = numel(n.axes.map((axis) => g.node(n.x).type.shape[axis]!));
  if (n.op === "reduce_max") return count > 0 ? { op: "const", value: literalOf(g, n.x)! } : undefined;
  switch (n.type.dtype) {
    case "i32":
      return constOf(n, Math.imul(a, count));
    case "f32":
    case "f16":
    case "bf16": // summed in f32 and rounded once on every target, like the const rounded in constOf
      return Number.isInteger(a) && Math.abs(a * count) <= 2 ** 24 ? constOf(n, a * count) : undefined;
    case "bool":
      return undefined; // the type rules refuse reducing bool
    default:
      return assertNever(n.type.dtype, "dtype");
  }
};

/** gather from a fill picks the fill everywhere. */
const foldGatherOfConst: Rule = (n, g) => {
  if (n.op !== "gather") return undefined;
  const v = literalOf(g, n.x);
  return v === undefined ? undefined : { op: "const", value: v };
};

// ---- algebraic identities ----

const dropMulByOne: Rule = (n, g) => {
  if (n.op !== "mul") return undefined;
  if (isConstant(g, n.y, 1)) return n.x;
  if (isConstant(g, n.x, 1)) return n.y;
  return undefined;
};

/** x + 0 → x (for f32 this turns -0 + 0 = +0 into -0, which compares equal). */
const dropAddZero: Rule = (n, g) => {
  if (n.op !== "add") return undefined;
  if (isConstant(g, n.y, 0)) return n.x;
  if (isConstant(g, n.x, 0)) return n.y;
  return undefined;
};

const dropDoubleNegation: Rule = (n, g) => {
  if (n.op !== "neg") return undefined;
  const inner = g.node(n.x);
  return inner.op === "neg" ? inner.x : undefined;
};

const dropSameTypeCast: Rule = (n, g) => (n.op === "cast" && g.node(n.x).type.dtype === n.type.dtype ? n.x : undefined);

const dropSameShapeReshape: Rule = (n, g) => (n.op === "reshape" && sameShape(g.node(n.x).type.shape, n.type.shape) ? n.x : undefined);

const mergeReshapes: Rule = (n, g) => {
  if (n.op !== "reshape") return undefined;
  const inner = g.node(n.x);
  return inner.op === "reshape" ? { op: "reshape", x: inner.x } : undefined;
};

const dropIdentityPermute: Rule = (n) => (n.op === "permute" && n.perm.every((p, i) => p === i) ? n.x : undefined);

/** permute(permute(x, inner), outer) reads x[inner[outer[i]]] on axis i. */
const mergePermutes: Rule = (n, g) => {
  if (n.op !== "permute") return undefined;
  const inner = g.node(n.x);
  if (inner.op !== "permute") return undefined;
  return { op: "permute", x: inner.x, perm: n.perm.map((p) => inner.perm[p]!) };
};

const dropSameShapeExpand: Rule = (n, g) => (n.op === "expand" && sameShape(g.node(n.x).type.shape, n.type.shape) ? n.x : undefined);

/** An axis is size 1 in x wherever the inner expand grew it, so one expand does both. */
const mergeExpands: Rule = (n, g) => {
  if (n.op !== "expand") return undefined;
  const inner = g.node(n.x);
  return inner.op === "expand" ? { op: "expand", x: inner.x } : undefined;
};

/**
 * A reduction over axes of size 1 keeps each element as is (reductions keep their axes);
 * like x + 0, a sum turns a -0 into +0 on the interpreter, which compares equal.
 */
const dropReduceOverUnitAxes: Rule = (n, g) => {
  if (n.op !== "reduce_sum" && n.op !== "reduce_max") return undefined;
  const shape = g.node(n.x).type.shape;
  return n.axes.every((axis) => shape[axis] === 1) ? n.x : undefined;
};

const selectByConstCondition: Rule = (n, g) => {
  if (n.op !== "where") return undefined;
  const c = constValue(g, n.cond);
  return c === undefined ? undefined : c !== 0 ? n.x : n.y;
};

const dropWhereOfEqualBranches: Rule = (n) => (n.op === "where" && n.x === n.y ? n.x : undefined);

/** Folding first (it makes constants the identities look for), then identities; each named for dumps and logs. */
export const SIMPLIFY_RULES: readonly NamedRule[] = [
  { name: "fold-movement-of-const", rule: foldMovementOfConst },
  { name: "fold-unary-const", rule: foldUnaryConst },
  { name: "fold-binary-const", rule: foldBinaryConst },
  { name: "fold-cast-const", rule: foldCastConst },
  { name: "fold-reduce-const", rule: foldReduceConst },
  { name: "fold-gather-of-const", rule: foldGatherOfConst },
  { name: "drop-mul-by-one", rule: dropMulByOne },
  { name: "drop-add-zero", rule: dropAddZero },
  { name: "drop-double-negation", rule: dropDoubleNegation },
  { name: "drop-same-type-cast", rule: dropSameTypeCast },
  { name: "drop-same-shape-reshape", rule: dropSameShapeReshape },
  { name: "merge-reshapes", rule: mergeReshapes },
  { name: "drop-identity-permute", rule: dropIdentityPermute },
  { name: "merge-permutes", rule: mergePermutes },
  { name: "drop-same-shape-expand", rule: dropSameShapeExpand },
  { name: "merge-expands", rule: mergeExpands },
  { name: "drop-reduce-over-unit-axes", rule: dropReduceOverUnitAxes },
  { name: "select-by-const-condition", rule: selectByConstCondition },
  { name: "drop-where-of-equal-branches", rule: dropWhereOfEqualBranches },
];
