// Lookup-style ops: embedding (rows of a weight table picked by i32 indices) and dropout
// (elements zeroed by a counter-based random mask). Indices read from a graph input are
// range-checked by exe.run (index-checks.ts); computed ones are not yet (backends clamp or
// read garbage there, never crash).

import { formatShape } from "../../compiler/util/shape.ts";
import { recordIndexUse } from "../index-checks.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, prim, userError } from "../tensor.ts";
import * as M from "../ops/movement.ts";
import { uniform } from "../random.ts";

/** weight [num, dim], indices i32 [...] -> [..., dim]: out[..., :] = weight[indices[...], :]. */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  const op = "embedding";
  if (indices.dtype !== "i32")
    return userError("dtype-mismatch", `dtype mismatch in ${op}: indices must be i32, got ${indices.dtype}${formatShape(indices.shape)}`);
  if (weight.ndim !== 2) return userError("shape-mismatch", `shape mismatch in ${op}: weight must be [num, dim], got ${formatShape(weight.shape)}`);
  const dim = weight.shape[1]!;
  recordIndexUse(indices, { op, what: "row of the weight", high: weight.shape[0]! });
  const count = indices.numel();
  // gather needs the index shaped like the table except along the gathered axis.
  const rowIndex = M.expand(M.reshape(indices, [count, 1]), [count, dim]);
  const rows = prim(weight.trace, { op: "gather", x: weight.id, index: rowIndex.id, axis: 0 });
  return M.reshape(rows, [...indices.shape, dim]);
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not
 * training. The mask is rng(seed, stream) >= p, so one seed gives one mask on every target.
 */
export interface DropoutOptions {
  readonly p?: number;
  readonly training?: boolean;
}
export function dropout(x: Tensor, pArg: number | DropoutOptions = 0.5, trainingArg = true): Tensor {
  const { p = 0.5, training = true } =
    typeof pArg === "object" && pArg !== null
      ? strictOptions<DropoutOptions>("dropout", pArg, { p: true, training: true })
      : { p: pArg, training: trainingArg };
  if (!(typeof p === "number" && p >= 0 && p <= 1)) return userError("invalid-argument", `dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  const xf = x.float();
  if (p === 1) return xf.mul(0);
  const dropped = uniform(x.trace, x.shape).lt(p); // keep where u >= p: one compare
  return dropped.where(0, xf.mul(1 / (1 - p)));
}
