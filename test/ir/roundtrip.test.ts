// print → parse → print is byte-identical, with and without locations, for a hand-built
// graph of every op, for seeded random graphs (the test name carries the seed; a failure
// shows the dump), and for modules of several graphs. The parsed graph also equals the
// original structurally (same ops, attributes, types, locations, in the same order).

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { parseGraph, parseModule } from "../../compiler/ir/parser.ts";
import { printGraph, printModule } from "../../compiler/ir/printer.ts";
import { verifyGraph } from "../../compiler/ir/verifier.ts";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { Graph, Node, ValueId } from "../../compiler/ir/types.ts";
import { everyOpGraph, randomGraph } from "../util/random-graph.ts";

/** CI runs seeds 0–199; `KILN_SEED=1234 npx vitest run test/ir/roundtrip.test.ts` replays one. */
const RANDOM_SEEDS = process.env.KILN_SEED ? [Number(process.env.KILN_SEED)] : Array.from({ length: 200 }, (_, i) => i);

/** The graph with ids replaced by positions, so two graphs built in different orders compare. */
function canonical(g: Graph): unknown {
  const inputsFirst = [...g.inputs.map((id) => g.nodes.find((n) => n.id === id)!), ...g.nodes.filter((n) => !g.inputs.includes(n.id))];
  const position = new Map<ValueId, number>(inputsFirst.map((n, i) => [n.id, i]));
  const renumber = (n: Node) => {
    const out: Record<string, unknown> = { ...n, id: position.get(n.id) };
    for (const role of ["x", "y", "cond", "lhs", "rhs", "index", "seed"]) if (role in out) out[role] = position.get(out[role] as ValueId);
    return out;
  };
  return { name: g.name, nodes: inputsFirst.map(renumber), outputs: g.outputs.map((o) => ({ ...o, value: position.get(o.value) })) };
}

function expectRoundTrip(g: Graph): void {
  for (const locs of [true, false]) {
    const text = printGraph(g, { locs });
    const parsed = parseGraph(text, "roundtrip.kir");
    const again = printGraph(parsed, { locs });
    if (again !== text) expect(again, `reprinted text differs; original dump:\n${text}`).toBe(text);
    expect(verifyGraph(parsed)).toEqual([]);
  }
  expect(canonical(parseGraph(printGraph(g)))).toEqual(canonical(g));
}

function withLocs(g: Graph): Graph {
  return { ...g, nodes: g.nodes.map((n, i) => ({ ...n, loc: { file: i % 2 ? "model.ts" : 'dir with space/"q".ts', line: i + 1, col: 2 * i + 1 } })) };
}

describe("round trip", () => {
  test("every op", () => expectRoundTrip(everyOpGraph()));
  test("every op, with locations on every node", () => expectRoundTrip(withLocs(everyOpGraph())));

  test("special numbers and awkward names", () => {
    const b = new GraphBuilder("weird name\n");
    const x = b.input("graph", { dtype: "f32", shape: [2] });
    const y = b.input("0", { dtype: "f32", shape: [2] });
    const values = [NaN, Infinity, -Infinity, -0, 1e-45, 3.4028234663852886e38, 0.1, -1e21, 5e-324];
    const outs = values.map((value) => b.add({ op: "pad", x, low: [1], high: [0], value }));
    const s = b.add({ op: "add", x, y });
    const g = b.build([...outs.map((value, i) => ({ name: `p ${i}`, value })), { name: "graph", value: s, aliases: "0" }]);
    expectRoundTrip(g);
    const parsed = parseGraph(printGraph(g));
    const padValues = parsed.nodes.flatMap((n) => (n.op === "pad" ? [n.value] : []));
    expect(padValues.map((v) => (Object.is(v, -0) ? "-0" : String(v)))).toEqual(values.map((v) => (Object.is(v, -0) ? "-0" : String(v))));
  });

  test.each(RANDOM_SEEDS)("random graph, seed %i", (seed) => expectRoundTrip(randomGraph(seed)));

  test("a module of several graphs", () => {
    const graphs = [everyOpGraph(), randomGraph(7), withLocs(randomGraph(8))];
    const text = printModule(graphs);
    const parsed = parseModule(text, "module.kir");
    expect(parsed.map((g) => g.name)).toEqual(["every_op", "random_7", "random_8"]);
    expect(printModule(parsed)).toBe(text);
  });

  test("comments and free spacing are accepted; printing makes them canonical", () => {
    const text = `// RUN: simplify
// CHECK: add
graph @f(  %a : f32[ 3 ] ,%b:f32[3]) {   // trailing comment
  %t=add %a,%b:f32[3]
  %u = mul %t , %t : f32[3] loc("m.ts" : 4 : 5)
  return %u as y , %t as "z"
}
`;
    expect(printGraph(parseGraph(text))).toBe(`graph @f(%a: f32[3], %b: f32[3]) {
  %0 = add %a, %b : f32[3]
  %1 = mul %0, %0 : f32[3]                              loc("m.ts":4:5)
  return %1 as y, %0 as z
}
`);
  });

  test("the example in docs/ir.md parses and reprints unchanged", () => {
    const doc = readFileSync(new URL("../../docs/ir.md", import.meta.url), "utf8");
    const example = doc.split("```")[1]!.replace(/^\n/, "");
    expect(printModule(parseModule(example, "docs/ir.md"))).toBe(example);
  });
});
