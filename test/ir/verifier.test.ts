// Verifier: graphs broken by hand (wrong declared type, use before def, undefined operands,
// duplicate names, bad input list, bad aliases, bad attributes) must each be reported with
// the value as printed and the broken rule; valid graphs give no findings.

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import { verifyGraph, verifyOrThrow } from "../../compiler/ir/verifier.ts";
import { KilnError } from "../../compiler/util/errors.ts";
import { valueId, type Graph, type Node } from "../../compiler/ir/types.ts";
import { everyOpGraph, randomGraph } from "../util/random-graph.ts";

const f32 = (...shape: number[]) => ({ dtype: "f32" as const, shape });

/** x: f32[4], y: f32[4]; %0 = add x y; %1 = neg %0; returns %1 as out. */
function small(): Graph {
  const b = new GraphBuilder("small");
  const x = b.input("x", f32(4));
  const y = b.input("y", f32(4));
  const s = b.add({ op: "add", x, y });
  const n = b.add({ op: "neg", x: s });
  return b.build([{ name: "out", value: n }]);
}

const messages = (g: Graph) => verifyGraph(g).map((d) => d.message);
const replaceNode = (g: Graph, index: number, node: Node): Graph => ({ ...g, nodes: g.nodes.map((n, i) => (i === index ? node : n)) });

