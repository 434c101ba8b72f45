// Every primitive's VJP rule against central finite differences (float64 interpreter), on
// graphs built directly with GraphBuilder, including shapes with several non-trivial dims.

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../../compiler/ir/graph.ts";
import { interpret } from "../../../compiler/ir/interpret.ts";
import type { Graph, NodeSpec, Op, TensorType, ValueId } from "../../../compiler/ir/types.ts";
import { vjpGraph } from "../../../compiler/passes/autodiff/engine.ts";
import { vjpRules } from "../../../compiler/passes/autodiff/rules.ts";
import type { HostTensor } from "../../../compiler/ir/host-tensor.ts";
import { numel } from "../../../compiler/util/shape.ts";
import { gradcheckGraph, hostTensor, uniform } from "../../util/gradcheck.ts";

const f32 = (...shape: number[]): TensorType => ({ dtype: "f32", shape });
const i32 = (...shape: number[]): TensorType => ({ dtype: "i32", shape });

interface Case {
  readonly name: string;
  readonly inputs: Readonly<Record<string, TensorType>>;
  /** Data per input (default: uniform in [-1, 1)). */
  readonly data?: Readonly<Record<string, readonly number[]>>;
  readonly range?: readonly [number, number];
  readonly body: (b: GraphBuilder, v: Readonly<Record<string, ValueId>>) => ValueId;
}

function buildCase(c: Case): { graph: Graph; inputs: Record<string, HostTensor> } {
  const b = new GraphBuilder(c.name);
  const v: Record<string, ValueId> = {};
  const inputs: Record<string, HostTensor> = {};
  Object.entries(c.inputs).forEach(([name, type], i) => {
    v[name] = b.input(name, type);
    const [lo, hi] = c.range ?? [-1, 1];
    inputs[name] = hostTensor(type, c.data?.[name] ?? uniform(numel(type.shape), 100 + i, lo, hi));
  });
  return { graph: b.build([{ name: "out", value: c.body(b, v) }]), inputs };
}

const unary = (op: NodeSpec["op"]) => (b: GraphBuilder, v: Readonly<Record<string, ValueId>>) => b.add({ op, x: v["x"]! } as NodeSpec);
const binary = (op: NodeSpec["op"]) => (b: GraphBuilder, v: Readonly<Record<string, ValueId>>) => b.add({ op, x: v["x"]!, y: v["y"]! } as NodeSpec);

