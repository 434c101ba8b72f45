// The softmax's max carries no gradient. softmax(x) = exp(x - m) / Σ exp(x - m) is the same
// for every m constant along the reduced axes (shift invariance), so the cotangent that
// reaches the max m = reduce_max(x) through the shift is zero in exact arithmetic: Σ_j e_j
// (dP_j / z - Σ_k dP_k e_k / z²) = 0. Computed, it is rounding noise routed back to the
// maxima's positions at the price of a row reduction, a count of the maxima and a compare per
// element (JAX stops this gradient too). `detachedSoftmaxShifts` finds the shifts of softmaxes
// as the DSL traces them (compiler/passes/attention-pattern.ts's form, before simplify):
//   m = reduce_max(x, A);  d = x + neg(expand m);  e = exp2(d · c);  P = e · recip(expand reduce_sum(e, A))
// (c uniform) whose intermediates nothing else reads; the engine gives m, expand m and its
// neg no cotangent, so no graph is built for them. A fused attention backward
// (compiler/passes/attention-backward.ts) then skips two of its passes over the keys.

import { operands } from "../../ir/op-schema.ts";
import type { Node, ValueId } from "../../ir/types.ts";

/** The values (max, its expand, its neg) of every softmax shift in `region` that gets no cotangent. */
export function detachedSoftmaxShifts(region: readonly Node[], seeds: ReadonlyMap<ValueId, ValueId>): Set<ValueId> {
  const byId = new Map(region.map((n) => [n.id, n]));
  const users = new Map<ValueId, Node[]>();
  for (const n of region) for (const o of operands(n)) users.get(o)?.push(n) ?? users.set(o, [n]);
  const only = (id: ValueId): Node | undefined => {
    const us = users.get(id) ?? [];
    return us.length === 1 && !seeds.has(id) ? us[0] : undefined;
  };
  const uniform = (id: ValueId): boolean => {
    const n = byId.get(id);
    if (!n) return false;
    if (n.op === "const") return true;
    return (n.op === "expand" || n.op === "reshape") && uniform(n.x);
  };
  const sameAxes = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
  const detached = new Set<ValueId>();
  for (const m of region) {
    if (m.op !== "reduce_max" || m.type.dtype !== "f32") continue;
    const ex = only(m.id);
    if (ex?.op !== "expand") continue;
    const ng = only(ex.id);
    if (ng?.op !== "neg") continue;
    const d = only(ng.id);
    if (d?.op !== "add" || (d.x !== m.x && d.y !== m.x)) continue;
    let pre = only(d.id);
    if (pre?.op === "mul" && uniform(pre.x === d.id ? pre.y : pre.x)) pre = only(pre.id);
    if (pre?.op !== "exp2" || seeds.has(pre.id)) continue;
    const e = pre;
    const eUsers = users.get(e.id) ?? [];
    const sum = eUsers.find((u) => u.op === "reduce_sum");
    const weights = eUsers.find((u) => u.op === "mul");
    if (eUsers.length !== 2 || sum?.op !== "reduce_sum" || !weights || weights.op !== "mul" || !sameAxes(sum.axes, m.axes)) continue;
    const sumExpand = only(sum.id);
    const recip = sumExpand?.op === "expand" ? only(sumExpand.id) : undefined;
    if (recip?.op !== "recip" || only(recip.id) !== weights) continue;
    if (weights.x !== recip.id && weights.y !== recip.id) continue;
    detached.add(m.id).add(ex.id).add(ng.id);
  }
  return detached;
}
