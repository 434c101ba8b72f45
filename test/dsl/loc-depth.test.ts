// biome-ignore-all format: each op and its thisLine() share one source line, which is what the test checks
// Source locations when the user's frame moves between depths: dsl/loc.ts captures as many
// frames as the last op's user frame needed (plus a little), and falls back to full captures
// when the user's frame lies deeper. Consecutive ops at very different depths (a primitive
// called directly, then a composite inside nested modules, then a primitive again) must each
// still name their own line, as read from V8's plain stack for the same line.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { nodeOf } from "../../compiler/ir/graph.ts";

/** The line number of the caller, read from a plain V8 stack trace. */
function thisLine(): number {
  const frame = new Error().stack!.split("\n")[2]!;
  return Number(/:(\d+):\d+\)?$/.exec(frame)![1]);
}

/** Nests `depth` plain function frames of this (user) file around `f`: the op's user frame is the innermost, under a stack deeper than one capture. */
function nested(depth: number, f: () => k.Tensor): k.Tensor {
  return depth === 0 ? f() : nested(depth - 1, f);
}

describe("source locations across changing stack depths", () => {
  test("shallow, deep (composite inside nested Kiln modules), shallow again: each op names its own line", () => {
    const lines: Record<string, number> = {};
    const net = k.nn.sequential(k.nn.sequential(k.nn.layerNorm(8)));
    const traced = k.traceFunction(
      "t",
      (x: k.Tensor) => {
        const a = x.exp(); lines["a"] = thisLine();
        const b = net.call(a); lines["b"] = thisLine();
        const c = nested(30, () => b.neg()); lines["c"] = thisLine();
        const d = c.mul(2); lines["d"] = thisLine();
        return d;
      },
      [k.f32([4, 8])],
    );
    const g = traced.graph;
    const lineOf = (id: number): number | undefined => nodeOf(g, id as never).loc?.line;
    const out = g.outputs[0]!.value;
    const d = nodeOf(g, out);
    expect(lineOf(d.id)).toBe(lines["d"]);
    // Every line the graph names is one of the four the function wrote, and all four appear.
    const named = new Set(g.nodes.filter((n) => n.op !== "input" && n.loc).map((n) => n.loc!.line));
    expect([...named].sort()).toEqual(Object.values(lines).sort());
    // The composite's nodes (several primitives deep inside Kiln) name its call line.
    const layerNormNodes = g.nodes.filter((n) => n.loc?.line === lines["b"]);
    expect(layerNormNodes.length).toBeGreaterThan(3);
  });
});