// Each case names the ops it covers in its name's first word; `covered` checks every rule is hit.
const cases: Case[] = [
  { name: "neg [3,4]", inputs: { x: f32(3, 4) }, body: unary("neg") },
  { name: "exp2 [2,3]", inputs: { x: f32(2, 3) }, body: unary("exp2") },
  { name: "exp2 scalar", inputs: { x: f32() }, body: unary("exp2") },
  { name: "log2 [5]", inputs: { x: f32(5) }, range: [0.5, 3], body: unary("log2") },
  { name: "sin [2,2,2]", inputs: { x: f32(2, 2, 2) }, range: [-3, 3], body: unary("sin") },
  { name: "sqrt [4]", inputs: { x: f32(4) }, range: [0.3, 4], body: unary("sqrt") },
  { name: "recip [3,2]", inputs: { x: f32(3, 2) }, range: [0.4, 2], body: unary("recip") },
  { name: "add [2,3]", inputs: { x: f32(2, 3), y: f32(2, 3) }, body: binary("add") },
  { name: "mul [2,3]", inputs: { x: f32(2, 3), y: f32(2, 3) }, body: binary("mul") },
  { name: "mul self (two uses accumulate)", inputs: { x: f32(4) }, body: (b, v) => b.add({ op: "mul", x: v["x"]!, y: v["x"]! }) },
  { name: "max [3,3] distinct", inputs: { x: f32(3, 3), y: f32(3, 3) }, body: binary("max") },
  {
    name: "cast f32 -> f32 and through i32 (no gradient through the integer)",
    inputs: { x: f32(5) },
    data: { x: [0.3, 1.4, -2.6, 3.2, 0.7] },
    body: (b, v) => {
      const same = b.add({ op: "cast", x: v["x"]! }, f32(5));
      const truncated = b.add({ op: "cast", x: b.add({ op: "cast", x: v["x"]! }, i32(5)) }, f32(5));
      return b.add({ op: "mul", x: same, y: truncated });
    },
  },
  {
    name: "cmplt/where: pick the smaller",
    inputs: { x: f32(2, 3), y: f32(2, 3) },
    body: (b, v) => b.add({ op: "where", cond: b.add({ op: "cmplt", x: v["x"]!, y: v["y"]! }), x: v["x"]!, y: v["y"]! }),
  },
  {
    name: "cmpeq/where with a bool input",
    inputs: { x: f32(4), y: f32(4), c: { dtype: "bool", shape: [4] } },
    data: { c: [1, 0, 0, 1] },
    body: (b, v) => {
      const cond = b.add({ op: "cmpeq", x: v["c"]!, y: b.add({ op: "const", value: 1 }, { dtype: "bool", shape: [4] }) });
      return b.add({ op: "where", cond, x: v["x"]!, y: v["y"]! });
    },
  },
  {
    name: "idiv/mod/iota: integer side paths scale x",
    inputs: { x: f32(2, 5) },
    body: (b, v) => {
      const iota = b.add({ op: "iota", axis: 1 }, i32(2, 5));
      const two = b.add({ op: "const", value: 2 }, i32(2, 5));
      const q = b.add({ op: "add", x: b.add({ op: "idiv", x: iota, y: two }), y: b.add({ op: "mod", x: iota, y: two }) });
      return b.add({ op: "mul", x: v["x"]!, y: b.add({ op: "cast", x: q }, f32(2, 5)) });
    },
  },
  {
    name: "rng: x times uniform noise",
    inputs: { x: f32(3, 2), seed: i32() },
    data: { seed: [42] },
    body: (b, v) => b.add({ op: "mul", x: v["x"]!, y: b.add({ op: "rng", seed: v["seed"]!, stream: 0 }, f32(3, 2)) }),
  },
  { name: "reduce_sum axis 0 of [2,3,4]", inputs: { x: f32(2, 3, 4) }, body: (b, v) => b.add({ op: "reduce_sum", x: v["x"]!, axes: [0] }) },
  { name: "reduce_sum axes [0,2] of [2,3,4]", inputs: { x: f32(2, 3, 4) }, body: (b, v) => b.add({ op: "reduce_sum", x: v["x"]!, axes: [0, 2] }) },
  { name: "reduce_max axis 1 of [3,4]", inputs: { x: f32(3, 4) }, body: (b, v) => b.add({ op: "reduce_max", x: v["x"]!, axes: [1] }) },
  { name: "reduce_max axes [0,2] of [2,3,2]", inputs: { x: f32(2, 3, 2) }, body: (b, v) => b.add({ op: "reduce_max", x: v["x"]!, axes: [0, 2] }) },
  { name: "reshape [2,6] -> [3,4]", inputs: { x: f32(2, 6) }, body: (b, v) => b.add({ op: "reshape", x: v["x"]! }, f32(3, 4)) },
  { name: "permute [2,3,4] by [2,0,1]", inputs: { x: f32(2, 3, 4) }, body: (b, v) => b.add({ op: "permute", x: v["x"]!, perm: [2, 0, 1] }) },
  { name: "expand [1,3,1] -> [2,3,4]", inputs: { x: f32(1, 3, 1) }, body: (b, v) => b.add({ op: "expand", x: v["x"]! }, f32(2, 3, 4)) },
  {
    name: "pad [2,3] low [1,0] high [2,1] value 5",
    inputs: { x: f32(2, 3) },
    body: (b, v) => b.add({ op: "pad", x: v["x"]!, low: [1, 0], high: [2, 1], value: 5 }),
  },
  { name: "slice [5,4] 1:4, 1:3", inputs: { x: f32(5, 4) }, body: (b, v) => b.add({ op: "slice", x: v["x"]!, start: [1, 1], stop: [4, 3], step: [1, 1] }) },
  {
    name: "slice [7,5] with steps 3 and 2",
    inputs: { x: f32(7, 5) },
    body: (b, v) => b.add({ op: "slice", x: v["x"]!, start: [1, 0], stop: [7, 5], step: [3, 2] }),
  },
  {
    name: "slice [2,9] step 4 from 2 to 8",
    inputs: { x: f32(2, 9) },
    body: (b, v) => b.add({ op: "slice", x: v["x"]!, start: [0, 2], stop: [2, 8], step: [1, 4] }),
  },
  { name: "flip [3,4] axes [0,1]", inputs: { x: f32(3, 4) }, body: (b, v) => b.add({ op: "flip", x: v["x"]!, axes: [0, 1] }) },
  { name: "dot [2,3]x[3,4]", inputs: { lhs: f32(2, 3), rhs: f32(3, 4) }, body: (b, v) => b.add({ op: "dot", lhs: v["lhs"]!, rhs: v["rhs"]! }) },
  {
    name: "dot batched [2,2,3]x[2,3,2]",
    inputs: { lhs: f32(2, 2, 3), rhs: f32(2, 3, 2) },
    body: (b, v) => b.add({ op: "dot", lhs: v["lhs"]!, rhs: v["rhs"]! }),
  },
  {
    name: "gather axis 0, repeated rows (embedding)",
    inputs: { x: f32(4, 3), index: i32(5, 3) },
    data: { index: [0, 1, 2, 3, 3, 3, 1, 1, 0, 2, 0, 1, 1, 1, 1] },
    body: (b, v) => b.add({ op: "gather", x: v["x"]!, index: v["index"]!, axis: 0 }),
  },
  {
    name: "gather axis 1 of [2,4,3] with repeats",
    inputs: { x: f32(2, 4, 3), index: i32(2, 2, 3) },
    data: { index: [3, 0, 0, 3, 1, 0, 2, 2, 2, 1, 3, 2] },
    body: (b, v) => b.add({ op: "gather", x: v["x"]!, index: v["index"]!, axis: 1 }),
  },
  {
    name: "gather axis 0 with a broadcast column index (embedding rows by one dot)",
    inputs: { x: f32(5, 3), index: i32(4, 1) },
    data: { index: [4, 1, 4, 0] },
    body: (b, v) => b.add({ op: "gather", x: v["x"]!, index: b.add({ op: "expand", x: v["index"]! }, i32(4, 3)), axis: 0 }),
  },
  {
    name: "gather axis 1 of [2,4,3] with a broadcast column index",
    inputs: { x: f32(2, 4, 3), index: i32(1, 5, 1) },
    data: { index: [3, 0, 3, 2, 3] },
    body: (b, v) => b.add({ op: "gather", x: v["x"]!, index: b.add({ op: "expand", x: v["index"]! }, i32(2, 5, 3)), axis: 1 }),
  },
  {
    name: "gather with an index broadcast along the gathered axis too",
    inputs: { x: f32(3, 2), index: i32(1, 1) },
    data: { index: [2] },
    body: (b, v) => b.add({ op: "gather", x: v["x"]!, index: b.add({ op: "expand", x: v["index"]! }, i32(4, 2)), axis: 0 }),
  },
  {
    name: "const: x + 3 and 2·x",
    inputs: { x: f32(3) },
    body: (b, v) =>
      b.add({ op: "mul", x: b.add({ op: "add", x: v["x"]!, y: b.add({ op: "const", value: 3 }, f32(3)) }), y: b.add({ op: "const", value: 2 }, f32(3)) }),
  },
];

