// Losses with PyTorch semantics: crossEntropy (class indices or probabilities, label
// smoothing, ignoreIndex, class weights), nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits.
// The target class is picked with a one-hot compare against iota, not a gather, so the
// whole loss stays elementwise + row reductions (one fused row kernel, simple gradients).

import { isFloat } from "../../compiler/ir/dtype.ts";
import { formatShape, shapesEqual } from "../../compiler/util/shape.ts";
import { recordIndexUse } from "../index-checks.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, requireTensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { withOneLoc } from "../loc.ts";
import { iota, requireFloat } from "./prims.ts";
import { logSoftmax } from "./norm.ts";

export type Reduction = "mean" | "sum" | "none";

export interface CrossEntropyOptions {
  /** One weight per class, [C]. */
  readonly weight?: Tensor | null;
  /** Targets equal to this contribute nothing (default -100, PyTorch's). */
  readonly ignoreIndex?: number;
  readonly reduction?: Reduction;
  /** ε in [0, 1]: the target becomes (1-ε)·onehot + ε/C. */
  readonly labelSmoothing?: number;
}

export type NllLossOptions = Omit<CrossEntropyOptions, "labelSmoothing">;

function reduce(loss: Tensor, reduction: Reduction, op: string): Tensor {
  switch (reduction) {
    case "none":
      return loss;
    case "sum":
      return loss.sum();
    case "mean":
      return loss.mean();
    default:
      return userError("invalid-argument", `${op}: reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
  }
}

/** Input [N, C, d...] or [C]: the class axis (1, or 0 when unbatched). */
function classAxisOf(input: Tensor, op: string): number {
  if (input.ndim === 0) return userError("shape-mismatch", `shape mismatch in ${op}: input must have a class dim, got a scalar`);
  return input.ndim === 1 ? 0 : 1;
}

function checkClassWeight(weight: Tensor | null | undefined, classes: number, op: string): Tensor | undefined {
  if (!weight) return undefined;
  if (weight.ndim !== 1 || weight.shape[0] !== classes)
    return userError("shape-mismatch", `shape mismatch in ${op}: weight ${formatShape(weight.shape)} must be [${classes}], one per class`);
  return weight.float();
}

/** A [C] tensor laid along `axis` of a tensor of `rank` dims, broadcastable against it. */
function alongAxis(v: Tensor, axis: number, rank: number): Tensor {
  return M.reshape(
    v,
    Array.from({ length: rank }, (_, i) => (i === axis ? v.shape[0]! : 1)),
  );
}

/**
 * Negative log-likelihood of class-index targets from log-probabilities `logp` [N, C, d...],
 * with optional label smoothing. Returns per-element loss [N, d...] (0 where ignored) and
 * the mean's denominator (count, or sum of target weights, over non-ignored elements).
 */
function classIndexLoss(logp: Tensor, target: Tensor, axis: number, opts: CrossEntropyOptions, op: string): { loss: Tensor; denominator: Tensor } {
  const expected = logp.shape.filter((_, i) => i !== axis);
  if (target.dtype !== "i32")
    return userError("dtype-mismatch", `dtype mismatch in ${op}: class-index target must be i32, got ${target.dtype}${formatShape(target.shape)}`);
  if (!shapesEqual(target.shape, expected))
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(logp.shape)} needs target ${formatShape(expected)}, got ${formatShape(target.shape)}`,
    );
  const classes = logp.shape[axis]!;
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const epsilon = opts.labelSmoothing ?? 0;
  if (!(epsilon >= 0 && epsilon <= 1)) return userError("invalid-argument", `${op}: labelSmoothing must be in [0, 1], got ${epsilon}`);
  const weight = checkClassWeight(opts.weight, classes, op);

  recordIndexUse(target, { op, what: "class index", high: classes, ignoreIndex });
  const isTarget = iota(logp, logp.shape, axis).eq(M.expand(M.unsqueeze(target, axis), logp.shape));
  const valid = target.ne(ignoreIndex);
  const weightBroadcast = weight ? alongAxis(weight, axis, logp.ndim) : undefined;
  const weighted = weightBroadcast ? logp.mul(weightBroadcast) : logp;
  let loss = isTarget.where(weighted, 0).sum(axis).neg();
  if (epsilon > 0)
    loss = loss.mul(1 - epsilon).add(
      weighted
        .sum(axis)
        .neg()
        .mul(epsilon / classes),
    );
  loss = valid.where(loss, 0);
  const targetWeight = weightBroadcast ? isTarget.where(weightBroadcast.expand(logp.shape), 0).sum(axis) : valid.float();
  const denominator = valid.where(targetWeight, 0).sum();
  return { loss, denominator };
}

/** Cross entropy of logits [N, C, d...] (or [C]) against class indices (i32) or class probabilities (f32, same shape).
 * One stack capture for all the ops it makes (dsl/loc.ts, withOneLoc): no user code runs inside.
 */
export function crossEntropy(input: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return withOneLoc(() => crossEntropyOps(input, target, opts));
}

function crossEntropyOps(input: Tensor, target: Tensor, opts: CrossEntropyOptions): Tensor {
  const op = "crossEntropy";
  strictOptions(op, opts, { weight: true, ignoreIndex: true, reduction: true, labelSmoothing: true });
  requireFloat(input, "input", op);
  requireTensor(target, "target", op);
  const axis = classAxisOf(input, op);
  const logp = logSoftmax(input, axis);
  const reduction = opts.reduction ?? "mean";
  if (isFloat(target.dtype)) return probabilityLoss(logp, target, axis, opts, reduction, op);
  const { loss, denominator } = classIndexLoss(logp, target, axis, opts, op);
  return reduction === "mean" ? loss.sum().div(denominator) : reduce(loss, reduction, op);
}

/** Soft targets: -Σ_c w_c·t'_c·log p_c with t' = (1-ε)·t + ε/C; mean is over elements, as PyTorch. */
function probabilityLoss(logp: Tensor, target: Tensor, axis: number, opts: CrossEntropyOptions, reduction: Reduction, op: string): Tensor {
  if (!shapesEqual(target.shape, logp.shape))
    return userError("shape-mismatch", `shape mismatch in ${op}: probability target ${formatShape(target.shape)} must match input ${formatShape(logp.shape)}`);
  const classes = logp.shape[axis]!;
  const epsilon = opts.labelSmoothing ?? 0;
  if (!(epsilon >= 0 && epsilon <= 1)) return userError("invalid-argument", `${op}: labelSmoothing must be in [0, 1], got ${epsilon}`);
  const weight = checkClassWeight(opts.weight, classes, op);
  const smoothed = epsilon > 0 ? target.mul(1 - epsilon).add(epsilon / classes) : target;
  const weighted = weight ? logp.mul(alongAxis(weight, axis, logp.ndim)) : logp;
  return reduce(smoothed.mul(weighted).sum(axis).neg(), reduction, op);
}

/** Negative log-likelihood of log-probabilities [N, C, d...] (or [C]) at class-index targets. */
export function nllLoss(input: Tensor, target: Tensor, opts: NllLossOptions = {}): Tensor {
  const op = "nllLoss";
  strictOptions(op, opts, { weight: true, ignoreIndex: true, reduction: true });
  requireFloat(input, "input", op);
  const axis = classAxisOf(input, op);
  const reduction = opts.reduction ?? "mean";
  const { loss, denominator } = classIndexLoss(input, target, axis, opts, op);
  return reduction === "mean" ? loss.sum().div(denominator) : reduce(loss, reduction, op);
}

function requireSameShape(input: Tensor, target: Tensor, op: string): void {
  if (!shapesEqual(input.shape, target.shape))
    userError(
      "shape-mismatch",
      `shape mismatch in ${op}: input ${formatShape(input.shape)} and target ${formatShape(target.shape)} differ (reshape one; broadcasting here is usually a bug)`,
    );
}

export function mseLoss(input: Tensor, target: Tensor, opts: { readonly reduction?: Reduction } = {}): Tensor {
  strictOptions("mseLoss", opts, { reduction: true });
  requireSameShape(input, target, "mseLoss");
  return reduce(input.float().sub(target).square(), opts.reduction ?? "mean", "mseLoss");
}

export function l1Loss(input: Tensor, target: Tensor, opts: { readonly reduction?: Reduction } = {}): Tensor {
  strictOptions("l1Loss", opts, { reduction: true });
  requireSameShape(input, target, "l1Loss");
  return reduce(input.float().sub(target).abs(), opts.reduction ?? "mean", "l1Loss");
}

export interface BceWithLogitsOptions {
  /** Rescales each element's loss; broadcast against the input. */
  readonly weight?: Tensor | null;
  /** Weight of positive examples, broadcast against the input (one per class on the last dim). */
  readonly posWeight?: Tensor | null;
  readonly reduction?: Reduction;
}

/**
 * The stable form: (1 - y)·x + (1 + (pw - 1)·y)·(log(1 + exp(-|x|)) + max(-x, 0)),
 * which equals -[pw·y·log σ(x) + (1 - y)·log(1 - σ(x))] without overflowing exp.
 */
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor, opts: BceWithLogitsOptions = {}): Tensor {
  const op = "binaryCrossEntropyWithLogits";
  strictOptions(op, opts, { weight: true, posWeight: true, reduction: true });
  requireFloat(input, "input", op);
  requireSameShape(input, target, op);
  const x = input;
  const y = target.float();
  const softplusNeg = x.abs().neg().exp().add(1).log().add(x.neg().maximum(0)); // log(1 + exp(-x))
  const logWeight = opts.posWeight ? y.mul(opts.posWeight.float().sub(1)).add(1) : undefined;
  let loss = y
    .neg()
    .add(1)
    .mul(x)
    .add(logWeight ? logWeight.mul(softplusNeg) : softplusNeg);
  if (opts.weight) loss = loss.mul(opts.weight.float());
  return reduce(loss, opts.reduction ?? "mean", op);
}
