// Normalizations: softmax and logSoftmax (the Tensor methods' max-shifted forms), layerNorm,
// groupNorm and batchNorm (biased variance to normalize, as PyTorch). Each is a reduction
// broadcast back along the axes it reduced: the shape fusion turns into one row kernel.

import { formatShape } from "../../compiler/util/shape.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { optionalTensorArg, requireFloat } from "./prims.ts";

/** Defined once, in ops/reduce.ts, behind the Tensor methods. */
export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);

/** Normalizes over the trailing dims `normalizedShape`; weight and bias have that shape. */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = "layerNorm";
  for (const [role, v] of [
    ["weight", weight],
    ["bias", bias],
  ] as const)
    optionalTensorArg(v, role, op, "layerNorm(x, normalizedShape, weight?, bias?, eps?)");
  requireFloat(x, "input", op);
  const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const tail = x.shape.slice(x.ndim - shape.length);
  if (shape.length === 0 || shape.length > x.ndim || !shape.every((d, i) => d === tail[i]))
    return userError("shape-mismatch", `shape mismatch in ${op}: input ${formatShape(x.shape)} does not end with normalizedShape ${formatShape(shape)}`);
  for (const [role, t] of [
    ["weight", weight],
    ["bias", bias],
  ] as const)
    if (t && (t.ndim !== shape.length || !t.shape.every((d, i) => d === shape[i])))
      return userError("shape-mismatch", `shape mismatch in ${op}: ${role} ${formatShape(t.shape)} must equal normalizedShape ${formatShape(shape)}`);
  const axes = shape.map((_, i) => x.ndim - shape.length + i);
  let y = standardize(x, axes, eps);
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}

/** (x - mean) / sqrt(biased var + eps) over `axes`, kept as size-1 dims. */
function standardize(x: Tensor, axes: readonly number[], eps: number): Tensor {
  const centered = x.sub(x.mean(axes, true));
  return centered.mul(centered.square().mean(axes, true).add(eps).rsqrt());
}

/** A per-channel [C] tensor shaped to broadcast along axis 1 of a rank-`rank` tensor. */
function perChannel(v: Tensor, rank: number): Tensor {
  return M.reshape(
    v,
    Array.from({ length: rank }, (_, i) => (i === 1 ? v.shape[0]! : 1)),
  );
}

function checkChannelVector(v: Tensor | null | undefined, channels: number, role: string, op: string): void {
  if (v && (v.ndim !== 1 || v.shape[0] !== channels))
    userError("shape-mismatch", `shape mismatch in ${op}: ${role} ${formatShape(v.shape)} must be [${channels}], one per channel`);
}

/** Normalizes x [N, C, *] over each group of C/numGroups channels (and all spatial dims); weight and bias are [C]. */
export function groupNorm(x: Tensor, numGroups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = "groupNorm";
  for (const [role, v] of [
    ["weight", weight],
    ["bias", bias],
  ] as const)
    optionalTensorArg(v, role, op, "groupNorm(x, numGroups, weight?, bias?, eps?)");
  requireFloat(x, "input", op);
  if (x.ndim < 2) return userError("shape-mismatch", `shape mismatch in ${op}: input must be [N, C, *], got ${formatShape(x.shape)}`);
  const channels = x.shape[1]!;
  if (!Number.isInteger(numGroups) || numGroups < 1 || channels % numGroups !== 0)
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(x.shape)} has ${channels} channels, not divisible into ${numGroups} groups`,
    );
  checkChannelVector(weight, channels, "weight", op);
  checkChannelVector(bias, channels, "bias", op);
  const grouped = M.reshape(x, [x.shape[0]!, numGroups, -1]);
  let y = M.reshape(standardize(grouped, [2], eps), x.shape);
  if (weight) y = y.mul(perChannel(weight, x.ndim));
  if (bias) y = y.add(perChannel(bias, x.ndim));
  return y;
}

export interface BatchNormOptions {
  readonly weight?: Tensor | null;
  readonly bias?: Tensor | null;
  /** Use the batch's statistics (true) or the running ones (false). */
  readonly training?: boolean;
  readonly eps?: number;
}

/**
 * Batch norm over x [N, C, *], per channel. Training (or no running stats) normalizes with
 * the batch's mean and biased variance; otherwise with runningMean/runningVar. Unlike
 * PyTorch, nothing is updated in place: a graph is pure, so a BatchNorm module computes the
 * new running stats itself and returns them as outputs aliasing the old ones.
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  const op = "batchNorm";
  strictOptions(op, opts, { weight: true, bias: true, training: true, eps: true });
  requireFloat(x, "input", op);
  if (x.ndim < 2) return userError("shape-mismatch", `shape mismatch in ${op}: input must be [N, C, *], got ${formatShape(x.shape)}`);
  const channels = x.shape[1]!;
  for (const [role, v] of [
    ["runningMean", runningMean],
    ["runningVar", runningVar],
    ["weight", opts.weight],
    ["bias", opts.bias],
  ] as const)
    checkChannelVector(v, channels, role, op);
  const eps = opts.eps ?? 1e-5;
  const useBatch = (opts.training ?? false) || !runningMean || !runningVar;
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  let y = useBatch ? standardize(x, axes, eps) : x.sub(perChannel(runningMean, x.ndim)).mul(perChannel(runningVar, x.ndim).add(eps).rsqrt());
  if (opts.weight) y = y.mul(perChannel(opts.weight, x.ndim));
  if (opts.bias) y = y.add(perChannel(opts.bias, x.ndim));
  return y;
}
