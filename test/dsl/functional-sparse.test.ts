// embedding against a direct table lookup; dropout's counter-based mask: reproducible per
// seed, different across seeds and across dropout calls in one graph, keeps ≈ 1-p of the
// elements and scales them by 1/(1-p); identity when not training.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { traceFunction } from "../../dsl/trace.ts";
import { runRef } from "../util/ref.ts";
import { randomData } from "./functional-helpers.ts";

const F = k.nn.functional;

describe("embedding", () => {
  test("out[i, j, :] = weight[indices[i, j], :]", () => {
    const weight = randomData(6 * 3, 1);
    const indices = [5, 0, 2, 2, 1, 4];
    const r = runRef((idx: k.Tensor, w: k.Tensor) => F.embedding(idx, w), [k.i32([2, 3]), k.f32([6, 3])], [indices, weight]);
    expect(r.shape).toEqual([2, 3, 3]);
    expect(r.values).toEqual(indices.flatMap((i) => weight.slice(i * 3, i * 3 + 3)));
  });

  test("errors: float indices, 3-d weight", () => {
    expect(() => traceFunction("t", (i: k.Tensor, w: k.Tensor) => F.embedding(i, w), [k.f32([4]), k.f32([6, 3])])).toThrow(
      /^dtype mismatch in embedding: indices must be i32, got f32\[4\] at /,
    );
    expect(() => traceFunction("t", (i: k.Tensor, w: k.Tensor) => F.embedding(i, w), [k.i32([4]), k.f32([6, 3, 1])])).toThrow(
      "shape mismatch in embedding: weight must be [num, dim], got [6,3,1]",
    );
  });
});

describe("dropout", () => {
  const size = 4096;
  const ones = new Array<number>(size).fill(1);
  const seed = (s: number): Record<string, HostTensor> => ({ seed: { dtype: "i32", shape: [], data: Int32Array.of(s) } });
  const run = (p: number, s: number) => runRef((x: k.Tensor) => F.dropout(x, p), [k.f32([size])], [ones], seed(s)).values;

  test("keeps ≈ 1-p of the elements, scaled by 1/(1-p), zeroes the rest", () => {
    const p = 0.3;
    const out = run(p, 7);
    const kept = out.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 1 / (1 - p)) < 1e-12)).toBe(true);
    // Binomial(4096, 0.7): sd ≈ 0.0072 in the fraction; allow 5 sd.
    expect(Math.abs(kept.length / size - (1 - p))).toBeLessThan(0.036);
  });

  test("same seed, same mask; another seed, another mask", () => {
    const a = run(0.5, 1);
    expect(run(0.5, 1)).toEqual(a);
    const b = run(0.5, 2);
    const differing = a.filter((v, i) => v !== b[i]).length;
    expect(differing).toBeGreaterThan(size / 4); // independent masks differ in ~half the places
  });

  test("scales real values, not just ones", () => {
    const data = randomData(256, 3);
    const out = runRef((x: k.Tensor) => F.dropout(x, 0.25), [k.f32([256])], [data], seed(5)).values;
    out.forEach((v, i) => expect(v === 0 || Math.abs(v - data[i]! / 0.75) < 1e-12).toBe(true));
  });

  test("two dropouts in one graph draw different masks from one seed input", () => {
    const r = runRef((x: k.Tensor) => [F.dropout(x, 0.5), F.dropout(x, 0.5)], [k.f32([size])], [ones], seed(9));
    const [a, b] = r.outputs.map((o) => Array.from(o.data));
    expect(a!.filter((v, i) => v !== b![i]).length).toBeGreaterThan(size / 4);
    expect(r.graph.inputs.length).toBe(2); // x and the one shared seed
  });

  test("not training, or p = 0, is the identity and needs no seed; p = 1 zeroes", () => {
    const idle = traceFunction("t", (x: k.Tensor) => [F.dropout(x, 0.5, false), F.dropout(x, 0)], [k.f32([8])]).graph;
    expect(idle.nodes.some((n) => n.op === "rng")).toBe(false);
    expect(idle.outputs.every((o) => o.value === idle.inputs[0])).toBe(true);
    expect(runRef((x: k.Tensor) => F.dropout(x, 1), [k.f32([4])], [[1, 2, 3, 4]]).values).toEqual([0, 0, 0, 0]);
  });

  test("tracing twice gives the same graph (streams are numbered in trace order)", () => {
    const fn = (x: k.Tensor) => F.dropout(F.dropout(x, 0.2), 0.4);
    const traceOnce = () => traceFunction("t", fn, [k.f32([16])]).graph;
    const g1 = traceOnce();
    const g2 = traceOnce();
    expect(JSON.stringify(g2)).toBe(JSON.stringify(g1));
    expect(g1.nodes.filter((n) => n.op === "rng").map((n) => (n.op === "rng" ? n.stream : -1))).toEqual([0, 1]);
  });

  test("p outside [0, 1] is an error", () => {
    expect(() => traceFunction("t", (x: k.Tensor) => F.dropout(x, 1.5), [k.f32([4])])).toThrow(/^dropout: p must be in \[0, 1\], got 1.5 at /);
  });
});
