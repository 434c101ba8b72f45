// Row-wise normalizations: softmax and logSoftmax (the Tensor methods' max-shifted forms)
// and layerNorm (biased variance, as PyTorch). Each is a reduction broadcast back along the
// axis it reduced: the shape the fusion pass turns into one row kernel.

import { formatShape } from "../../compiler/util/shape.ts";
import { Tensor, userError } from "../tensor.ts";
import { requireFloat } from "./prims.ts";

/** Defined once, in ops/reduce.ts, behind the Tensor methods. */
export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);

/** Normalizes over the trailing dims `normalizedShape`; weight and bias have that shape. */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = "layerNorm";
  requireFloat(x, "input", op);
  const shape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
  const tail = x.shape.slice(x.ndim - shape.length);
  if (shape.length === 0 || shape.length > x.ndim || !shape.every((d, i) => d === tail[i]))
    return userError("shape-mismatch", `shape mismatch in ${op}: input ${formatShape(x.shape)} does not end with normalizedShape ${formatShape(shape)}`);
  for (const [role, t] of [["weight", weight], ["bias", bias]] as const)
    if (t && (t.ndim !== shape.length || !t.shape.every((d, i) => d === shape[i])))
      return userError("shape-mismatch", `shape mismatch in ${op}: ${role} ${formatShape(t.shape)} must equal normalizedShape ${formatShape(shape)}`);
  const axes = shape.map((_, i) => x.ndim - shape.length + i);
  const centered = x.sub(x.mean(axes, true));
  const variance = centered.square().mean(axes, true);
  let y = centered.mul(variance.add(eps).rsqrt());
  if (weight) y = y.mul(weight);
  if (bias) y = y.add(bias);
  return y;
}
