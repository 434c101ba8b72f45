// topk from primitives: k rounds, each taking the extreme of the not-yet-taken elements along
// the dim (one max reduction), its first position (a second, over reversed positions) and
// marking it taken. O(k·n) work in 2k reductions: meant for small k (sampling's top-k, top-5
// accuracy), not for sorting long rows.

import { isBool, isFloat as isFloatDType } from "../../compiler/ir/dtype.ts";
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
  const isFloat = isFloatDType(keyBase.dtype);
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

export interface SortOptions {
  /** The dim to sort along (default -1). */
  readonly dim?: number;
  /** Largest first (default false: smallest first). */
  readonly descending?: boolean;
  /** Accepted for PyTorch's signature; the sort is always stable (equal elements keep their order). */
  readonly stable?: boolean;
}

/** sort(x, dim?, descending?) or sort(x, { dim, descending, stable }), as torch.sort. */
export type SortArgs = [dimOrOptions?: number | SortOptions, descending?: boolean];

function sortOptionsOf(where: string, args: SortArgs): { dim: number; descending: boolean } {
  const [first, second] = args;
  if (typeof first === "number" || first === undefined) {
    if (second !== undefined && typeof second !== "boolean")
      return userError("invalid-argument", `${where}: descending must be a boolean, got ${JSON.stringify(second)}`);
    return { dim: first ?? -1, descending: second ?? false };
  }
  const { dim = -1, descending = false, stable = true } = strictOptions<SortOptions>(where, first, { dim: true, descending: true, stable: true });
  if (typeof descending !== "boolean" || typeof stable !== "boolean") return userError("invalid-argument", `${where}: descending and stable must be booleans`);
  return { dim, descending };
}

/**
 * Each element's place in the stable sort along `axis`: how many elements come before it —
 * smaller ones (larger when descending), and equal ones at lower positions. NaN sorts as the
 * largest value (last ascending, first descending), as in PyTorch. An n×n comparison summed
 * over one side: O(n²) work per row, fused into one reduction; meant for rows up to a few
 * thousand (a vocabulary's logits), not for long arrays.
 */
function ranks(x: Tensor, axis: number, descending: boolean): { rank: Tensor; position: Tensor } {
  const size = x.shape[axis]!;
  const base = isBool(x.dtype) ? E.cast(x, "i32") : x;
  const isFloat = isFloatDType(base.dtype);
  const position = M.reshape(
    prim(x.trace, { op: "iota", axis: 0 }, { dtype: "i32", shape: [size] }),
    x.shape.map((_, i) => (i === axis ? size : 1)),
  );
  // Element i along axis+1 (one copy per j), element j along axis: rank_i = Σ_j [j comes before i].
  const asI = (t: Tensor): Tensor => M.unsqueeze(t, axis + 1);
  const asJ = (t: Tensor): Tensor => M.unsqueeze(t, axis);
  const before = (a: Tensor, b: Tensor): Tensor => (descending ? E.gt(a, b) : E.lt(a, b));
  const nan = isFloat ? E.isnan(base) : undefined;
  const value = nan ? E.where(nan, 0, base) : base;
  let earlier = E.logicalOr(before(asJ(value), asI(value)), E.logicalAnd(E.eq(asJ(value), asI(value)), E.lt(asJ(position), asI(position))));
  if (nan) {
    // NaN is larger than every number; two NaNs are equal (the lower position first).
    const [nanJ, nanI] = [asJ(E.cast(nan, "i32")), asI(E.cast(nan, "i32"))];
    const byNan = descending ? E.gt(nanJ, nanI) : E.lt(nanJ, nanI);
    earlier = E.logicalOr(byNan, E.logicalAnd(E.eq(nanJ, nanI), E.where(E.cast(nanI, "bool"), E.lt(asJ(position), asI(position)), earlier)));
  }
  return { rank: R.sum(E.cast(earlier, "i32"), axis + 1), position };
}

/**
 * torch.sort: the values along `dim` in ascending (or descending) order with their i32 indices
 * in x; stable. Values are gathered from x, so gradients flow back to where each came from.
 */
export function sort(x: Tensor, ...args: SortArgs): ValuesIndices {
  const { dim, descending } = sortOptionsOf("sort", args);
  const axis = dimIndex(x, dim, "sort");
  const indices = argsortAxis(x, axis, descending);
  return { values: M.gather(x, axis, indices), indices };
}

/** torch.argsort: the i32 indices that sort x along `dim` (stable). */
export function argsort(x: Tensor, ...args: SortArgs): Tensor {
  const { dim, descending } = sortOptionsOf("argsort", args);
  return argsortAxis(x, dimIndex(x, dim, "argsort"), descending);
}

function argsortAxis(x: Tensor, axis: number, descending: boolean): Tensor {
  const size = x.shape[axis]!;
  if (size === 0) return E.cast(M.narrow(x, axis, 0, 0), "i32");
  const { rank, position } = ranks(x, axis, descending);
  // indices[r] = the i whose rank is r: Σ_i i·[rank_i = r], over i along axis (r along axis+1).
  const slot = M.unsqueeze(position, axis);
  const hit = E.eq(M.unsqueeze(rank, axis + 1), slot);
  return R.sum(E.where(hit, M.unsqueeze(position, axis + 1), 0), axis);
}
