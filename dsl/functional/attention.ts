// scaledDotProductAttention (PyTorch's math definition) and oneHot. The causal mask is an
// iota compare, not a materialized constant, so it costs no memory and fuses into the
// softmax row kernel.

import { isBool } from "../../compiler/ir/dtype.ts";
import { formatShape } from "../../compiler/util/shape.ts";
import { recordIndexUse } from "../index-checks.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { iota, requireFloat } from "./prims.ts";
import { dropout } from "./sparse.ts";

export interface AttentionOptions {
  /** bool: true where a query may attend to a key; f32: added to the scores. Broadcasts to [..., L, S]. */
  readonly attnMask?: Tensor | null;
  /** Dropout on the attention weights (only when > 0). */
  readonly dropoutP?: number;
  /** Query i attends to keys j <= i (the top-left aligned lower triangle, as PyTorch). */
  readonly isCausal?: boolean;
  /** Defaults to 1/sqrt(E). */
  readonly scale?: number | null;
}

/** softmax(q kᵀ · scale + mask) v for q [..., L, E], k [..., S, E], v [..., S, Ev]. */
export function scaledDotProductAttention(query: Tensor, key: Tensor, value: Tensor, opts: AttentionOptions = {}): Tensor {
  const op = "scaledDotProductAttention";
  strictOptions(op, opts, { attnMask: true, dropoutP: true, isCausal: true, scale: true });
  for (const [role, t] of [
    ["query", query],
    ["key", key],
    ["value", value],
  ] as const) {
    requireFloat(t, role, op);
    if (t.ndim < 2) return userError("shape-mismatch", `shape mismatch in ${op}: ${role} must be [..., seq, dim], got ${formatShape(t.shape)}`);
  }
  const embed = query.shape[query.ndim - 1]!;
  if (key.shape[key.ndim - 1] !== embed)
    return userError("shape-mismatch", `shape mismatch in ${op}: query ${formatShape(query.shape)} and key ${formatShape(key.shape)} differ in the last dim`);
  if (key.shape[key.ndim - 2] !== value.shape[value.ndim - 2])
    return userError(
      "shape-mismatch",
      `shape mismatch in ${op}: key ${formatShape(key.shape)} and value ${formatShape(value.shape)} differ in sequence length`,
    );
  if (opts.isCausal && opts.attnMask) return userError("invalid-argument", `${op}: give attnMask or isCausal, not both`);
  const scale = opts.scale ?? 1 / Math.sqrt(embed);
  let scores = query.matmul(M.transpose(key, -2, -1)).mul(scale);
  const [queries, keys] = [query.shape[query.ndim - 2]!, key.shape[key.ndim - 2]!];
  if (opts.isCausal) {
    const allowed = iota(query, [queries, keys], 0).ge(iota(query, [queries, keys], 1));
    scores = allowed.where(scores, -Infinity);
  } else if (opts.attnMask) {
    scores = isBool(opts.attnMask.dtype) ? opts.attnMask.where(scores, -Infinity) : scores.add(opts.attnMask);
  }
  let weights = scores.softmax(-1);
  if ((opts.dropoutP ?? 0) > 0) weights = dropout(weights, opts.dropoutP);
  return weights.matmul(value);
}

/** i32 [...] -> i32 [..., numClasses] with a 1 at each index (an index outside [0, numClasses) gives a zero row). */
export function oneHot(indices: Tensor, numClasses: number): Tensor {
  if (indices.dtype !== "i32")
    return userError("dtype-mismatch", `dtype mismatch in oneHot: indices must be i32, got ${indices.dtype}${formatShape(indices.shape)}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) return userError("invalid-argument", `oneHot: numClasses must be a positive integer, got ${numClasses}`);
  recordIndexUse(indices, { op: "oneHot", what: "class index", high: numClasses });
  const shape = [...indices.shape, numClasses];
  const classes = iota(indices, shape, indices.ndim);
  return classes.eq(M.expand(M.unsqueeze(indices, -1), shape)).int();
}
