// Finds the backward of an attention in a graph of primitives (what autodiff makes of
// scaledDotProductAttention's softmax, compiler/passes/autodiff): every value computed from
// the softmax's scores S [..., L, S] elementwise (the weights P, dP = dO·vᵀ, the softmax's
// gradient dS), the row statistics reduced from them over the keys ([..., L, 1]: the max,
// the sum, Σ_j dP·P, ...), and the contractions that leave that space:
// - over the keys, a row per query: dQ = dot(dS, k) — the "query" group;
// - over the queries, a row per key: dV = dot(permute(P), dO) and dKᵀ = dot(permute(q), dS)
//   (its rows along the last axis) — the "key" group.
// Fusion (compiler/passes/fuse.ts) then makes two kernels of it (flash attention's backward):
// the query group writes dQ and the row statistics the key group needs; the key group reads
// them and writes dK and dV; both recompute the scores from q and k, so no [L, S] matrix ever
// reaches memory. The user calls nothing special: the structure is found, not declared.
// A region any of whose values is read from outside (a dropout mask on the weights, an
// output) is left to the ordinary fusion rules.

import { nodeOf, uses } from "../ir/graph.ts";
import { opRole, operands } from "../ir/op-schema.ts";
import type { Graph, Node, ValueId } from "../ir/types.ts";
import { MinHeap } from "../util/min-heap.ts";
import { shapesEqual, type Shape } from "../util/shape.ts";
import { matchAttention, matchSoftmaxSum, type AttentionMatch } from "./attention-pattern.ts";

export interface AttentionRegion {
  /** The scores S [..., L, S]. */
  readonly score: ValueId;
  /** The softmax's row max M and row sum Z ([..., L, 1]): the query group computes both in one online pass. */
  readonly max: ValueId;
  readonly sum: ValueId;
  /** The forward `dot(P, V)`, where the graph computes it (absent in a gradient-only graph). */
  readonly forward?: AttentionMatch;
  /** Roots of the query group (a point per query row): its contractions over the keys, then the row statistics the key group reads. */
  readonly queryRoots: readonly ValueId[];
  /** Roots of the key group (a point per key row): its contractions over the queries. */
  readonly keyRoots: readonly ValueId[];
  /** The key roots whose rows run along their last axis ([..., E, S]: dKᵀ), not the one before. */
  readonly transposed: ReadonlySet<ValueId>;
  /** The values those groups recompute instead of reading (scores, weights, their gradients, row statistics that are no root). */
  readonly inlined: ReadonlySet<ValueId>;
}

type Kind = "score" | "row" | "scoreT" | "keyT";

/** Every attention backward in `g` (softmaxes over the last axis whose gradient is found whole) whose scores `wanted` accepts. */
export function findAttentionRegions(g: Graph, wanted: (score: ValueId) => boolean = () => true): AttentionRegion[] {
  const regions: AttentionRegion[] = [];
  let position: Map<ValueId, number> | undefined; // built at the first wanted softmax (a small model's have none)
  for (const n of g.nodes) {
    const softmax = n.op === "reduce_sum" ? matchSoftmaxSum(g, n.id) : undefined;
    if (!softmax || !wanted(softmax.score)) continue;
    position ??= new Map(g.nodes.map((m, i) => [m.id, i]));
    const region = regionOf(g, position, softmax.score, softmax.absorbed, softmax.max, softmax.sum);
    if (region) regions.push(region);
  }
  return regions;
}

/**
 * The region of one softmax. Visits only what the region reaches — its values' users in graph
 * order (a heap of positions), and the gradients' dependents up to the last value the region
 * reads — never the whole graph: a step of many attention layers stays linear in their count.
 */
