// Reductions: sum and max are primitives (kept dims); everything else (mean, var, argmax,
// logsumexp, cumsum, softmax…) is built from them, iota, where and movement ops here.
// Reduced dims are dropped unless keepdim, as in PyTorch; `dim` undefined means all dims.

import { isBool, isFloat } from "../../compiler/ir/dtype.ts";
import { keepdimOf, strictOptions, type KeepdimArg } from "../options.ts";
import { Tensor, dimIndex, dimList, prim, userError, type Dims } from "../tensor.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";
import { withOneLoc } from "../loc.ts";

function dropDims(x: Tensor, axes: readonly number[], keepdim: boolean): Tensor {
  return keepdim
    ? x
    : M.reshape(
        x,
        x.shape.filter((_, i) => !axes.includes(i)),
      );
}

/** Sum over `dim`; bool sums count (i32), as PyTorch's do. */
export function sum(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false): Tensor {
  const keepdim = keepdimOf(keepdimArg, "sum");
  const axes = dimList(x, dim, "sum");
  const src = isBool(x.dtype) ? E.cast(x, "i32") : x;
  if (axes.length === 0) return src;
  const r = prim(x.trace, { op: "reduce_sum", x: src.id, axes });
  return dropDims(r, axes, keepdim);
}

/** Max values over `dim` (torch.amax: several dims allowed, values only). Internal ops use this. */
export function max(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false, op = "max"): Tensor {
  const keepdim = keepdimOf(keepdimArg, op);
  const axes = dimList(x, dim, op);
  if (axes.length === 0) return x;
  emptyCheck(x, axes, op);
  const src = isBool(x.dtype) ? E.cast(x, "i32") : x;
  const r = prim(x.trace, { op: "reduce_max", x: src.id, axes });
  return dropDims(isBool(x.dtype) ? E.cast(r, "bool") : r, axes, keepdim);
}

export function min(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false, op = "min"): Tensor {
  const keepdim = keepdimOf(keepdimArg, op);
  const axes = dimList(x, dim, op);
  if (isBool(x.dtype)) return E.cast(min(E.cast(x, "i32"), dim, keepdim, op), "bool");
  emptyCheck(x, axes, op);
  return E.neg(max(E.neg(x), dim, keepdim, op));
}

/** torch.amax / torch.amin: values over one dim or several, no indices. */
export const amax = (x: Tensor, dim?: Dims, keepdim: KeepdimArg = false): Tensor => max(x, dim, keepdim, "amax");
export const amin = (x: Tensor, dim?: Dims, keepdim: KeepdimArg = false): Tensor => min(x, dim, keepdim, "amin");

/** What max(dim) / min(dim) / topk return, as PyTorch's named tuple: values and their i32 positions along the dim. */
export interface ValuesIndices {
  readonly values: Tensor;
  readonly indices: Tensor;
}

/**
 * PyTorch's max: no dim gives the largest element (a 0-d tensor); one dim gives
 * `{ values, indices }` along it (indices i32, the first extreme on ties; NaN is the extreme).
 * Several dims are torch.amax's job, as in PyTorch.
 */
