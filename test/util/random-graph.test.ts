// The random graph generator: deterministic per seed, covers every op over the CI seed
// range, keeps tensors small, and its graphs evaluate on the float64 interpreter with
// randomInputs to finite values (what differential fuzzing needs).

import { describe, expect, test } from "vitest";
import { interpret } from "../../compiler/ir/interpret.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import { BINARY_OPS, MOVEMENT_OPS, REDUCE_OPS, UNARY_OPS } from "../../compiler/ir/types.ts";
import { numel } from "../../compiler/util/shape.ts";
import { randomGraph, randomInputs } from "./random-graph.ts";

const SEEDS = Array.from({ length: 200 }, (_, i) => i);
const ALL_OPS = ["input", "const", "iota", "rng", "cast", "where", "dot", "gather", ...UNARY_OPS, ...BINARY_OPS, ...REDUCE_OPS, ...MOVEMENT_OPS];

describe("randomGraph", () => {
  test("the same seed gives the same graph; different seeds differ", () => {
    expect(printGraph(randomGraph(42))).toBe(printGraph(randomGraph(42)));
    expect(printGraph(randomGraph(42))).not.toBe(printGraph(randomGraph(43)));
  });

  test("every op appears across the seed range; tensors stay small", () => {
    const seen = new Set<string>();
    for (const seed of SEEDS) {
      for (const n of randomGraph(seed).nodes) {
        seen.add(n.op);
        expect(numel(n.type.shape), `seed ${seed}`).toBeLessThanOrEqual(256);
      }
    }
    expect([...ALL_OPS].filter((op) => !seen.has(op))).toEqual([]);
  });

  test("graphs evaluate to finite values on their random inputs", () => {
    for (const seed of SEEDS.slice(0, 100)) {
      const g = randomGraph(seed);
      const outputs = interpret(g, randomInputs(g, seed));
      for (const [name, t] of Object.entries(outputs)) {
        const bad = Array.from(t.data).findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) expect.fail(`seed ${seed}: output ${name}[${bad}] is ${t.data[bad]}\n${printGraph(g)}`);
      }
    }
  });

  test("randomInputs matches the graph's input types and is deterministic", () => {
    const g = randomGraph(3);
    const a = randomInputs(g, 9);
    for (const n of g.nodes) {
      if (n.op !== "input") continue;
      expect(a[n.name]!.dtype).toBe(n.type.dtype);
      expect(a[n.name]!.data.length).toBe(numel(n.type.shape));
    }
    expect(randomInputs(g, 9)).toEqual(a);
  });
});