describe("verifyGraph", () => {
  test("valid graphs have no findings", () => {
    expect(verifyGraph(small())).toEqual([]);
    expect(verifyGraph(everyOpGraph())).toEqual([]);
    for (let seed = 0; seed < 20; seed++) expect(verifyGraph(randomGraph(seed)), `seed ${seed}`).toEqual([]);
  });

  test("a node whose declared type disagrees with its rule", () => {
    const g = small();
    const bad = replaceNode(g, 2, { ...g.nodes[2]!, type: f32(5) } as Node);
    expect(messages(bad)).toContain("%0 = add %x, %y : f32[5]: declared type f32[5] but the rule gives f32[4]");
  });

  test("operand shapes that break the binary rule", () => {
    const b = new GraphBuilder("g");
    const x = b.input("x", f32(4));
    const y = b.input("y", f32(3));
    const g = b.build([]);
    const add = { id: valueId(7), op: "add", x, y, type: f32(4) } as Node;
    const msgs = messages({ ...g, nodes: [...g.nodes, add] });
    expect(msgs).toEqual(["%0 = add %x, %y : f32[4]: operand shapes differ: [4] vs [3]"]);
  });

  test("use before definition names both values", () => {
    const g = small();
    const swapped = { ...g, nodes: [g.nodes[0]!, g.nodes[1]!, g.nodes[3]!, g.nodes[2]!] };
    // Printed names follow node order: the neg is now %0 and the add %1.
    expect(messages(swapped)).toEqual(["%0 = neg %1 : f32[4]: uses %1 before its definition (nodes must be in topological order)"]);
  });

  test("an operand that is defined nowhere", () => {
    const g = small();
    const bad = replaceNode(g, 3, { ...(g.nodes[3] as Node & { x: number }), x: valueId(99) } as Node);
    expect(messages(bad)).toEqual(["%1 = neg %<undefined 99> : f32[4]: operand with id 99 is not defined anywhere"]);
  });

  test("duplicate ids break SSA", () => {
    const g = small();
    const dup = { ...g.nodes[3]!, id: g.nodes[2]!.id } as Node;
    const msgs = messages(replaceNode(g, 3, dup));
    expect(msgs.some((m) => m.includes("is defined twice"))).toBe(true);
  });

  test("duplicate input names and output names", () => {
    const g = small();
    const renamed = replaceNode(g, 1, { ...(g.nodes[1] as Node & { name: string }), name: "x" } as Node);
    expect(messages(renamed)).toContain("input list: input name 'x' is used twice");
    const twoOuts = { ...g, outputs: [...g.outputs, { name: "out", value: g.nodes[2]!.id }] };
    expect(messages(twoOuts)).toEqual(["return %0 as out: output name 'out' is used twice"]);
  });

  test("the input list must list exactly the input nodes", () => {
    const g = small();
    // 'y' is no longer a listed input, so it prints as a numbered value.
    expect(messages({ ...g, inputs: [g.inputs[0]!] })).toEqual(["%0 = input \"y\" : f32[4]: input node 'y' is missing from the graph's input list"]);
    expect(messages({ ...g, inputs: [...g.inputs, g.nodes[2]!.id] })).toEqual(["input list: entry 2 is a 'add' node, not an input"]);
    expect(messages({ ...g, inputs: [...g.inputs, valueId(42)] })).toEqual(["input list: entry 2 (id 42) is not a node of the graph"]);
  });

  test("outputs must be defined; aliases must name an input of the same type", () => {
    const g = small();
    expect(messages({ ...g, outputs: [{ name: "o", value: valueId(50) }] })).toEqual(["return (id 50) as o: the output value is not defined"]);
    expect(messages({ ...g, outputs: [{ name: "o", value: g.nodes[3]!.id, aliases: "z" }] })).toEqual(["return %1 as o: aliases 'z', which is not an input"]);
    const b = new GraphBuilder("a");
    const w = b.input("w", f32(2));
    const s = b.add({ op: "reduce_sum", x: w, axes: [0] });
    expect(messages(b.build([{ name: "w", value: s, aliases: "w" }]))).toEqual(["return %0 as w: has type f32[1] but aliases input 'w' of type f32[2]"]);
  });

  test("attribute sanity comes from the type rules", () => {
    const b = new GraphBuilder("a");
    const x = b.input("x", f32(2, 3));
    const p = b.add({ op: "permute", x, perm: [1, 0] });
    const r = b.add({ op: "reduce_sum", x, axes: [1] });
    const g = b.build([]);
    const badPerm = replaceNode(g, 1, { ...(g.nodes[1] as Node), perm: [1, 1] } as Node);
    expect(messages(badPerm)).toEqual(["%0 = permute %x perm=[1,1] : f32[3,2]: [1,1] is not a permutation of rank 2"]);
    const badAxes = replaceNode(g, 2, { ...(g.nodes[2] as Node), axes: [1, 0] } as Node);
    expect(messages(badAxes)[0]).toBe("%1 = reduce_sum %x axes=[1,0] : f32[2,1]: axes [1,0] must be sorted and unique");
    void p;
    void r;
  });

  test("fill values must fit the dtype they fill", () => {
    const b = new GraphBuilder("a");
    const x = b.input("x", { dtype: "bool", shape: [2] });
    b.add({ op: "pad", x, low: [1], high: [0], value: 2 });
    b.add({ op: "const", value: 2 ** 31 }, { dtype: "i32", shape: [] });
    b.add({ op: "const", value: -(2 ** 31) }, { dtype: "i32", shape: [] });
    expect(messages(b.build([]))).toEqual([
      "%0 = pad %x low=[1] high=[0] value=2 : bool[3]: pad value 2 is not a bool (0 or 1)",
      "%1 = const 2147483648 : i32[]: value 2147483648 is out of i32 range",
    ]);
  });

  test("a finding carries the node's source location", () => {
    const g = small();
    const loc = { file: "model.ts", line: 3, col: 9 };
    const bad = replaceNode(g, 2, { ...g.nodes[2]!, type: f32(5), loc } as Node);
    expect(verifyGraph(bad)[0]!.loc).toEqual(loc);
  });
});

describe("verifyOrThrow", () => {
  test("names the pass and the first finding, lists the rest", () => {
    const g = small();
    const bad = { ...replaceNode(g, 2, { ...g.nodes[2]!, type: f32(5) } as Node), outputs: [...g.outputs, ...g.outputs] };
    let caught: unknown;
    try {
      verifyOrThrow(bad, "simplify");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KilnError);
    const err = caught as KilnError;
    expect(err.code).toBe("ir-verify");
    expect(err.message).toBe(
      "after pass 'simplify': %0 = add %x, %y : f32[5]: declared type f32[5] but the rule gives f32[4]\n" +
        "  also: %1 = neg %0 : f32[4]: declared type f32[4] but the rule gives f32[5]\n" +
        "  also: return %1 as out: output name 'out' is used twice",
    );
  });

  test("without a pass name it names the graph; a valid graph passes", () => {
    expect(() => verifyOrThrow(small())).not.toThrow();
    const g = small();
    expect(() => verifyOrThrow({ ...g, outputs: [...g.outputs, ...g.outputs] })).toThrow("graph @small: return %1 as out: output name 'out' is used twice");
  });
});