export function maxOf(x: Tensor): Tensor;
export function maxOf(x: Tensor, dim: number, keepdim?: KeepdimArg): ValuesIndices;
export function maxOf(x: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | ValuesIndices;
export function maxOf(x: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | ValuesIndices {
  return extremeOf(x, dim, keepdim, "max");
}
export function minOf(x: Tensor): Tensor;
export function minOf(x: Tensor, dim: number, keepdim?: KeepdimArg): ValuesIndices;
export function minOf(x: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | ValuesIndices;
export function minOf(x: Tensor, dim?: number, keepdim?: KeepdimArg): Tensor | ValuesIndices {
  return extremeOf(x, dim, keepdim, "min");
}
function extremeOf(x: Tensor, dim: number | undefined, keepdimArg: KeepdimArg | undefined, op: "max" | "min"): Tensor | ValuesIndices {
  if (dim === undefined) return op === "max" ? max(x, undefined, keepdimArg ?? false) : min(x, undefined, keepdimArg ?? false);
  if (typeof dim !== "number")
    return userError(
      "invalid-argument",
      `${op}: dim must be one integer (PyTorch's ${op}(dim) returns values and indices); use a${op}(x, [${String(dim)}]) for values over several dims`,
    );
  const keepdim = keepdimOf(keepdimArg, op);
  const axis = dimIndex(x, dim, op);
  const values = op === "max" ? max(x, axis, keepdim) : min(x, axis, keepdim);
  const indices = argExtreme(x, axis, keepdim, op === "max" ? "argmax" : "argmin");
  return { values, indices };
}

/** True where any element along `dim` is non-zero (torch.any). */
export function any(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false): Tensor {
  const keepdim = keepdimOf(keepdimArg, "any");
  dimList(x, dim, "any");
  return E.gt(sum(E.cast(x, "bool"), dim, keepdim), 0);
}
/** True where every element along `dim` is non-zero (torch.all; true over an empty dim). */
export function all(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false): Tensor {
  const keepdim = keepdimOf(keepdimArg, "all");
  dimList(x, dim, "all");
  return E.logicalNot(any(E.logicalNot(x), dim, keepdim));
}

/** PyTorch refuses max/min over an empty dim (there is no identity to return). */
function emptyCheck(x: Tensor, axes: readonly number[], op: string): void {
  if (axes.some((a) => x.shape[a] === 0)) userError("invalid-argument", `${op}: cannot reduce over a zero-size dim of ${x.toString()}`);
}

/** Number of elements folded into each output of a reduction over `dim`. */
function reducedCount(x: Tensor, dim: Dims | undefined, op: string): number {
  return dimList(x, dim, op).reduce((n, a) => n * x.shape[a]!, 1);
}

/**
 * How many entries `dim` reduces at run time: a number, or, when a reduced axis is symbolic
 * (the batch), an f32 scalar tensor computed from the run's size — a mean over the batch
 * divides by the actual batch, not its maximum.
 */
export function runCount(x: Tensor, dim: Dims | undefined, op: string): number | Tensor {
  const axes = dimList(x, dim, op);
  const scales = x.trace.symbolicScales(x);
  const symbolic = axes.filter((a) => scales?.[a] !== undefined);
  if (symbolic.length === 0) return reducedCount(x, dim, op);
  const fixed = axes.reduce((n, a) => n * (symbolic.includes(a) ? scales![a]! : x.shape[a]!), 1);
  const size = E.cast(new Tensor(x.trace, x.trace.symbol!.size), "f32");
  let count = E.mul(size, fixed);
  for (let i = 1; i < symbolic.length; i++) count = E.mul(count, size);
  return count;
}

export function mean(x: Tensor, dim?: Dims, keepdimArg: KeepdimArg = false): Tensor {
  const keepdim = keepdimOf(keepdimArg, "mean");
  const count = runCount(x, dim, "mean"); // first, so a bad dim is reported as mean's
  return E.div(sum(E.toFloat(x), dim, keepdim), count);
}

/** Variance with Bessel's correction by default (PyTorch: correction = 1); N - correction <= 0 gives inf/NaN as there. */
export function variance(x: Tensor, dim?: Dims, correction = 1, keepdim = false): Tensor {
  const count = runCount(x, dim, "var");
  const xf = E.toFloat(x);
  const centered = E.sub(xf, mean(xf, dim, true));
  const denominator = typeof count === "number" ? Math.max(0, count - correction) : E.sub(count, correction);
  return E.div(sum(E.mul(centered, centered), dim, keepdim), denominator);
}

/** Standard deviation: sqrt of var with the same correction. */
export function std(x: Tensor, dim?: Dims, correction = 1, keepdim = false): Tensor {
  dimList(x, dim, "std");
  return E.sqrt(variance(x, dim, correction, keepdim));
}

/** torch.var/std keywords: `correction` (default 1), or the older `unbiased` (true: 1, false: 0), and keepdim. */
export interface VarOptions {
  readonly correction?: number;
  readonly unbiased?: boolean;
  readonly keepdim?: boolean;
}
/** The third argument of var/std: options, or PyTorch's positional `unbiased` (a boolean), or a correction. */
export type VarArg = VarOptions | boolean | number;

function varianceArgs(arg: VarArg | undefined, op: string): { correction: number; keepdim: boolean } {
  if (typeof arg === "boolean") return { correction: arg ? 1 : 0, keepdim: false };
  if (typeof arg === "number") {
    if (!Number.isFinite(arg)) return userError("invalid-argument", `${op}: correction must be a finite number, got ${arg}`);
    return { correction: arg, keepdim: false };
  }
  const opts = strictOptions<VarOptions>(op, arg, { correction: true, unbiased: true, keepdim: true });
  if (opts.unbiased !== undefined && opts.correction !== undefined) return userError("invalid-argument", `${op}: give correction or unbiased, not both`);
  if (opts.unbiased !== undefined && typeof opts.unbiased !== "boolean")
    return userError("invalid-argument", `${op}: unbiased must be a boolean, got ${JSON.stringify(opts.unbiased)}`);
  if (opts.correction !== undefined && !Number.isFinite(opts.correction))
    return userError("invalid-argument", `${op}: correction must be a finite number, got ${JSON.stringify(opts.correction)}`);
  const correction = opts.correction ?? (opts.unbiased === false ? 0 : 1);
  return { correction, keepdim: keepdimOf(opts.keepdim, op) };
}

/** k.var(x, dim, { correction | unbiased, keepdim }) and x.var(dim, …). */
export function varianceOf(x: Tensor, dim?: Dims, arg?: VarArg, op = "var"): Tensor {
  const { correction, keepdim } = varianceArgs(arg, op);
  return variance(x, dim, correction, keepdim);
}
export function stdOf(x: Tensor, dim?: Dims, arg?: VarArg, op = "std"): Tensor {
  const { correction, keepdim } = varianceArgs(arg, op);
  return std(x, dim, correction, keepdim);
}

/**
 * log(sum(exp(x))) computed as m + log(sum(exp(x - m))) with m the max, so large inputs do
 * not overflow. An infinite max is replaced by 0 before subtracting: a row of -inf gives
 * -inf and a +inf gives +inf (as in PyTorch), not inf - inf = NaN.
 */
export function logsumexp(x: Tensor, dim: Dims, keepdimArg: KeepdimArg = false): Tensor {
  const keepdim = keepdimOf(keepdimArg, "logsumexp");
  const axes = dimList(x, dim, "logsumexp");
  const xf = E.toFloat(x);
  const m = max(xf, dim, true);
  const shift = E.where(E.isinf(m), 0, m);
  const total = sum(E.exp(E.sub(xf, shift)), dim, true);
  return dropDims(E.add(E.log(total), shift), axes, keepdim);
}

/**
 * Index of the first extreme value along `dim` (ties → the first, as PyTorch); NaN counts as
 * the extreme, as in PyTorch. `dim` undefined: index into the flattened tensor. Result i32.
 */
function argExtreme(x: Tensor, dim: number | undefined, keepdim: boolean, op: "argmax" | "argmin"): Tensor {
  if (dim === undefined) {
    const flatIndex = argExtreme(M.reshape(x, [x.numel()]), 0, false, op);
    return keepdim
      ? M.reshape(
          flatIndex,
          x.shape.map(() => 1),
        )
      : flatIndex;
  }
  const axis = dimIndex(x, dim, op);
  const size = x.shape[axis]!;
  if (size === 0) return userError("invalid-argument", `${op}: cannot reduce over a zero-size dim of ${x.toString()}`);
  const src = isBool(x.dtype) ? E.cast(x, "i32") : x;
  const extreme = op === "argmax" ? max(src, axis, true) : min(src, axis, true);
  let hit = E.eq(src, extreme);
  if (isFloat(src.dtype)) hit = E.logicalOr(hit, E.isnan(src));
  // The first hit has the largest (size - position): take that max, then undo it.
  const position = M.reshape(
    prim(x.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [size] }),
    x.shape.map((_, i) => (i === axis ? size : 1)),
  );
  const fromEnd = E.where(hit, E.sub(size, position), 0);
  return E.sub(size, max(fromEnd, axis, keepdim));
}

export function argmax(x: Tensor, dim?: number, keepdim: KeepdimArg = false): Tensor {
  return argExtreme(x, dim, keepdimOf(keepdim, "argmax"), "argmax");
}
export function argmin(x: Tensor, dim?: number, keepdim: KeepdimArg = false): Tensor {
  return argExtreme(x, dim, keepdimOf(keepdim, "argmin"), "argmin");
}

/**
 * Inclusive prefix sum along `dim` by a log-step (Hillis–Steele) scan: after the step with
 * shift s, each position holds the sum of the 2s values ending at it. O(n log n) work in
 * log2(n) elementwise steps of pad + slice + add, no new primitive. bool sums as i32.
 */
export function cumsum(x: Tensor, dim: number): Tensor {
  const axis = dimIndex(x, dim, "cumsum");
  const size = x.shape[axis]!;
  let acc = isBool(x.dtype) ? E.cast(x, "i32") : x;
  for (let shift = 1; shift < size; shift *= 2) {
    const amounts = x.shape
      .map((_, i) => (i === axis ? [shift, 0] : [0, 0]))
      .reverse()
      .flat();
    // pad's list starts from the last dim: (left, right) for dim n-1, then n-2, …
    const shifted = M.pad(M.narrow(acc, axis, 0, size - shift), amounts, 0);
    acc = E.add(acc, shifted);
  }
  return acc;
}

/** softmax along `dim`, shifted by the max so exp never overflows. */
export function softmax(x: Tensor, dim: number): Tensor {
  const axis = dimIndex(x, dim, "softmax");
  const xf = E.toFloat(x);
  const e = E.exp(E.sub(xf, max(xf, axis, true)));
  return E.div(e, sum(e, axis, true));
}

/** log(softmax(x)) as (x - m) - log(sum(exp(x - m))): no log of an underflowed 0.
 * One stack capture for all the ops it makes (dsl/loc.ts, withOneLoc): no user code runs inside.
 */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return withOneLoc(() => logSoftmaxOps(x, dim));
}

function logSoftmaxOps(x: Tensor, dim: number): Tensor {
  const axis = dimIndex(x, dim, "logSoftmax");
  const xf = E.toFloat(x);
  const shifted = E.sub(xf, max(xf, axis, true));
  return E.sub(shifted, E.log(sum(E.exp(shifted), axis, true)));
}
