// Row-wise normalizations: softmax, logSoftmax (max-shifted, so large logits don't
// overflow) and layerNorm (biased variance, as PyTorch). Each is a reduction broadcast back
// along the axis it reduced: the shape the fusion pass turns into one row kernel.

import { formatShape } from "../../compiler/util/shape.ts";
import { Tensor, dimIndex, userError } from "../tensor.ts";
import { requireFloat } from "./prims.ts";

function shifted(x: Tensor, dim: number, op: string): { shift: Tensor; axis: number } {
  const axis = dimIndex(x, dim, op);
  const xf = x.float();
  return { shift: xf.sub(xf.max(axis, true)), axis };
}

export function softmax(x: Tensor, dim: number): Tensor {
  const { shift, axis } = shifted(x, dim, "softmax");
  const e = shift.exp();
  return e.div(e.sum(axis, true));
}

export function logSoftmax(x: Tensor, dim: number): Tensor {
  const { shift, axis } = shifted(x, dim, "logSoftmax");
  return shift.sub(shift.exp().sum(axis, true).log());
}

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
