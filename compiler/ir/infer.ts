// Type rules of the primitives, in one place: the builder (while tracing), the parser and
// the verifier all ask `inferType`. A rule violation comes back as a message string; the
// caller decides whether it is a user diagnostic (with the user's line) or a verifier error.

import { formatShape, numel, shapesEqual, type Shape } from "../util/shape.ts";
import { hasBinaryOp, hasUnaryOp, isComparison, type NodeSpec, type TensorType, type ValueId } from "./types.ts";
import { DTYPES, isBool, isFloat, isInt, type DType } from "./dtype.ts";
import { assertNever } from "../util/errors.ts";

export type TypeOf = (id: ValueId) => TensorType | undefined;

export const formatType = (t: TensorType): string => `${t.dtype}${formatShape(t.shape)}`;

export const typesEqual = (a: TensorType, b: TensorType): boolean => a.dtype === b.dtype && shapesEqual(a.shape, b.shape);

/** Ops whose result type is not derivable from operands: the spec must declare it. */
export const DECLARES_TYPE = new Set(["input", "const", "iota", "rng", "reshape", "expand", "cast"]);

export class TypeRuleError extends Error {}

const fail = (msg: string): never => {
  throw new TypeRuleError(msg);
};

function isPermutation(perm: readonly number[], rank: number): boolean {
  if (perm.length !== rank) return false;
  const seen = new Set(perm);
  return seen.size === rank && perm.every((p) => Number.isInteger(p) && p >= 0 && p < rank);
}

function checkAxes(axes: readonly number[], rank: number, op: string): void {
  for (let i = 0; i < axes.length; i++) {
    const a = axes[i]!;
    if (!Number.isInteger(a) || a < 0 || a >= rank) fail(`${op}: axis ${a} out of range for rank ${rank}`);
    if (i > 0 && a <= axes[i - 1]!) fail(`${op}: axes [${axes.join(",")}] must be sorted and unique`);
  }
}

function validShape(shape: Shape): boolean {
  return shape.every((d) => Number.isInteger(d) && d >= 0);
}

/**
 * Infers (or, for ops in DECLARES_TYPE, checks) the result type of `spec`.
 * `declared` is the type the caller says the node has; it is required for DECLARES_TYPE ops
 * and, when given for others, must equal the inferred type.
 */
