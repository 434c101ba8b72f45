// Blocked summation: a long f32 sum is lowered as a tree of short sums (each level's loop at
// most SUM_BLOCK long, nested inside the next), so no accumulator adds more than a few
// hundred terms. A single f32 accumulator over n terms loses about n·2^-24 relative (and
// stops growing at all once the sum reaches 2^24 times the addend); a tree of fan-in B
// loses about log_B(n)·B·2^-24 in the worst case, and far less in practice. Every target
// renders the nest as plain loops: wasm keeps its SIMD lanes on the innermost level, WebGPU
// row kernels and CUDA warps split the outermost level over threads, and JS accumulates
// each level in float64. Short sums keep their single loop (their code is unchanged).

import type { DType } from "../ir/dtype.ts";
import { bug } from "../util/errors.ts";
import { addIndex, constIndex, fromAtom, mulIndex, type IndexExpr } from "./index-expr.ts";
import type { ExprId, SectionBuilder } from "./kernel-ir.ts";

/** The longest loop of one level; the innermost level runs this long, or down to half where that divides the axis (contiguous, SIMD-friendly). */
export const SUM_BLOCK = 64;
/** The longest loop of an outer level (sequential on wasm, so shorter than the innermost block). */
export const OUTER_BLOCK = 32;
/** Sums over more elements than this are blocked: below it, wasm's 16 partial lanes and GPU threads already keep chains short. */
export const BLOCKED_SUM_MIN = 8192;

/** Part of one reduced axis: `coef · v` for a loop variable v < extent. */
interface Digit {
  readonly axis: number;
  readonly coef: number;
  readonly extent: number;
}

/** Produces the summand at an index of the reduced axes (one expression per axis, in axis order). */
export type Summand = (axisIndex: readonly IndexExpr[]) => ExprId;

/**
 * The sum of `summand` over the box `extents` (one extent per reduced axis): a single
 * `reduce_sum` when the box holds at most BLOCKED_SUM_MIN elements, otherwise a tree.
 */
export function lowerSum(sb: SectionBuilder, extents: readonly number[], summand: Summand, dtype: DType): ExprId {
  const total = extents.reduce((a, e) => a * e, 1);
  if (dtype !== "f32" || total <= BLOCKED_SUM_MIN) {
    const vars = extents.map((e) => sb.freshVar(e));
    return sb.add({ op: "reduce_sum", vars, body: summand(vars.map((v) => fromAtom(v))), dtype });
  }
  const digits = extents.map((extent, axis) => ({ axis, coef: 1, extent }));
  return sumDigits(
    sb,
    digits,
    extents.map(() => constIndex(0)),
    summand,
    dtype,
    true,
  );
}

function sumDigits(sb: SectionBuilder, digits: readonly Digit[], offsets: readonly IndexExpr[], leaf: Summand, dtype: DType, innermost: boolean): ExprId {
  if (digits.length === 0) return leaf(offsets);
  const total = digits.reduce((a, d) => a * d.extent, 1);
  const limit = innermost ? SUM_BLOCK : OUTER_BLOCK;
  if (total <= limit) {
    const vars = digits.map((d) => sb.freshVar(d.extent));
    const index = offsets.map((o, axis) => addIndex(o, ...digits.flatMap((d, i) => (d.axis === axis ? [mulIndex(fromAtom(vars[i]!), d.coef)] : []))));
    return sb.add({ op: "reduce_sum", vars, body: leaf(index), dtype });
  }
  const last = digits[digits.length - 1] ?? bug("block-sum: no digits");
  const rest = digits.slice(0, -1);
  // A long innermost digit under outer ones: sum it (tails included) inside the outer loops,
  // so its tails do not repeat the outer levels at the top (each top-level sum is a
  // workgroup tree in a WebGPU row kernel, and lavapipe compiles many of them slowly).
  if (last.extent > limit && rest.length > 0)
    return sumDigits(sb, rest, offsets, (index) => sumDigits(sb, [last], index, leaf, dtype, innermost), dtype, false);
  if (last.extent > limit) {
    // Split the digit v < extent into (hi · radix + lo) plus a tail for extent mod radix. The
    // innermost level keeps a full block; outer levels share the remaining depth evenly, so
    // the outermost one (which GPUs spread over threads) is not left with a handful of blocks.
    const radix = innermost ? innerRadix(last.extent) : balancedRadix(last.extent);
    const quotient = Math.floor(last.extent / radix);
    const remainder = last.extent % radix;
    const split = [
      { axis: last.axis, coef: last.coef * radix, extent: quotient },
      { axis: last.axis, coef: last.coef, extent: radix },
    ];
    const main = sumDigits(sb, split, offsets, leaf, dtype, innermost);
    if (remainder === 0) return main;
    const tailOffsets = offsets.map((o, axis) => (axis === last.axis ? addIndex(o, constIndex(last.coef * quotient * radix)) : o));
    const tail = sumDigits(sb, [{ axis: last.axis, coef: last.coef, extent: remainder }], tailOffsets, leaf, dtype, innermost);
    return sb.add({ op: "add", x: main, y: tail, dtype });
  }
  // The innermost digits whose product fits a block form one level; the rest sum its results.
  let first = digits.length - 1;
  let size = last.extent;
  while (first > 0 && size * digits[first - 1]!.extent <= limit) size *= digits[--first]!.extent;
  const inner = digits.slice(first);
  return sumDigits(sb, digits.slice(0, first), offsets, (index) => sumDigits(sb, inner, index, leaf, dtype, innermost), dtype, false);
}

/** SUM_BLOCK, or the largest divisor of the extent down to half of it: no tail sum (20000 = 400 · 50). */
function innerRadix(extent: number): number {
  for (let d = SUM_BLOCK; d >= SUM_BLOCK / 2; d--) if (extent % d === 0) return d;
  return SUM_BLOCK;
}

/**
 * The smallest radix b ≤ OUTER_BLOCK with as few levels as OUTER_BLOCK needs (b^levels ≥
 * extent), or the next larger one up to OUTER_BLOCK that divides the extent: no tail sum.
 */
function balancedRadix(extent: number): number {
  let levels = 1;
  while (OUTER_BLOCK ** levels < extent) levels++;
  let radix = Math.ceil(extent ** (1 / levels));
  while (radix ** levels < extent) radix++;
  radix = Math.min(radix, OUTER_BLOCK);
  for (let d = radix; d <= OUTER_BLOCK; d++) if (extent % d === 0) return d;
  return radix;
}
