// Printer: hand-written expected text for a graph using every op, number and name quoting,
// locations on/off, and canonical naming independent of internal ids.

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import { formatNumber, printGraph, printModule, quoteName } from "../../compiler/ir/printer.ts";
import { valueId, type Graph, type Node } from "../../compiler/ir/types.ts";
import { everyOpGraph } from "../util/random-graph.ts";

const f32 = (...shape: number[]) => ({ dtype: "f32" as const, shape });

const EVERY_OP_TEXT = `graph @every_op(%x: f32[2,3], %seed: i32[]) {
  %0 = const 0.5 : f32[2,3]
  %1 = iota axis=1 : i32[2,3]
  %2 = rng seed=%seed stream=3 : f32[2,3]
  %3 = neg %x : f32[2,3]
  %4 = exp2 %3 : f32[2,3]
  %5 = log2 %4 : f32[2,3]
  %6 = sin %5 : f32[2,3]
  %7 = sqrt %6 : f32[2,3]
  %8 = recip %7 : f32[2,3]
  %9 = cast %1 : f32[2,3]
  %10 = add %8, %0 : f32[2,3]
  %11 = mul %10, %2 : f32[2,3]
  %12 = max %11, %2 : f32[2,3]
  %13 = cmplt %12, %9 : bool[2,3]
  %14 = cmpeq %1, %1 : bool[2,3]
  %15 = idiv %1, %1 : i32[2,3]
  %16 = mod %15, %1 : i32[2,3]
  %17 = where %13, %12, %x : f32[2,3]
  %18 = reduce_sum %17 axes=[1] : f32[2,1]
  %19 = reduce_max %16 axes=[0,1] : i32[1,1]
  %20 = reshape %18 : f32[1,2]
  %21 = permute %17 perm=[1,0] : f32[3,2]
  %22 = expand %20 : f32[3,2]
  %23 = pad %21 low=[0,1] high=[2,0] value=-inf : f32[5,3]
  %24 = slice %23 start=[1,0] stop=[5,3] step=[2,1] : f32[2,3]
  %25 = flip %24 axes=[0,1] : f32[2,3]
  %26 = dot %x, %22 : f32[2,2]
  %27 = const 1 : i32[2,2]
  %28 = gather %26, %27 axis=1 : f32[2,2]
  return %28 as gathered, %25 as flipped, %19 as max, %14 as eq, %x as x aliases %x
}
`;

describe("printGraph", () => {
  test("every op prints with its attributes and result type", () => {
    expect(printGraph(everyOpGraph())).toBe(EVERY_OP_TEXT);
  });

  test("names come from node order, not ids", () => {
    const g = everyOpGraph();
    const shift = (id: number) => valueId(id * 7 + 100);
    const remap = (n: Node): Node => {
      const m: Record<string, unknown> = { ...n, id: shift(n.id) };
      for (const role of ["x", "y", "cond", "lhs", "rhs", "index", "seed"]) if (typeof m[role] === "number") m[role] = shift(m[role] as number);
      return m as unknown as Node;
    };
    const shifted: Graph = { ...g, nodes: g.nodes.map(remap), inputs: g.inputs.map(shift), outputs: g.outputs.map((o) => ({ ...o, value: shift(o.value) })) };
    expect(printGraph(shifted)).toBe(EVERY_OP_TEXT);
  });

  test("numbers print in shortest round-trip form", () => {
    expect([NaN, Infinity, -Infinity, -0, 0, 0.1, 1e21, 1e-7, -2.5, 3].map(formatNumber)).toEqual([
      "nan",
      "inf",
      "-inf",
      "-0",
      "0",
      "0.1",
      "1e+21",
      "1e-7",
      "-2.5",
      "3",
    ]);
    expect(formatNumber(Math.fround(0.1))).toBe("0.10000000149011612");
  });

  test("names that are not plain identifiers or are keywords are quoted", () => {
    expect(["w1", "params.fc1.weight", "_a", "0", "a b", "graph", "inf", 'q"t', ""].map(quoteName)).toEqual([
      "w1",
      "params.fc1.weight",
      "_a",
      '"0"',
      '"a b"',
      '"graph"',
      '"inf"',
      '"q\\"t"',
      '""',
    ]);
  });

  test("locations print aligned when asked, and only then", () => {
    const b = new GraphBuilder("f");
    const x = b.input("my x", f32(4), { file: "m.ts", line: 1, col: 2 });
    const y = b.add({ op: "neg", x, loc: { file: "examples/a b.ts", line: 12, col: 18 } });
    const g = b.build([{ name: "0", value: y }]);
    const neg = '  %0 = neg %"my x" : f32[4]';
    expect(printGraph(g)).toBe(`graph @f(%"my x": f32[4] loc("m.ts":1:2)) {\n${neg.padEnd(54)}  loc("examples/a b.ts":12:18)\n  return %0 as "0"\n}\n`);
    expect(printGraph(g, { locs: false })).toBe(`graph @f(%"my x": f32[4]) {\n${neg}\n  return %0 as "0"\n}\n`);
  });

  test("a module is its graphs separated by blank lines; no outputs prints a bare return", () => {
    const a = new GraphBuilder("a").build([]);
    const b = new GraphBuilder("b b").build([]);
    expect(printModule([a, b])).toBe(`graph @a() {\n  return\n}\n\ngraph @"b b"() {\n  return\n}\n`);
  });
});
