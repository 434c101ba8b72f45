// Finds attention in a graph of primitives: a `dot(softmax(S), V)` whose softmax is the
// one the DSL's `softmax` traces (after simplify):
//   M = reduce_max(S, [last]);  E = exp2((S + neg(expand M)) · log2(e));
//   P = E · recip(expand reduce_sum(E, [last]));  out = dot(P, V)
// S is any score expression ([..., L, S]; in scaledDotProductAttention q·kᵀ·scale under a
// causal or given mask). Fusion (compiler/passes/fuse.ts) makes such a dot the root of one
// `attention` group: lowering computes it as a softmax_sum over the keys (online softmax,
// docs/kernel-ir.md), so neither the scores nor the weights P ever reach memory. The user
// calls nothing special: any softmax-weighted sum of this shape is found, when nothing else
// reads the softmax (a training step's backward reads its weights: there it stays unfused).

import { nodeOf, uses } from "../ir/graph.ts";
import type { Graph, Node, ValueId } from "../ir/types.ts";

export interface AttentionMatch {
  /** The dot(P, V) the group stores. */
  readonly dot: ValueId;
  /** The scores S [..., L, S] the softmax normalizes over its last axis. */
  readonly score: ValueId;
  /** The values V [..., S, Ev]. */
  readonly value: ValueId;
  /** The softmax's own nodes (max, exponentials, sum, weights) the online softmax replaces. */
  readonly absorbed: readonly ValueId[];
}

/** A softmax over the last axis as the DSL traces it, found from its weights P. */
export interface SoftmaxMatch {
  /** The scores S [..., L, S]. */
  readonly score: ValueId;
  /** The row max M and row sum Z ([..., L, 1]). */
  readonly max: ValueId;
  readonly sum: ValueId;
  /** The softmax's own nodes from M to P (max, exponentials, sum, weights), in graph order. */
  readonly absorbed: readonly ValueId[];
}

/**
 * The attention rooted at `n` (a dot), or undefined. `alsoReadBy`: values that may read the
 * softmax besides the dot (a fused attention backward, compiler/passes/attention-backward.ts,
 * recomputes the weights from the scores; its groups read nothing the forward writes).
 */
export function matchAttention(g: Graph, n: Node, alsoReadBy?: ReadonlySet<ValueId>): AttentionMatch | undefined {
  if (n.op !== "dot" || n.type.dtype !== "f32") return undefined;
  const rank = n.type.shape.length;
  const values = nodeOf(g, n.rhs);
  if (values.type.shape.length !== rank) return undefined;
  const softmax = matchSoftmax(g, n.lhs);
  if (!softmax) return undefined;
  // A softmax another value reads (a training step's backward reads the weights) is written
  // out anyway: the matmul of the stored weights is then cheaper than recomputing them online.
  const inside = new Set([...softmax.absorbed, n.id]);
  const outputs = new Set(g.outputs.map((o) => o.value));
  const users = uses(g);
  if (softmax.absorbed.some((id) => outputs.has(id) || (users.get(id) ?? []).some((u) => !inside.has(u) && !alsoReadBy?.has(u)))) return undefined;
  return { dot: n.id, score: softmax.score, value: n.rhs, absorbed: softmax.absorbed };
}

/** The f32 softmax over the last axis whose weights are `id` (P = E · recip(expand(reduce_sum(E)))), or undefined. */
export function matchSoftmax(g: Graph, id: ValueId): SoftmaxMatch | undefined {
  const weights = nodeOf(g, id);
  const rank = weights.type.shape.length;
  if (rank < 2 || weights.op !== "mul" || weights.type.dtype !== "f32") return undefined;
  const last = rank - 1;
  const lastAxisReduce = (id: ValueId, op: "reduce_sum" | "reduce_max"): Node | undefined => {
    const r = nodeOf(g, id);
    return r.op === op && r.axes.length === 1 && r.axes[0] === last && r.type.shape[last] === 1 ? r : undefined;
  };
  // P = E · recip(expand(reduce_sum(E))), either operand order.
  for (const [e, r] of [
    [weights.x, weights.y],
    [weights.y, weights.x],
  ] as const) {
    const recip = nodeOf(g, r);
    if (recip.op !== "recip") continue;
    const sumExpand = nodeOf(g, recip.x);
    if (sumExpand.op !== "expand") continue;
    const sum = lastAxisReduce(sumExpand.x, "reduce_sum");
    if (!sum || sum.op !== "reduce_sum" || sum.x !== e) continue;
    const softmax = matchShiftedExp(g, e, last);
    if (!softmax) continue;
    if (nodeOf(g, softmax.score).type.dtype !== "f32") continue;
    return { score: softmax.score, max: softmax.absorbed[0]!, sum: sum.id, absorbed: [...softmax.absorbed, sum.id, sumExpand.id, recip.id, weights.id] };
  }
  return undefined;
}

/**
 * The softmax whose row sum is `id` (Z = reduce_sum(E) over the last axis, E its shifted
 * exponentials), or undefined; `absorbed` lists max … E then Z. A gradient that never needs
 * the weights P themselves (wrt q or k alone) still holds this much of the softmax.
 */
export function matchSoftmaxSum(g: Graph, id: ValueId): SoftmaxMatch | undefined {
  const sum = nodeOf(g, id);
  const rank = sum.type.shape.length;
  if (sum.op !== "reduce_sum" || rank < 2 || sum.type.dtype !== "f32" || sum.axes.length !== 1 || sum.axes[0] !== rank - 1 || sum.type.shape[rank - 1] !== 1)
    return undefined;
  const softmax = matchShiftedExp(g, sum.x, rank - 1);
  if (!softmax || nodeOf(g, softmax.score).type.dtype !== "f32") return undefined;
  return { score: softmax.score, max: softmax.absorbed[0]!, sum: id, absorbed: [...softmax.absorbed, id] };
}

/** E = exp2((S + neg(expand(reduce_max(S)))) · log2(e)), the constant on either side. */
function matchShiftedExp(g: Graph, id: ValueId, last: number): { score: ValueId; absorbed: ValueId[] } | undefined {
  const exp = nodeOf(g, id);
  if (exp.op !== "exp2") return undefined;
  const scaled = nodeOf(g, exp.x);
  if (scaled.op !== "mul") return undefined;
  const isLog2e = (v: ValueId): boolean => {
    const c = nodeOf(g, v);
    return c.op === "const" && Math.abs(c.value - Math.LOG2E) < 1e-12;
  };
  const shifted = isLog2e(scaled.y) ? nodeOf(g, scaled.x) : isLog2e(scaled.x) ? nodeOf(g, scaled.y) : undefined;
  if (shifted?.op !== "add") return undefined;
  for (const [s, negId] of [
    [shifted.x, shifted.y],
    [shifted.y, shifted.x],
  ] as const) {
    const neg = nodeOf(g, negId);
    if (neg.op !== "neg") continue;
    const maxExpand = nodeOf(g, neg.x);
    if (maxExpand.op !== "expand") continue;
    const max = nodeOf(g, maxExpand.x);
    if (max.op !== "reduce_max" || max.x !== s || max.axes.length !== 1 || max.axes[0] !== last) continue;
    return { score: s, absorbed: [max.id, maxExpand.id, neg.id, shifted.id, scaled.id, exp.id] };
  }
  return undefined;
}
