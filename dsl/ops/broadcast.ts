// The shape primitives every op builds on: reshape, expand (= broadcastTo), scalar constants
// and broadcasting a list of tensors to one shape. They sit below elementwise.ts (which
// broadcasts its operands) and movement.ts (which re-exports them and uses elementwise ops),
// so neither needs the other to be loaded first and the imports stay acyclic.

import { dtypeKind, type DType } from "../../compiler/ir/dtype.ts";
import { assertNever } from "../../compiler/util/errors.ts";
import { broadcastShapes, formatShape, numel, type Shape } from "../../compiler/util/shape.ts";
import { type Tensor, type Trace, prim, userError } from "../tensor.ts";

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const inferAt = shape.indexOf(-1);
  if (shape.filter((d) => d === -1).length > 1) return userError("invalid-argument", `reshape: only one dim may be -1, got ${formatShape(shape)}`);
  const target = [...shape];
  if (inferAt >= 0) {
    const rest = numel(shape.filter((d) => d !== -1));
    if (rest === 0 || x.numel() % rest !== 0)
      return userError("shape-mismatch", `shape mismatch in reshape: cannot reshape ${formatShape(x.shape)} to ${formatShape(shape)}`);
    target[inferAt] = x.numel() / rest;
  }
  if (target.some((d) => !Number.isInteger(d) || d < 0) || numel(target) !== x.numel())
    return userError("shape-mismatch", `shape mismatch in reshape: cannot reshape ${formatShape(x.shape)} (${x.numel()} elements) to ${formatShape(shape)}`);
  if (target.length === x.ndim && target.every((d, i) => d === x.shape[i])) return x;
  return prim(x.trace, { op: "reshape", x: x.id }, { dtype: x.dtype, shape: target });
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) return userError("shape-mismatch", `shape mismatch in expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  const lead = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead]! : d));
  const ok = x.shape.every((d, i) => d === target[i + lead] || d === 1) && target.every((d) => Number.isInteger(d) && d >= 0);
  if (!ok) return userError("shape-mismatch", `shape mismatch in expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  const lifted = lead > 0 ? reshape(x, [...Array(lead).fill(1), ...x.shape]) : x;
  if (lifted.shape.every((d, i) => d === target[i])) return lifted;
  return prim(x.trace, { op: "expand", x: lifted.id }, { dtype: x.dtype, shape: target });
}

export const broadcastTo = expand;

/** A JS number as a constant of `dtype`: bool is 0/1, integers truncate toward zero. */
function constantIn(dtype: DType, value: number): number {
  const kind = dtypeKind(dtype);
  switch (kind) {
    case "bool":
      return value ? 1 : 0;
    case "int":
      return Math.trunc(value);
    case "float":
      return value;
    default:
      return assertNever(kind, "dtype kind");
  }
}

/** A scalar constant of `dtype`, broadcast to `shape`. */
export function constant(trace: Trace, value: number | boolean, dtype: DType, shape: Shape = []): Tensor {
  const v = typeof value === "boolean" ? (value ? 1 : 0) : constantIn(dtype, value);
  const scalar = prim(trace, { op: "const", value: v }, { dtype, shape: [] });
  return shape.length === 0
    ? scalar
    : expand(
        reshape(
          scalar,
          shape.map(() => 1),
        ),
        shape,
      );
}

export function broadcastTensors(ts: readonly Tensor[], op: string): Tensor[] {
  let shape: number[] | undefined = [];
  for (const t of ts) {
    shape = broadcastShapes(shape!, t.shape);
    if (!shape) userError("shape-mismatch", `shape mismatch in ${op}: cannot broadcast ${ts.map((x) => formatShape(x.shape)).join(" and ")}`);
  }
  return ts.map((t) => broadcastTo(t, shape!));
}