function regionOf(
  g: Graph,
  position: ReadonlyMap<ValueId, number>,
  score: ValueId,
  absorbed: readonly ValueId[],
  max: ValueId,
  sum: ValueId,
): AttentionRegion | undefined {
  const scoreShape = nodeOf(g, score).type.shape;
  const r = scoreShape.length;
  const rowShape: Shape = [...scoreShape.slice(0, -1), 1];
  const kind = new Map<ValueId, Kind>([[score, "score"]]);
  for (const id of absorbed) kind.set(id, id === max || id === sum ? "row" : "score");
  const swapsLastTwo = (n: Node): boolean =>
    n.op === "permute" && n.perm.length === r && n.perm.every((p, i) => (i < r - 2 ? p === i : i === r - 2 ? p === r - 1 : p === r - 2));
  const queryDots: ValueId[] = [];
  const keyRoots: ValueId[] = [];
  const transposed = new Set<ValueId>();
  const users = uses(g);
  const start = position.get(score)!;
  // The nodes after the score that read a value of the region, in graph order: the users of each value as it joins.
  const pending = new MinHeap();
  const queued = new Set<number>();
  const enqueueUsers = (id: ValueId): void => {
    for (const u of users.get(id) ?? []) {
      const at = position.get(u)!;
      if (at > start && !queued.has(at)) {
        queued.add(at);
        pending.push(at);
      }
    }
  };
  for (const id of kind.keys()) enqueueUsers(id);
  for (let at = pending.pop(); at !== undefined; at = pending.pop()) {
    const n = g.nodes[at]!;
    if (kind.has(n.id)) continue;
    const ops = operands(n);
    const inside = ops.filter((o) => kind.has(o));
    if (inside.length === 0) continue;
    const all = (k: Kind): boolean => inside.every((o) => kind.get(o) === k);
    const role = opRole(n.op);
    const join = (k: Kind): void => {
      kind.set(n.id, k);
      enqueueUsers(n.id);
    };
    if (role === "elementwise" && shapesEqual(n.type.shape, scoreShape) && all("score")) join("score");
    else if (role === "elementwise" && shapesEqual(n.type.shape, rowShape) && all("row")) join("row");
    else if (n.op === "expand" && kind.get(n.x) === "row" && shapesEqual(n.type.shape, scoreShape)) join("score");
    else if ((n.op === "reduce_sum" || n.op === "reduce_max") && kind.get(n.x) === "score" && n.axes.length === 1 && n.axes[0] === r - 1) join("row");
    else if (swapsLastTwo(n) && kind.get(ops[0]!) === "score") join("scoreT");
    else if (n.op === "dot" && inside.length === 1 && kind.get(n.lhs) === "score") queryDots.push(n.id);
    else if (n.op === "dot" && inside.length === 1 && kind.get(n.lhs) === "scoreT") keyRoots.push(n.id);
    else if (n.op === "dot" && inside.length === 1 && kind.get(n.rhs) === "score") {
      keyRoots.push(n.id);
      transposed.add(n.id);
    } else return undefined; // something else reads the region: not a whole attention backward
  }
  const outputs = new Set(g.outputs.map((o) => o.value));
  // dKᵀ read only through the permute that swaps it back (a gradient-only graph's output):
  // the permute is the root, its rows on the usual axis, so no copy kernel transposes it.
  for (const t of [...transposed]) {
    const only = users.get(t) ?? [];
    const p = only.length === 1 && !outputs.has(t) ? nodeOf(g, only[0]!) : undefined;
    if (!p || !swapsLastTwo(p)) continue;
    transposed.delete(t);
    keyRoots.splice(keyRoots.indexOf(t), 1, p.id);
    kind.set(t, "keyT");
  }
  // A contraction q·kᵀ of the score's shape and the gradient dP = dO·vᵀ are recomputed too
  // when only the region reads them (else they would be [L, S] matrices in memory).
  const inRegion = (id: ValueId): boolean => kind.has(id) || queryDots.includes(id) || keyRoots.includes(id);
  const extra = new Set<ValueId>();
  const stack = [...kind.keys()];
  while (stack.length > 0) {
    const id = stack.pop()!;
    for (const o of operands(nodeOf(g, id))) {
      if (kind.has(o) || extra.has(o)) continue;
      const x = nodeOf(g, o);
      const role = opRole(x.op);
      if (!shapesEqual(x.type.shape, scoreShape) || (role !== "elementwise" && role !== "contraction" && role !== "movement")) continue;
      if (outputs.has(o) || (users.get(o) ?? []).some((u) => !inRegion(u) && !extra.has(u))) continue;
      extra.add(o);
      stack.push(o);
    }
  }
  for (const [id] of kind) if (outputs.has(id)) return undefined;
  const forwardDots = queryDots.filter((d) => matchAttention(g, nodeOf(g, d), new Set([...kind.keys(), ...extra])) !== undefined);
  if (forwardDots.length > 1) return undefined;
  const forwardDot = forwardDots[0];
  const gradDots = queryDots.filter((d) => d !== forwardDot);
  if (gradDots.length === 0 && keyRoots.length === 0) return undefined; // no backward: the forward alone is matchAttention's
  // The row statistics the key group reads are written by the query group.
  const statRoots = new Set<ValueId>();
  const seen = new Set<ValueId>();
  const walk = (id: ValueId): void => {
    for (const o of operands(nodeOf(g, id))) {
      if (seen.has(o)) continue;
      seen.add(o);
      if (kind.get(o) === "row") statRoots.add(o);
      else if (kind.has(o) || extra.has(o)) walk(o);
    }
  };
  keyRoots.forEach(walk);
  const queryRoots = [...gradDots, ...[...statRoots].sort((a, b) => a - b)];
  const roots = new Set([...queryRoots, ...keyRoots]);
  const inlined = new Set([...kind.keys(), ...extra].filter((id) => !roots.has(id)));
  // The groups read what the region's values read from outside: none of it may depend on the
  // groups' own results (else the two kernels would wait on each other).
  // (The statistics roots are the forward's too: only the gradients' users count.)
  const outside: ValueId[] = [];
  for (const id of [...inlined, ...roots]) for (const o of operands(nodeOf(g, id))) if (!inlined.has(o) && !roots.has(o)) outside.push(o);
  // A dependent precedes what depends on it: none past the last outside value can be one of them.
  const last = outside.reduce((m, o) => Math.max(m, position.get(o)!), -1);
  const downstream = new Set<ValueId>([...gradDots, ...keyRoots]);
  const reach = [...downstream];
  while (reach.length > 0)
    for (const u of users.get(reach.pop()!) ?? [])
      if (!downstream.has(u) && position.get(u)! <= last) {
        downstream.add(u);
        reach.push(u);
      }
  if (outside.some((o) => downstream.has(o))) return undefined;
  const forward = forwardDot === undefined ? undefined : matchAttention(g, nodeOf(g, forwardDot), new Set([...inlined, ...roots]));
  return { score, max, sum, queryRoots, keyRoots, transposed, inlined, ...(forward ? { forward } : {}) };
}