export function inferType(spec: NodeSpec, typeOf: TypeOf, declared?: TensorType): TensorType {
  const operand = (id: ValueId, role: string): TensorType => typeOf(id) ?? fail(`${spec.op}: operand ${role} is not defined`);
  let out: TensorType;
  const need = (): TensorType => declared ?? fail(`${spec.op}: result type must be declared`);
  if (declared && !validShape(declared.shape)) fail(`${spec.op}: invalid shape ${formatShape(declared.shape)}`);
  if (declared && !DTYPES.includes(declared.dtype)) fail(`${spec.op}: unknown dtype ${String(declared.dtype)}`);

  if (hasUnaryOp(spec)) {
    const x = operand(spec.x, "x");
    if (!isFloat(x.dtype)) fail(`${spec.op}: operand must be a float, got ${x.dtype}`);
    out = x;
  } else if (hasBinaryOp(spec)) {
    const x = operand(spec.x, "x");
    const y = operand(spec.y, "y");
    if (!shapesEqual(x.shape, y.shape)) fail(`${spec.op}: operand shapes differ: ${formatShape(x.shape)} vs ${formatShape(y.shape)}`);
    if (x.dtype !== y.dtype) fail(`${spec.op}: operand dtypes differ: ${x.dtype} vs ${y.dtype}`);
    const op = spec.op;
    if ((op === "idiv" || op === "mod") && !isInt(x.dtype)) fail(`${op}: operands must be integers, got ${x.dtype}`);
    // bool add/mul/max are logical or/and/or: allowed.
    out = isComparison(op) ? { dtype: "bool" as DType, shape: x.shape } : x;
  } else
    switch (spec.op) {
      case "input":
        out = need();
        break;
      case "const":
        out = need();
        if (!isFloat(declared!.dtype) && !Number.isInteger(spec.value)) fail(`const: value ${spec.value} is not a valid ${declared!.dtype}`);
        if (isBool(declared!.dtype) && spec.value !== 0 && spec.value !== 1) fail(`const: bool value must be 0 or 1, got ${spec.value}`);
        break;
      case "iota":
        out = need();
        if (out.dtype !== "i32") fail(`iota: result must be i32, got ${out.dtype}`);
        if (!Number.isInteger(spec.axis) || spec.axis < 0 || spec.axis >= out.shape.length)
          fail(`iota: axis ${spec.axis} out of range for rank ${out.shape.length}`);
        break;
      case "rng": {
        out = need();
        const seed = operand(spec.seed, "seed");
        if (seed.dtype !== "i32" || seed.shape.length !== 0) fail(`rng: seed must be i32[], got ${formatType(seed)}`);
        if (out.dtype !== "f32") fail(`rng: result must be f32, got ${out.dtype}`);
        if (!Number.isInteger(spec.stream) || spec.stream < 0) fail(`rng: stream must be a non-negative integer`);
        break;
      }
      case "cast": {
        const x = operand(spec.x, "x");
        out = need();
        if (!shapesEqual(x.shape, out.shape)) fail(`cast: shape ${formatShape(x.shape)} must not change (declared ${formatShape(out.shape)})`);
        break;
      }
      case "where": {
        const c = operand(spec.cond, "cond");
        const x = operand(spec.x, "x");
        const y = operand(spec.y, "y");
        if (c.dtype !== "bool") fail(`where: cond must be bool, got ${c.dtype}`);
        if (!shapesEqual(c.shape, x.shape) || !shapesEqual(x.shape, y.shape))
          fail(`where: operand shapes differ: cond ${formatShape(c.shape)}, x ${formatShape(x.shape)}, y ${formatShape(y.shape)}`);
        if (x.dtype !== y.dtype) fail(`where: x and y dtypes differ: ${x.dtype} vs ${y.dtype}`);
        out = x;
        break;
      }
      case "reduce_sum":
      case "reduce_max": {
        const x = operand(spec.x, "x");
        checkAxes(spec.axes, x.shape.length, spec.op);
        if (isBool(x.dtype)) fail(`${spec.op}: cannot reduce bool (cast first)`);
        out = { dtype: x.dtype, shape: x.shape.map((d, i) => (spec.axes.includes(i) ? 1 : d)) };
        break;
      }
      case "reshape": {
        const x = operand(spec.x, "x");
        out = need();
        if (out.dtype !== x.dtype) fail(`reshape: dtype must not change`);
        if (numel(out.shape) !== numel(x.shape))
          fail(`reshape: cannot reshape ${formatShape(x.shape)} (${numel(x.shape)} elements) to ${formatShape(out.shape)} (${numel(out.shape)} elements)`);
        break;
      }
      case "expand": {
        const x = operand(spec.x, "x");
        out = need();
        if (out.dtype !== x.dtype) fail(`expand: dtype must not change`);
        if (out.shape.length !== x.shape.length || x.shape.some((d, i) => d !== 1 && d !== out.shape[i]))
          fail(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(out.shape)} (only size-1 axes expand, rank is kept)`);
        break;
      }
      case "permute": {
        const x = operand(spec.x, "x");
        if (!isPermutation(spec.perm, x.shape.length)) fail(`permute: [${spec.perm.join(",")}] is not a permutation of rank ${x.shape.length}`);
        out = { dtype: x.dtype, shape: spec.perm.map((p) => x.shape[p]!) };
        break;
      }
      case "pad": {
        const x = operand(spec.x, "x");
        const r = x.shape.length;
        if (spec.low.length !== r || spec.high.length !== r) fail(`pad: low/high must have ${r} entries`);
        if ([...spec.low, ...spec.high].some((p) => !Number.isInteger(p) || p < 0)) fail(`pad: amounts must be non-negative integers`);
        if (!isFloat(x.dtype) && !Number.isInteger(spec.value)) fail(`pad: value ${spec.value} is not a valid ${x.dtype}`);
        out = { dtype: x.dtype, shape: x.shape.map((d, i) => d + spec.low[i]! + spec.high[i]!) };
        break;
      }
      case "slice": {
        const x = operand(spec.x, "x");
        const r = x.shape.length;
        if (spec.start.length !== r || spec.stop.length !== r || spec.step.length !== r) fail(`slice: start/stop/step must have ${r} entries`);
        const shape = x.shape.map((d, i) => {
          const [a, b, s] = [spec.start[i]!, spec.stop[i]!, spec.step[i]!];
          if (![a, b, s].every(Number.isInteger) || s < 1 || a < 0 || b < a || b > d)
            fail(`slice: axis ${i} needs 0 <= start <= stop <= ${d} and step >= 1, got ${a}:${b}:${s}`);
          return Math.ceil((b - a) / s);
        });
        out = { dtype: x.dtype, shape };
        break;
      }
      case "flip": {
        const x = operand(spec.x, "x");
        checkAxes(spec.axes, x.shape.length, "flip");
        out = x;
        break;
      }
      case "dot": {
        const a = operand(spec.lhs, "lhs");
        const b = operand(spec.rhs, "rhs");
        const r = a.shape.length;
        if (r < 2 || b.shape.length !== r) fail(`dot: operands must have equal rank >= 2, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
        if (a.dtype !== b.dtype || isBool(a.dtype)) fail(`dot: operands must share a numeric dtype, got ${a.dtype} and ${b.dtype}`);
        if (!shapesEqual(a.shape.slice(0, -2), b.shape.slice(0, -2))) fail(`dot: batch dims differ: ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
        if (a.shape[r - 1] !== b.shape[r - 2]) fail(`dot: contraction dims differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
        out = { dtype: a.dtype, shape: [...a.shape.slice(0, -1), b.shape[r - 1]!] };
        break;
      }
      case "gather": {
        const x = operand(spec.x, "x");
        const idx = operand(spec.index, "index");
        const r = x.shape.length;
        if (idx.dtype !== "i32") fail(`gather: index must be i32, got ${idx.dtype}`);
        if (!Number.isInteger(spec.axis) || spec.axis < 0 || spec.axis >= r) fail(`gather: axis ${spec.axis} out of range for rank ${r}`);
        if (idx.shape.length !== r || idx.shape.some((d, i) => i !== spec.axis && d !== x.shape[i]))
          fail(`gather: index shape ${formatShape(idx.shape)} must equal x shape ${formatShape(x.shape)} except along axis ${spec.axis}`);
        out = { dtype: x.dtype, shape: idx.shape };
        break;
      }
      default:
        return assertNever(spec, "op");
    }
  if (declared && !typesEqual(declared, out)) fail(`${spec.op}: declared type ${formatType(declared)} but the rule gives ${formatType(out)}`);
  return out;
}
