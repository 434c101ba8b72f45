// gradGraph / vjpGraph as Graph → Graph passes: output naming, verified results, zero
// gradients, cotangents only on the path from wrt to the output, kept source locations,
// second derivatives at the graph level, and the error messages.

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../../compiler/ir/graph.ts";
import { interpret } from "../../../compiler/ir/interpret.ts";
import { verifyOrThrow } from "../../../compiler/ir/verifier.ts";
import type { Graph, TensorType, ValueId } from "../../../compiler/ir/types.ts";
import { autodiffPass, gradGraph, vjpGraph } from "../../../compiler/passes/autodiff/engine.ts";
import { dce } from "../../../compiler/passes/dce.ts";
import { runPasses } from "../../../compiler/pipeline.ts";
import type { SourceLoc } from "../../../compiler/util/errors.ts";
import { hostTensor } from "../../util/gradcheck.ts";
import { expectClose } from "../../util/ref.ts";

const f32 = (...shape: number[]): TensorType => ({ dtype: "f32", shape });

/** sum(x³) over x: f32[n] (plus, optionally, an unrelated branch on y). */
function cubeSum(n: number, withBranch = false, loc?: SourceLoc): Graph {
  const b = new GraphBuilder("cube");
  const x = b.input("x", f32(n));
  const y = b.input("y", f32(n));
  const at = loc ? { loc } : {};
  const sq = b.add({ op: "mul", x, y: x, ...at });
  const cube = b.add({ op: "mul", x: sq, y: x, ...at });
  let total: ValueId = b.add({ op: "reduce_sum", x: cube, axes: [0], ...at });
  if (withBranch) {
    const side = b.add({ op: "reduce_sum", x: b.add({ op: "exp2", x: y }), axes: [0] });
    total = b.add({ op: "add", x: total, y: side });
  }
  const scalar = b.add({ op: "reshape", x: total }, f32());
  return b.build([{ name: "loss", value: scalar }]);
}

const bind = (x: number[], y: number[]) => ({ x: hostTensor(f32(x.length), x), y: hostTensor(f32(y.length), y) });

