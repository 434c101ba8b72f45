// matmul with PyTorch's rules (1-D operands, broadcast batch dims) lowered to the `dot`
// primitive, which only knows [...B, M, K] x [...B, K, N] with equal batch dims.

import { isBool } from "../../compiler/ir/dtype.ts";
import { formatShape } from "../../compiler/util/shape.ts";
import { broadcastShapes } from "../../compiler/util/shape.ts";
import { type Tensor, prim, requireTensor, resultDType, userError } from "../tensor.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";

export function matmul(a: Tensor, b: Tensor): Tensor {
  requireTensor(a, "input", "matmul");
  requireTensor(b, "other", "matmul");
  if (a.ndim === 0 || b.ndim === 0)
    return userError("shape-mismatch", `shape mismatch in matmul: both operands need at least 1 dim, got ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
  const dtype = isBool(resultDType(a, b)) ? "i32" : resultDType(a, b);
  let x = E.cast(a, dtype);
  let y = E.cast(b, dtype);
  const aVec = x.ndim === 1;
  const bVec = y.ndim === 1;
  if (aVec) x = M.unsqueeze(x, 0);
  if (bVec) y = M.unsqueeze(y, 1);
  const k1 = x.shape[x.ndim - 1]!;
  const k2 = y.shape[y.ndim - 2]!;
  if (k1 !== k2) return userError("shape-mismatch", `shape mismatch in matmul: ${formatShape(a.shape)} @ ${formatShape(b.shape)} (inner dims ${k1} ≠ ${k2})`);
  const batch = broadcastShapes(x.shape.slice(0, -2), y.shape.slice(0, -2));
  if (!batch)
    return userError("shape-mismatch", `shape mismatch in matmul: batch dims of ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast`);
  x = M.expand(x, [...batch, ...x.shape.slice(-2)]);
  y = M.expand(y, [...batch, ...y.shape.slice(-2)]);
  let out = prim(x.trace, { op: "dot", lhs: x.id, rhs: y.id });
  if (aVec) out = M.squeeze(out, out.ndim - 2);
  if (bVec) out = M.squeeze(out, out.ndim - 1);
  return out;
}
