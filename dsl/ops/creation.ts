// Tensor creation inside a traced function (torch.zeros/ones/full/arange and *Like):
// constants and iota broadcast to a shape, so they fold into whatever consumes them.
// Outside a trace there is no graph to add to, and these throw a usage error.

import type { DType } from "../../compiler/ir/dtype.ts";
import { type Tensor, prim, userError, type Scalar } from "../tensor.ts";
import { constant } from "./broadcast.ts";
import { requireTrace } from "../trace.ts";
import * as E from "./elementwise.ts";

function checkShape(shape: readonly number[], op: string): readonly number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    return userError("invalid-argument", `${op}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  return shape;
}

/** The dtype PyTorch infers for a fill value: bool, integer → i32, otherwise f32. */
const dtypeOfValue = (value: Scalar): DType => (typeof value === "boolean" ? "bool" : Number.isInteger(value) ? "i32" : "f32");

export function full(shape: readonly number[], value: Scalar, dtype: DType = dtypeOfValue(value)): Tensor {
  const trace = requireTrace("k.full");
  return constant(trace, value, dtype, checkShape(shape, "full"));
}
export const zeros = (shape: readonly number[], dtype: DType = "f32"): Tensor => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = "f32"): Tensor => full(shape, 1, dtype);
/** A 0-d tensor holding `value` (torch.tensor(3.5)). */
export const scalar = (value: Scalar, dtype: DType = dtypeOfValue(value)): Tensor => full([], value, dtype);

export const fullLike = (x: Tensor, value: Scalar, dtype: DType = x.dtype): Tensor => constant(x.trace, value, dtype, x.shape);
export const zerosLike = (x: Tensor, dtype: DType = x.dtype): Tensor => constant(x.trace, 0, dtype, x.shape);
export const onesLike = (x: Tensor, dtype: DType = x.dtype): Tensor => constant(x.trace, 1, dtype, x.shape);

/**
 * torch.arange: arange(end), arange(start, end, step?). i32 when every argument is an
 * integer, f32 otherwise; ceil((end - start) / step) values.
 */
export function arange(startOrEnd: number, end?: number, step = 1): Tensor {
  const trace = requireTrace("k.arange");
  const start = end === undefined ? 0 : startOrEnd;
  const stop = end === undefined ? startOrEnd : end;
  if (step === 0 || !Number.isFinite(step) || !Number.isFinite(start) || !Number.isFinite(stop))
    return userError("invalid-argument", `arange: needs finite bounds and a non-zero step, got start ${start}, end ${stop}, step ${step}`);
  const count = Math.max(0, Math.ceil((stop - start) / step));
  const dtype: DType = [start, stop, step].every(Number.isInteger) ? "i32" : "f32";
  const position = prim(trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [count] });
  const scaled = step === 1 ? E.cast(position, dtype) : E.mul(E.cast(position, dtype), step);
  return start === 0 ? scaled : E.add(scaled, start);
}
