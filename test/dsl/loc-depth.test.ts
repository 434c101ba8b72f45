// biome-ignore-all format: each op and its thisLine() share one source line, which is what the test checks
// Source locations when the user's frame moves between depths: dsl/loc.ts captures as many
// frames as the last op's user frame needed (plus a little), and falls back to full captures
// when the user's frame lies deeper. Consecutive ops at very different depths (a primitive
// called directly, then a composite inside nested modules, then a primitive again) must each
// still name their own line, as read from V8's plain stack for the same line.

import { describe, expect, test, vi } from "vitest";
import * as k from "kiln";
import { nodeOf } from "../../compiler/ir/graph.ts";
import { thisLine } from "../util/kiln-error.ts";

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

  test("a broadcasting binary op and where trace their casts, reshapes and expands with one stack capture, at the op's own line", () => {
    const lines: Record<string, number> = {};
    let captures = -1;
    const traced = k.traceFunction(
      "t",
      (x: k.Tensor, b: k.Tensor, m: k.Tensor) => {
        const spy = vi.spyOn(Error, "captureStackTrace");
        const y = x.add(b); lines["y"] = thisLine();
        const z = k.where(m, y, 0); lines["z"] = thisLine();
        captures = spy.mock.calls.length;
        spy.mockRestore();
        return z;
      },
      [k.f32([4, 8]), k.f32([8]), k.bool([4, 1])],
    );
    // add: b reshaped to [1, 8] and expanded to [4, 8], then the add; where: the constant 0, the
    // mask expanded, the where: each op one capture (a capture per node would be 3 and 4+).
    expect(captures).toBe(2);
    const g = traced.graph;
    const made = g.nodes.filter((n) => n.op !== "input");
    expect(made.length).toBeGreaterThanOrEqual(6);
    const byLine = new Map<number, string[]>();
    for (const n of made) byLine.set(n.loc!.line, [...(byLine.get(n.loc!.line) ?? []), n.op]);
    expect(byLine.get(lines["y"]!)).toEqual(expect.arrayContaining(["reshape", "expand", "add"]));
    expect(byLine.get(lines["z"]!)).toEqual(expect.arrayContaining(["expand", "where"]));
    expect([...byLine.keys()].sort()).toEqual([lines["y"], lines["z"]].sort());
  });
});
