// Shared plumbing for the composite NN ops: argument normalization (ints and pairs), and
// single-axis movement primitives (pad, slice, flip, iota) emitted directly with `prim`,
// so the composites depend only on the IR's primitives, not on higher-level Tensor methods.

import { isFloat, type DType } from "../../compiler/ir/dtype.ts";
import { bug } from "../../compiler/util/errors.ts";
import { formatShape } from "../../compiler/util/shape.ts";
import { Tensor, prim, requireTensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";

export type IntPair = number | readonly [number, number];

/** A number or [h, w] pair as [h, w], each an integer >= `min`. */
export function pair(value: IntPair, name: string, op: string, min: number): [number, number] {
  const p: readonly number[] = typeof value === "number" ? [value, value] : value;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= min))
    return userError("invalid-argument", `${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(value)}`);
  return [p[0]!, p[1]!];
}

export function positiveInt(value: number, name: string, op: string): number {
  if (!Number.isInteger(value) || value < 1) return userError("invalid-argument", `${op}: ${name} must be a positive integer, got ${value}`);
  return value;
}

/**
 * An optional tensor argument is a Tensor, null or absent. PyTorch's keyword habit puts an
 * options object there (`F.layerNorm(x, [4], { eps })`): say where the arguments go instead.
 */
export function optionalTensorArg(value: unknown, role: string, op: string, signature: string): void {
  if (value === undefined || value === null || value instanceof Tensor) return;
  const got = typeof value === "object" ? (Array.isArray(value) ? "an array" : "an object") : typeof value;
  userError("invalid-argument", `${op}: ${role} must be a tensor or null, got ${got} (the arguments are positional: ${signature})`);
}

export function requireFloat(x: Tensor, role: string, op: string): void {
  requireTensor(x, role, op);
  if (!isFloat(x.dtype)) userError("dtype-mismatch", `dtype mismatch in ${op}: ${role} must be f32, got ${x.dtype}${formatShape(x.shape)}`);
}

/** Pads `low` before and `high` after `axis` (both >= 0) with `value`. */
export function padAxis(x: Tensor, axis: number, low: number, high: number, value = 0): Tensor {
  if (low === 0 && high === 0) return x;
  const lows = x.shape.map((_, i) => (i === axis ? low : 0));
  const highs = x.shape.map((_, i) => (i === axis ? high : 0));
  return prim(x.trace, { op: "pad", x: x.id, low: lows, high: highs, value });
}

/** Pads several axes at once; amounts are per entry of `axes`. */
export function padAxes(x: Tensor, axes: readonly number[], low: readonly number[], high: readonly number[], value = 0): Tensor {
  if ([...low, ...high].every((p) => p === 0)) return x;
  const lows = x.shape.map((_, i) => (axes.includes(i) ? low[axes.indexOf(i)]! : 0));
  const highs = x.shape.map((_, i) => (axes.includes(i) ? high[axes.indexOf(i)]! : 0));
  return prim(x.trace, { op: "pad", x: x.id, low: lows, high: highs, value });
}

/** Elements start, start+step, … below stop along `axis`. */
export function sliceAxis(x: Tensor, axis: number, start: number, stop: number, step = 1): Tensor {
  if (start === 0 && stop === x.shape[axis] && step === 1) return x;
  const starts = x.shape.map((_, i) => (i === axis ? start : 0));
  const stops = x.shape.map((d, i) => (i === axis ? stop : d));
  const steps = x.shape.map((_, i) => (i === axis ? step : 1));
  return prim(x.trace, { op: "slice", x: x.id, start: starts, stop: stops, step: steps });
}

/** Grows (amount > 0, padding with `value`) or crops (amount < 0) each end of each axis. */
export function padOrCrop(x: Tensor, axes: readonly number[], low: readonly number[], high: readonly number[], value = 0): Tensor {
  let y = padAxes(
    x,
    axes,
    low.map((p) => Math.max(p, 0)),
    high.map((p) => Math.max(p, 0)),
    value,
  );
  axes.forEach((axis, i) => {
    const cropLow = Math.max(-low[i]!, 0);
    const cropHigh = Math.max(-high[i]!, 0);
    y = sliceAxis(y, axis, cropLow, y.shape[axis]! - cropHigh);
  });
  return y;
}

export function flipAxes(x: Tensor, axes: readonly number[]): Tensor {
  return prim(x.trace, { op: "flip", x: x.id, axes: [...axes].sort((a, b) => a - b) });
}

/** i32 tensor of `shape` holding each position's index along `axis`. */
export function iota(like: Tensor, shape: readonly number[], axis: number): Tensor {
  return prim(like.trace, { op: "iota", axis }, { dtype: "i32", shape });
}

export function fill(like: Tensor, value: number, dtype: DType, shape: readonly number[]): Tensor {
  const scalar = prim(like.trace, { op: "const", value }, { dtype, shape: [] });
  return M.expand(
    M.reshape(
      scalar,
      shape.map(() => 1),
    ),
    shape,
  );
}

/**
 * Sliding windows along one axis, from movement ops alone: [..., I, ...] -> [..., K, O, ...]
 * with out[k, o] = x[k*dilation + o*stride]. Tile x K times ([K, I] flattened), pad the end
 * by K*dilation so rows have length I + dilation, then row k starts k*dilation further in:
 * a strided slice of the columns picks the window starts. Windows that tile the axis
 * (stride = kernel, no dilation) are a reshape and a transpose instead. The caller ensures O >= 1.
 */
export function windows1d(x: Tensor, axis: number, kernel: number, stride: number, dilation: number): Tensor {
  const length = x.shape[axis]!;
  const before = x.shape.slice(0, axis);
  const after = x.shape.slice(axis + 1);
  const validStarts = length - (kernel - 1) * dilation;
  if (validStarts < 1) bug(`windows1d: axis of ${length} is shorter than the dilated kernel`);
  if (kernel === 1) return M.unsqueeze(sliceAxis(x, axis, 0, length, stride), axis);
  if (stride === kernel && dilation === 1) {
    // Non-overlapping windows (a 2×2 pool's): a reshape to [..., O, K, ...] and a swap, so the
    // gradient is a permute too instead of the tiled rows' overlap-add.
    const count = Math.floor(length / kernel);
    const blocks = M.reshape(sliceAxis(x, axis, 0, count * kernel), [...before, count, kernel, ...after]);
    return M.transpose(blocks, axis, axis + 1);
  }
  const tiled = M.expand(M.reshape(x, [...before, 1, length, ...after]), [...before, kernel, length, ...after]);
  const flat = M.reshape(tiled, [...before, kernel * length, ...after]);
  const padded = padAxis(flat, axis, 0, kernel * dilation);
  const rows = M.reshape(padded, [...before, kernel, length + dilation, ...after]);
  return sliceAxis(rows, axis + 1, 0, validStarts, stride);
}

/** Output length of a sliding window: floor((I - dilation*(K-1) - 1) / stride) + 1. */
export function windowCount(length: number, kernel: number, stride: number, dilation: number): number {
  return Math.floor((length - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Accepts [N, C, H, W] or unbatched [C, H, W]; returns the 4-d view and a function undoing it. */
export function asBatched4d(x: Tensor, op: string): { x4: Tensor; restore: (y: Tensor) => Tensor } {
  if (x.ndim === 4) return { x4: x, restore: (y) => y };
  if (x.ndim === 3) return { x4: M.unsqueeze(x, 0), restore: (y) => M.squeeze(y, 0) };
  return userError("shape-mismatch", `shape mismatch in ${op}: input must be [N,C,H,W] or [C,H,W], got ${formatShape(x.shape)}`);
}
