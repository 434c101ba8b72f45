// The softmax's max carries no gradient (compiler/passes/autodiff/softmax-shift.ts): the
// gradient of the DSL's softmax builds no compare against the max, no count of maxima and no
// row sum for it, and equals in float64 the gradient of the same softmax written with a shift
// the matcher does not take (the max added to 0), whose max's gradient autodiff builds in
// full — rows with ties at the max, large values and a causal -inf included.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose, runRef } from "../../util/ref.ts";

const ops = (g: { nodes: readonly { op: string }[] }, op: string): number => g.nodes.filter((n) => n.op === op).length;

const [R, C] = [4, 5];
const x = [2, 5, 5, 1, -3, 40, 41, 41, 39, 0, -1, -2, -3, -4, -5, 0.3, 0.1, 0.7, 0.2, 0.5];
const w = Array.from({ length: R * C }, (_, i) => Math.sin(i * 1.3) + 0.1 * i);
/** An additive causal mask: -inf above the diagonal. */
const mask = Array.from({ length: R * C }, (_, i) => (i % C > Math.floor(i / C) ? -Infinity : 0));
const viaSoftmax = (a: k.Tensor, b: k.Tensor, c: k.Tensor): k.Tensor => k.grad((s: k.Tensor) => s.add(c).softmax(-1).mul(b).sum())(a);
const viaKeptMax = (a: k.Tensor, b: k.Tensor, c: k.Tensor): k.Tensor =>
  k.grad((s: k.Tensor) => {
    const m = s.add(c);
    const e = m.sub(m.amax(-1, true).add(0)).exp();
    return e.div(e.sum(-1, true)).mul(b).sum();
  })(a);

describe("the softmax's max gets no cotangent", () => {
  test("its gradient has no max's gradient; the same gradient as with it, in float64", () => {
    const specs = [k.f32([R, C]), k.f32([R, C]), k.f32([R, C])];
    const detached = runRef(viaSoftmax, specs, [x, w, mask]);
    const kept = runRef(viaKeptMax, specs, [x, w, mask]);
    // The kept form's reduce_max rule compares every score to the max; the softmax's builds no such compare.
    expect(ops(detached.graph, "cmpeq")).toBe(ops(kept.graph, "cmpeq") - 1);
    expect(ops(detached.graph, "reduce_sum")).toBeLessThan(ops(kept.graph, "reduce_sum"));
    expectClose(detached.values, kept.values, 1e-13, 1e-12);
    // Not vacuous: the gradient is finite, not zero, and zero where the mask hides a score.
    expect(detached.values.every(Number.isFinite)).toBe(true);
    expect(Math.max(...detached.values.map(Math.abs))).toBeGreaterThan(0.1);
    expect(detached.values.filter((_, i) => mask[i] === -Infinity).every((v) => v === 0)).toBe(true);
  });

  test("a max read elsewhere too keeps its gradient", () => {
    const specs = [k.f32([R, C]), k.f32([R, C])];
    const fn = (a: k.Tensor, b: k.Tensor): k.Tensor =>
      k.grad((s: k.Tensor) => {
        const m = s.amax(-1, true);
        const e = s.sub(m).exp();
        return e.div(e.sum(-1, true)).mul(b).sum().add(m.sum());
      })(a);
    const { graph, values } = runRef(fn, specs, [x, w]);
    expect(ops(graph, "cmpeq")).toBeGreaterThan(0);
    // Σ of the gradient over a row: 0 from the softmax, 1 from the max.
    for (let r = 0; r < R; r++) expect(values.slice(r * C, r * C + C).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 10);
  });
});