describe("gradGraph", () => {
  test("outputs grad.<input>, verifies, and computes 3x²; unused inputs get zeros", () => {
    const g = gradGraph(cubeSum(3), { of: "loss", wrt: ["x", "y"] });
    verifyOrThrow(g, "autodiff");
    expect(g.outputs.map((o) => o.name)).toEqual(["grad.x", "grad.y"]);
    expect(g.inputs.length).toBe(2);
    const out = interpret(g, bind([1, -2, 0.5], [4, 5, 6]));
    expectClose(out["grad.x"]!.data, [3, 12, 0.75]);
    expectClose(out["grad.y"]!.data, [0, 0, 0]);
  });

  test("keepOutputs keeps the original outputs first", () => {
    const g = gradGraph(cubeSum(2, true), { of: "loss", wrt: ["y"], keepOutputs: true });
    verifyOrThrow(g, "autodiff");
    expect(g.outputs.map((o) => o.name)).toEqual(["loss", "grad.y"]);
    const out = interpret(g, bind([1, 2], [0, 1]));
    expectClose(out["loss"]!.data, [1 + 8 + 1 + 2]);
    expectClose(out["grad.y"]!.data, [Math.LN2, 2 * Math.LN2]);
  });

  test("a branch off the path from wrt to the output adds no backward nodes", () => {
    const added = (g: Graph) => gradGraph(g, { of: "loss", wrt: ["x"] }).nodes.length - g.nodes.length;
    expect(added(cubeSum(3, true))).toBe(added(cubeSum(3, false)));
  });

  test("a weight-only gradient builds no cotangent for the data operand of a dot", () => {
    const b = new GraphBuilder("linear");
    const x = b.input("x", f32(4, 3));
    const w = b.input("w", f32(3, 2));
    const loss = b.add({ op: "reduce_sum", x: b.add({ op: "dot", lhs: x, rhs: w }), axes: [0, 1] });
    const fwd = b.build([{ name: "loss", value: b.add({ op: "reshape", x: loss }, f32()) }]);
    const dots = (wrt: string[]) => gradGraph(fwd, { of: "loss", wrt }).nodes.filter((n) => n.op === "dot").length;
    expect(dots(["w"])).toBe(2);
    expect(dots(["x", "w"])).toBe(3);
  });

  test("an embedding's backward is one dot over a [count, vocab] one-hot, not a 3-d one-hot", () => {
    const b = new GraphBuilder("embed");
    const table = b.input("table", f32(50, 8));
    const ids = b.input("ids", { dtype: "i32", shape: [6, 1] });
    const rows = b.add({ op: "gather", x: table, index: b.add({ op: "expand", x: ids }, { dtype: "i32", shape: [6, 8] }), axis: 0 });
    const loss = b.add({ op: "reshape", x: b.add({ op: "reduce_sum", x: rows, axes: [0, 1] }) }, f32());
    const fwd = b.build([{ name: "loss", value: loss }]);
    const backward = gradGraph(fwd, { of: "loss", wrt: ["table"] }).nodes.slice(fwd.nodes.length);
    expect(backward.filter((n) => n.op === "dot").map((n) => n.type.shape)).toEqual([[50, 8]]);
    expect(Math.max(...backward.map((n) => n.type.shape.length))).toBe(2);
  });

  test("backward nodes carry the forward node's source location", () => {
    const loc: SourceLoc = { file: "model.ts", line: 7, col: 3 };
    const fwd = cubeSum(2, false, loc);
    const g = gradGraph(fwd, { of: "loss", wrt: ["x"] });
    const backward = g.nodes.slice(fwd.nodes.length).filter((n) => n.op === "mul" || n.op === "expand");
    expect(backward.length).toBeGreaterThan(0);
    for (const n of backward) expect(n.loc).toEqual(loc);
  });

  test("as a pipeline pass followed by dce, only the gradient's nodes remain", () => {
    const { graph } = runPasses(cubeSum(3, true), [autodiffPass({ of: "loss", wrt: ["x"] }), dce], { verify: true });
    expect(graph.nodes.some((n) => n.op === "exp2")).toBe(false);
    const out = interpret(graph, bind([1, 2, 3], [0, 0, 0]));
    expectClose(out["grad.x"]!.data, [3, 12, 27]);
  });

  test("the input graph is not changed", () => {
    const fwd = cubeSum(2, true);
    const before = JSON.stringify(fwd);
    gradGraph(fwd, { of: "loss", wrt: ["x", "y"], keepOutputs: true });
    expect(JSON.stringify(fwd)).toBe(before);
  });

  test("grad of grad at the graph level: vjp of grad.x is a Hessian-vector product", () => {
    const first = gradGraph(cubeSum(3), { of: "loss", wrt: ["x"] });
    const hvp = vjpGraph(first, { of: ["grad.x"], wrt: ["x"] });
    verifyOrThrow(hvp, "autodiff");
    const x = [0.5, -1, 2];
    const v = [2, 3, -1];
    const out = interpret(hvp, { ...bind(x, [0, 0, 0]), "cot.grad.x": hostTensor(f32(3), v) });
    expectClose(
      out["grad.x"]!.data,
      x.map((xi, i) => 6 * xi * v[i]!),
    );
  });

  test("errors name the problem", () => {
    const g = cubeSum(2);
    expect(() => gradGraph(g, { of: "nope", wrt: ["x"] })).toThrow(/grad: graph 'cube' has no output 'nope' \(outputs: loss\)/);
    expect(() => gradGraph(g, { of: "loss", wrt: ["z"] })).toThrow(/grad: graph 'cube' has no input 'z'/);
    const b = new GraphBuilder("vec");
    const x = b.input("x", f32(2));
    const i = b.input("i", { dtype: "i32", shape: [2] });
    const vec = b.build([
      { name: "out", value: b.add({ op: "mul", x, y: b.add({ op: "cast", x: i }, f32(2)) }) },
      { name: "idx", value: i },
    ]);
    expect(() => gradGraph(vec, { of: "out", wrt: ["x"] })).toThrow(/grad: output 'out' must be a scalar f32, got f32\[2\]/);
    expect(() => vjpGraph(vec, { of: ["out"], wrt: ["i"] })).toThrow(/vjp: input 'i' is i32\[2\]; only f32 inputs have gradients/);
    expect(() => vjpGraph(vec, { of: ["idx"], wrt: ["x"] })).toThrow(/vjp: output 'idx' is i32\[2\]; only f32 outputs take a cotangent/);
  });
});

describe("vjpGraph", () => {
  test("cotangents come in as cot.<output>; two outputs on one value add up", () => {
    const b = new GraphBuilder("two");
    const x = b.input("x", f32(2));
    const s = b.add({ op: "sin", x });
    const g = vjpGraph(
      b.build([
        { name: "a", value: s },
        { name: "b", value: s },
      ]),
      { of: ["a", "b"], wrt: ["x"] },
    );
    verifyOrThrow(g, "autodiff");
    const out = interpret(g, { x: hostTensor(f32(2), [0.3, 1.2]), "cot.a": hostTensor(f32(2), [1, 2]), "cot.b": hostTensor(f32(2), [3, 4]) });
    expectClose(out["grad.x"]!.data, [4 * Math.cos(0.3), 6 * Math.cos(1.2)]);
  });
});