describe("vjp rules vs finite differences", () => {
  for (const c of cases) {
    test(c.name, () => {
      const { graph, inputs } = buildCase(c);
      const wrt = Object.entries(c.inputs).flatMap(([name, t]) => (t.dtype === "f32" ? [name] : []));
      gradcheckGraph(graph, wrt, inputs);
    });
  }

  test("every primitive with a rule appears in some case", () => {
    const used = new Set<Op>(["input"]);
    for (const c of cases) for (const n of buildCase(c).graph.nodes) used.add(n.op);
    expect(Object.keys(vjpRules).filter((op) => !used.has(op as Op))).toEqual([]);
  });
});

describe("tie rules (hand-derived)", () => {
  const vjpOf = (c: Case, cot: readonly number[]): Record<string, number[]> => {
    const { graph, inputs } = buildCase(c);
    const wrt = Object.keys(c.inputs);
    const outType = graph.nodes.find((n) => n.id === graph.outputs[0]!.value)!.type;
    const res = interpret(vjpGraph(graph, { of: ["out"], wrt }), { ...inputs, "cot.out": hostTensor(outType, cot) });
    return Object.fromEntries(wrt.map((w) => [w, Array.from(res[`grad.${w}`]!.data)]));
  };

  test("max(x, y) on equal entries gives each side half", () => {
    const c: Case = { name: "max tie", inputs: { x: f32(3), y: f32(3) }, data: { x: [1, 2, 3], y: [1, 5, 0] }, body: binary("max") };
    expect(vjpOf(c, [4, 4, 4])).toEqual({ x: [2, 0, 4], y: [2, 4, 0] });
  });

  test("reduce_max splits the cotangent evenly among tied maxima", () => {
    const c: Case = {
      name: "reduce_max ties",
      inputs: { x: f32(2, 4) },
      data: { x: [3, 1, 3, 3, 0, 7, 2, 7] },
      body: (b, v) => b.add({ op: "reduce_max", x: v["x"]!, axes: [1] }),
    };
    const g = vjpOf(c, [3, 2])["x"]!;
    expect(g).toEqual([1, 0, 1, 1, 0, 1, 0, 1]);
  });
});
