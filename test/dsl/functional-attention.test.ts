// scaledDotProductAttention against an explicit per-query loop (scores, masked softmax,
// weighted sum of values); oneHot and l1Loss against loops; the activation re-exports.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { gradcheck } from "../util/gradcheck.ts";
import { randomData } from "./functional-helpers.ts";

const F = k.nn.functional;

/** q [B, L, E], k [B, S, E], v [B, S, D]; allowed(b, i, j) says whether query i sees key j. */
function attentionLoop(
  q: number[],
  kk: number[],
  v: number[],
  [b, l, s, e, d]: number[],
  scale: number,
  allowed: (bi: number, i: number, j: number) => boolean,
): number[] {
  const out: number[] = [];
  for (let bi = 0; bi < b!; bi++)
    for (let i = 0; i < l!; i++) {
      const scores: number[] = [];
      for (let j = 0; j < s!; j++) {
        let dot = 0;
        for (let c = 0; c < e!; c++) dot += q[(bi * l! + i) * e! + c]! * kk[(bi * s! + j) * e! + c]!;
        scores.push(allowed(bi, i, j) ? Math.exp(dot * scale) : 0);
      }
      const z = scores.reduce((a, x) => a + x, 0);
      for (let c = 0; c < d!; c++) out.push(scores.reduce((a, w, j) => a + (w / z) * v[(bi * s! + j) * d! + c]!, 0));
    }
  return out;
}

describe("scaledDotProductAttention", () => {
  const dims = [2, 3, 4, 5, 2]; // B, L, S, E, D
  const [B, L, S, E, D] = dims as [number, number, number, number, number];
  const q = randomData(B * L * E, 1);
  const kk = randomData(B * S * E, 2);
  const v = randomData(B * S * D, 3);
  const specs = [k.f32([B, L, E]), k.f32([B, S, E]), k.f32([B, S, D])];

  test("unmasked, default scale 1/sqrt(E)", () => {
    const r = runRef((a: k.Tensor, b: k.Tensor, c: k.Tensor) => F.scaledDotProductAttention(a, b, c), specs, [q, kk, v]);
    expect(r.shape).toEqual([B, L, D]);
    expectClose(
      r.values,
      attentionLoop(q, kk, v, dims, 1 / Math.sqrt(E), () => true),
      1e-13,
      1e-12,
    );
  });

  test("causal, custom scale", () => {
    const r = runRef((a: k.Tensor, b: k.Tensor, c: k.Tensor) => F.scaledDotProductAttention(a, b, c, { isCausal: true, scale: 0.7 }), specs, [q, kk, v]);
    expectClose(
      r.values,
      attentionLoop(q, kk, v, dims, 0.7, (_, i, j) => j <= i),
      1e-13,
      1e-12,
    );
  });

  test("bool mask broadcast over the batch; float mask added to the scores", () => {
    const mask = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0]; // [L, S]
    const r = runRef(
      (a: k.Tensor, b: k.Tensor, c: k.Tensor, m: k.Tensor) => F.scaledDotProductAttention(a, b, c, { attnMask: m }),
      [...specs, k.bool([L, S])],
      [q, kk, v, mask],
    );
    expectClose(
      r.values,
      attentionLoop(q, kk, v, dims, 1 / Math.sqrt(E), (_, i, j) => mask[i * S + j] === 1),
      1e-13,
      1e-12,
    );
    // A float mask of 0 / -inf is the same as the bool mask.
    const additive = mask.map((m) => (m ? 0 : -Infinity));
    const rf = runRef(
      (a: k.Tensor, b: k.Tensor, c: k.Tensor, m: k.Tensor) => F.scaledDotProductAttention(a, b, c, { attnMask: m }),
      [...specs, k.f32([L, S])],
      [q, kk, v, additive],
    );
    expectClose(rf.values, r.values, 1e-15, 1e-13);
  });

  test("gradients wrt q, k, v match finite differences (causal)", () => {
    gradcheck(
      (a: k.Tensor, b: k.Tensor, c: k.Tensor) => F.scaledDotProductAttention(a, b, c, { isCausal: true }),
      [k.f32([1, 3, 2]), k.f32([1, 3, 2]), k.f32([1, 3, 2])],
      [randomData(6, 4), randomData(6, 5), randomData(6, 6)],
    );
  });

  test("errors", () => {
    const run =
      (ks: number[], opts = {}) =>
      () =>
        traceFunction("t", (a: k.Tensor, b: k.Tensor, c: k.Tensor) => F.scaledDotProductAttention(a, b, c, opts), [
          k.f32([2, 3, 4]),
          k.f32(ks),
          k.f32([2, 5, 2]),
        ]);
    expect(run([2, 5, 3])).toThrow(/^shape mismatch in scaledDotProductAttention: query \[2,3,4\] and key \[2,5,3\] differ in the last dim at /);
    expect(run([2, 6, 4])).toThrow("shape mismatch in scaledDotProductAttention: key [2,6,4] and value [2,5,2] differ in sequence length");
  });
});

describe("oneHot, l1Loss, activations", () => {
  test("oneHot puts a 1 at each index; out-of-range gives a zero row", () => {
    const idx = [2, 0, 3, 7];
    const r = runRef((i: k.Tensor) => F.oneHot(i, 4), [k.i32([2, 2])], [idx]);
    expect(r.shape).toEqual([2, 2, 4]);
    expect(r.outputs[0]!.dtype).toBe("i32");
    expect(r.values).toEqual(idx.flatMap((i) => [0, 1, 2, 3].map((c) => (c === i ? 1 : 0))));
  });

  test("l1Loss: mean |a - b|", () => {
    const a = randomData(6, 7);
    const b = randomData(6, 8);
    const r = runRef((x: k.Tensor, y: k.Tensor) => F.l1Loss(x, y), [k.f32([2, 3]), k.f32([2, 3])], [a, b]);
    expectClose(r.values, [a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / 6], 1e-15, 1e-12);
    expect(k.nn.l1Loss).toBe(F.l1Loss);
  });

  test("relu and sigmoid are exported under torch.nn.functional's names", () => {
    const data = [-2, -0.5, 0, 1.5];
    const r = runRef((x: k.Tensor) => [F.relu(x), F.sigmoid(x)], [k.f32([4])], [data]);
    expect(r.values).toEqual([0, 0, 0, 1.5]);
    expectClose(
      Array.from(r.outputs[1]!.data),
      data.map((x) => 1 / (1 + Math.exp(-x))),
      1e-15,
      1e-12,
    );
  });
});
