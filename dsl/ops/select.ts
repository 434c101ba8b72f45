// topk from primitives: k rounds, each taking the extreme of the not-yet-taken elements along
// the dim (one max reduction), its first position (a second, over reversed positions) and
// marking it taken. O(k·n) work in 2k reductions: meant for small k (sampling's top-k, top-5
// accuracy), not for sorting long rows.

import { isBool } from "../../compiler/ir/dtype.ts";
import { strictOptions } from "../options.ts";
import { type Tensor, dimIndex, prim, userError } from "../tensor.ts";
import type { ValuesIndices } from "./reduce.ts";
import * as E from "./elementwise.ts";
import * as M from "./movement.ts";
import * as R from "./reduce.ts";

export interface TopkOptions {
  /** The dim to select along (default -1). */
  readonly dim?: number;
  /** The largest values (default) or the smallest. */
  readonly largest?: boolean;
  /** Accepted for PyTorch's signature; the result is always sorted (best first). */
  readonly sorted?: boolean;
}

const I32_MIN = -2147483648;
const I32_MAX = 2147483647;

/**
 * torch.topk: the k largest (or smallest) values along `dim` with their i32 indices, best
 * first; ties go to the lower index. NaN counts as the largest (as PyTorch), and with
 * `largest: false` as +inf. Values are gathered from x, so gradients flow to the picked elements.
 */
export function topk(x: Tensor, k: number, opts?: TopkOptions): ValuesIndices {
  const { dim = -1, largest = true, sorted = true } = strictOptions<TopkOptions>("topk", opts, { dim: true, largest: true, sorted: true });
  if (typeof largest !== "boolean" || typeof sorted !== "boolean") return userError("invalid-argument", "topk: largest and sorted must be booleans");
  const axis = dimIndex(x, dim, "topk");
  const size = x.shape[axis]!;
  if (!Number.isInteger(k) || k < 0 || k > size)
    return userError("invalid-argument", `topk: k must be an integer in [0, ${size}] for dim ${dim} of ${x.toString()}, got ${k}`);
  const keyBase = isBool(x.dtype) ? E.cast(x, "i32") : x;
  const isFloat = keyBase.dtype === "f32";
  // The smallest-first key keeps NaN out of min's way: NaN ranks as +inf.
  const key = !largest && isFloat ? E.where(E.isnan(keyBase), Infinity, keyBase) : keyBase;
  const fill = isFloat ? (largest ? -Infinity : Infinity) : largest ? I32_MIN : I32_MAX;
  const position = M.reshape(
    prim(x.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [size] }),
    x.shape.map((_, i) => (i === axis ? size : 1)),
  );
  let taken: Tensor | undefined;
  const picks: Tensor[] = [];
  for (let round = 0; round < k; round++) {
    const open = taken === undefined ? key : E.where(taken, fill, key);
    const extreme = largest ? R.amax(open, axis, true) : R.amin(open, axis, true);
    let hit = E.eq(key, extreme);
    if (largest && isFloat) hit = E.logicalOr(hit, E.isnan(key));
    if (taken !== undefined) hit = E.logicalAnd(hit, E.logicalNot(taken));
    // The first hit has the largest (size - position).
    const index = E.sub(size, R.amax(E.where(hit, E.sub(size, position), 0), axis, true));
    picks.push(index);
    const now = E.eq(position, index);
    taken = taken === undefined ? now : E.logicalOr(taken, now);
  }
  const outShape = x.shape.map((d, i) => (i === axis ? k : d));
  const indices = k === 0 ? M.reshape(prim(x.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [0] }), outShape) : M.cat(picks, axis);
  const values = k === 0 ? M.narrow(x, axis, 0, 0) : M.gather(x, axis, indices);
  return { values, indices };
}
