// The simplify pass on hand-built graphs: each rule fires where it should and not where it
// must not; folded values are checked against hand-computed f32 arithmetic; simplified
// graphs evaluate to the same values as the originals on the reference interpreter.

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph, Node, TensorType, ValueId } from "../../compiler/ir/types.ts";
import type { DType } from "../../compiler/ir/dtype.ts";
import { eliminateCommonSubexpressions } from "../../compiler/passes/cse.ts";
import { eliminateDeadCode } from "../../compiler/passes/dce.ts";
import { simplifyGraph } from "../../compiler/passes/simplify.ts";
import { rewriteToFixpoint } from "../../compiler/passes/rewrite.ts";
import { SIMPLIFY_RULES } from "../../compiler/passes/simplify-rules.ts";
import { verifyGraph } from "../../compiler/ir/verifier.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";
import { traceFunction, type InputSpec } from "../../dsl/trace.ts";
import * as k from "../../dsl/index.ts";
import type { Tensor } from "../../dsl/tensor.ts";

const f32 = (...shape: number[]): TensorType => ({ dtype: "f32", shape });
const loc = (line: number) => ({ file: "model.ts", line, col: 1 });

/** A scalar constant broadcast to `shape` the way the DSL writes it: const [] → reshape → expand. */
function splat(b: GraphBuilder, value: number, shape: number[], dtype: DType = "f32"): ValueId {
  const c = b.add({ op: "const", value }, { dtype, shape: [] });
  const r = b.add({ op: "reshape", x: c }, { dtype, shape: shape.map(() => 1) });
  return b.add({ op: "expand", x: r }, { dtype, shape });
}

const simplified = (g: Graph): Graph => simplifyGraph(g).graph;
const ops = (g: Graph): string[] => g.nodes.map((n) => n.op);

/** The rewrite engine's one sweep is a fixpoint (compiler/passes/rewrite.ts): a second one over its result (dead nodes and all) fires no rule, merges nothing and rebuilds the same graph. */
function expectOneSweepFixpoint(g: Graph): void {
  const swept = rewriteToFixpoint(g, SIMPLIFY_RULES).graph;
  const again = rewriteToFixpoint(swept, SIMPLIFY_RULES);
  expect([...again.stats.fired]).toEqual([]);
  expect(again.stats.merged).toBe(0);
  expect(again.graph).toEqual(swept);
}
const outputNode = (g: Graph, i = 0): Node => g.nodes.find((n) => n.id === g.outputs[i]!.value)!;

function oneInput(build: (b: GraphBuilder, x: ValueId) => ValueId, type: TensorType = f32(2, 3)): Graph {
  const b = new GraphBuilder("t");
  const x = b.input("x", type);
  return b.build([{ name: "out", value: build(b, x) }]);
}

describe("identities", () => {
  test("x*1, 1*x, x+0 and 0+x all become x", () => {
    const g = oneInput((b, x) => {
      const a = b.add({ op: "mul", x, y: splat(b, 1, [2, 3]) });
      const c = b.add({ op: "mul", x: splat(b, 1, [2, 3]), y: a });
      const d = b.add({ op: "add", x: c, y: splat(b, 0, [2, 3]) });
      return b.add({ op: "add", x: splat(b, 0, [2, 3]), y: d });
    });
    const s = simplified(g);
    expect(ops(s)).toEqual(["input"]);
    expect(s.outputs[0]!.value).toBe(s.inputs[0]);
  });

  test("x*0 is not folded for f32 (inf*0 is NaN)", () => {
    const g = oneInput((b, x) => b.add({ op: "mul", x, y: splat(b, 0, [2, 3]) }));
    expect(ops(simplified(g))).toEqual(["input", "const", "mul"]);
  });

  test("double negation cancels, a single one stays", () => {
    const g = oneInput((b, x) => b.add({ op: "neg", x: b.add({ op: "neg", x: b.add({ op: "neg", x }) }) }));
    expect(ops(simplified(g))).toEqual(["input", "neg"]);
  });

  test("reshape of reshape is one reshape, and keeps the outer node's location", () => {
    const g = oneInput((b, x) => {
      const r1 = b.add({ op: "reshape", x, loc: loc(1) }, f32(6));
      return b.add({ op: "reshape", x: r1, loc: loc(2) }, f32(3, 2));
    });
    const s = simplified(g);
    expect(ops(s)).toEqual(["input", "reshape"]);
    expect(outputNode(s).type.shape).toEqual([3, 2]);
    expect(outputNode(s).loc).toEqual(loc(2));
  });

  test("a reshape back to the original shape disappears", () => {
    const g = oneInput((b, x) => b.add({ op: "reshape", x: b.add({ op: "reshape", x }, f32(6)) }, f32(2, 3)));
    expect(ops(simplified(g))).toEqual(["input"]);
  });

  test("permute of permute composes; an identity composition disappears", () => {
    // perm p then q reads x's axis p[q[i]] at output axis i.
    const type = f32(2, 3, 4);
    const composed = oneInput((b, x) => b.add({ op: "permute", x: b.add({ op: "permute", x, perm: [1, 2, 0] }), perm: [1, 0, 2] }), type);
    const s = simplified(composed);
    expect(ops(s)).toEqual(["input", "permute"]);
    const n = outputNode(s);
    expect(n.op === "permute" && n.perm).toEqual([2, 1, 0]); // [1,2,0][1], [1,2,0][0], [1,2,0][2]
    expect(n.type.shape).toEqual([4, 3, 2]);
    const inverse = oneInput((b, x) => b.add({ op: "permute", x: b.add({ op: "permute", x, perm: [1, 2, 0] }), perm: [2, 0, 1] }), type);
    expect(ops(simplified(inverse))).toEqual(["input"]);
  });

  test("expand of expand is one expand; expand to the same shape disappears", () => {
    const g = oneInput(
      (b, x) => {
        const e1 = b.add({ op: "expand", x }, f32(1, 4, 3));
        const e2 = b.add({ op: "expand", x: e1 }, f32(5, 4, 3));
        return b.add({ op: "expand", x: e2 }, f32(5, 4, 3));
      },
      f32(1, 1, 3),
    );
    const s = simplified(g);
    expect(ops(s)).toEqual(["input", "expand"]);
    expect(outputNode(s).type.shape).toEqual([5, 4, 3]);
  });

  test("a cast to the same dtype disappears, a real cast stays", () => {
    const g = oneInput((b, x) => b.add({ op: "cast", x: b.add({ op: "cast", x }, f32(2, 3)) }, { dtype: "i32", shape: [2, 3] }));
    expect(ops(simplified(g))).toEqual(["input", "cast"]);
  });

  test("a reduction over size-1 axes disappears; over a real axis it stays", () => {
    const g = oneInput(
      (b, x) => {
        const unit = b.add({ op: "reduce_sum", x, axes: [0, 2] });
        return b.add({ op: "reduce_max", x: unit, axes: [1] });
      },
      f32(1, 3, 1),
    );
    expect(ops(simplified(g))).toEqual(["input", "reduce_max"]);
  });

  test("where with a constant condition picks a branch", () => {
    const b = new GraphBuilder("t");
    const x = b.input("x", f32(2));
    const y = b.input("y", f32(2));
    const yes = b.add({ op: "where", cond: splat(b, 1, [2], "bool"), x, y });
    const no = b.add({ op: "where", cond: splat(b, 0, [2], "bool"), x, y });
    const s = simplified(
      b.build([
        { name: "yes", value: yes },
        { name: "no", value: no },
      ]),
    );
    expect(ops(s)).toEqual(["input", "input"]);
    expect(s.outputs.map((o) => o.value)).toEqual(s.inputs);
  });
});

describe("constant folding", () => {
  function foldedValue(build: (b: GraphBuilder) => ValueId): { value: number; node: Node } {
    const b = new GraphBuilder("t");
    const s = simplified(b.build([{ name: "out", value: build(b) }]));
    const n = outputNode(s);
    expect(n.op).toBe("const");
    expect(s.nodes).toHaveLength(1);
    return { value: n.op === "const" ? n.value : NaN, node: n };
  }

  test("f32 arithmetic folds with single-precision rounding", () => {
    const { value, node } = foldedValue((b) => b.add({ op: "add", x: splat(b, 0.1, [3]), y: splat(b, 0.2, [3]) }));
    expect(value).toBe(Math.fround(Math.fround(0.1) + Math.fround(0.2)));
    expect(value).not.toBe(0.1 + 0.2);
    expect(node.type).toEqual(f32(3));
  });

  test("recip, neg and mul of constants", () => {
    expect(foldedValue((b) => b.add({ op: "recip", x: splat(b, 4, [2]) })).value).toBe(0.25);
    expect(foldedValue((b) => b.add({ op: "recip", x: splat(b, 3, [2]) })).value).toBe(Math.fround(1 / 3));
    expect(foldedValue((b) => b.add({ op: "mul", x: b.add({ op: "neg", x: splat(b, 1.5, [2]) }), y: splat(b, 2, [2]) })).value).toBe(-3);
  });

  test("i32 arithmetic wraps and divides with floor semantics", () => {
    const i32 = (b: GraphBuilder, v: number) => splat(b, v, [2], "i32");
    expect(foldedValue((b) => b.add({ op: "add", x: i32(b, 2147483647), y: i32(b, 1) })).value).toBe(-2147483648);
    expect(foldedValue((b) => b.add({ op: "idiv", x: i32(b, -7), y: i32(b, 2) })).value).toBe(-4);
    expect(foldedValue((b) => b.add({ op: "mod", x: i32(b, -7), y: i32(b, 2) })).value).toBe(1);
  });

  test("comparisons and casts of constants", () => {
    expect(foldedValue((b) => b.add({ op: "cmplt", x: splat(b, 1, [2]), y: splat(b, 2, [2]) })).value).toBe(1);
    expect(foldedValue((b) => b.add({ op: "cast", x: splat(b, -2.7, [2]) }, { dtype: "i32", shape: [2] })).value).toBe(-2);
  });

  test("reduce_sum of an integer fill folds to count × value; of 0.1 it does not (order-dependent rounding)", () => {
    const sum = (v: number) => (b: GraphBuilder) => b.add({ op: "reduce_sum", x: splat(b, v, [3, 4]), axes: [1] });
    expect(foldedValue(sum(2)).value).toBe(8);
    const b = new GraphBuilder("t");
    const s = simplified(b.build([{ name: "out", value: sum(0.1)(b) }]));
    expect(ops(s)).toEqual(["const", "reduce_sum"]);
  });

  test("results that are NaN, infinite or -0 stay unfolded", () => {
    const b = new GraphBuilder("t");
    const inf = b.add({ op: "recip", x: splat(b, 0, [2]) });
    const nan = b.add({ op: "sqrt", x: splat(b, -1, [2]) });
    const s = simplified(
      b.build([
        { name: "inf", value: inf },
        { name: "nan", value: nan },
      ]),
    );
    expect(ops(s).filter((op) => op !== "const")).toEqual(["recip", "sqrt"]);
  });
});

describe("CSE and DCE", () => {
  test("equal subexpressions become one, keeping the first location", () => {
    const g = oneInput((b, x) => {
      const a = b.add({ op: "exp2", x, loc: loc(1) });
      const c = b.add({ op: "exp2", x, loc: loc(2) });
      return b.add({ op: "add", x: a, y: c });
    });
    const s = eliminateCommonSubexpressions(g);
    expect(ops(s)).toEqual(["input", "exp2", "add"]);
    expect(s.nodes[1]!.loc).toEqual(loc(1));
    const add = outputNode(s);
    expect(add.op === "add" && add.x === add.y).toBe(true);
  });

  test("constants NaN, Infinity, -0 and 0 stay distinct", () => {
    const b = new GraphBuilder("t");
    const values = [NaN, Infinity, -Infinity, -0, 0];
    const ids = values.map((value) => b.add({ op: "const", value }, f32(2)));
    const s = eliminateCommonSubexpressions(b.build(ids.map((value, i) => ({ name: `c${i}`, value }))));
    expect(s.nodes.map((n) => (n.op === "const" ? n.value : undefined))).toEqual(values);
  });

  test("nodes differing in an attribute are not merged", () => {
    const g = oneInput((b, x) => {
      const a = b.add({ op: "reduce_sum", x, axes: [0] });
      const c = b.add({ op: "reduce_sum", x, axes: [1] });
      return b.add({ op: "add", x: b.add({ op: "expand", x: a }, f32(2, 3)), y: b.add({ op: "expand", x: c }, f32(2, 3)) });
    });
    expect(ops(eliminateCommonSubexpressions(g)).filter((op) => op === "reduce_sum")).toHaveLength(2);
  });

  test("DCE drops what no output reaches but keeps unused inputs", () => {
    const b = new GraphBuilder("t");
    const x = b.input("x", f32(2));
    b.input("unused", f32(2));
    b.add({ op: "sin", x });
    const g = b.build([{ name: "out", value: b.add({ op: "sqrt", x }) }]);
    const s = eliminateDeadCode(g);
    expect(ops(s)).toEqual(["input", "input", "sqrt"]);
    expect(s.inputs).toHaveLength(2);
  });
});

describe("the pass as a whole", () => {
  test("never mutates its input and returns a fresh graph", () => {
    const g = oneInput((b, x) => b.add({ op: "mul", x, y: splat(b, 1, [2, 3]) }));
    const before = JSON.stringify(g);
    const s = simplified(g);
    expect(JSON.stringify(g)).toBe(before);
    expect(s).not.toBe(g);
    const untouched = oneInput((b, x) => b.add({ op: "sin", x }));
    expect(simplified(untouched)).not.toBe(untouched);
    expect(simplified(untouched)).toEqual(untouched);
  });

  test("is idempotent", () => {
    const { graph } = traceFunction("softmax", (x: Tensor) => x.softmax(-1).mul(1).add(0), [k.f32([3, 5])]);
    const once = simplified(graph);
    expect(simplified(once)).toEqual(once);
  });
});

// ---- simplified graphs compute what the originals compute ----

/** Same values up to f32 rounding of folded constants. */
function expectSameValues(a: Graph, b: Graph, seed: number): void {
  const inputs = randomInputs(a, seed);
  const ra = interpret(a, inputs);
  const rb = interpret(b, inputs);
  for (const o of a.outputs) {
    const x = ra[o.name]!.data;
    const y = rb[o.name]!.data;
    expect(y.length).toBe(x.length);
    for (let i = 0; i < x.length; i++) {
      if (x[i] === y[i]) continue;
      if (Number.isNaN(x[i]!)) expect(Number.isNaN(y[i]!), `${o.name}[${i}] (seed ${seed})`).toBe(true);
      else expect(Math.abs(x[i]! - y[i]!), `${o.name}[${i}]: ${x[i]} vs ${y[i]} (seed ${seed})`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(x[i]!)));
    }
  }
}

const models: [string, (...args: never[]) => unknown, InputSpec[]][] = [
  ["softmax", (x: Tensor) => x.softmax(-1), [k.f32([4, 7])]],
  ["logSoftmax of a transpose of a transpose", (x: Tensor) => x.t().t().logSoftmax(0), [k.f32([3, 5])]],
  ["scaled residual", (x: Tensor, y: Tensor) => x.mul(1).add(y.neg().neg()).mul(2).add(0).relu(), [k.f32([2, 3]), k.f32([2, 3])]],
  ["matmul with bias", (x: Tensor, w: Tensor, bias: Tensor) => x.matmul(w.t()).add(bias).sigmoid(), [k.f32([4, 3]), k.f32([5, 3]), k.f32([5])]],
  ["constant arithmetic", (x: Tensor) => x.add(2).mul(3).sub(6).div(3).add(1), [k.f32([6])]],
  ["variance and mean", (x: Tensor) => x.var(1).add(x.mean(1)), [k.f32([3, 8])]],
  ["permute of permute", (x: Tensor) => x.permute(1, 2, 0).permute(1, 0, 2).sin(), [k.f32([2, 3, 4])]],
  ["expand of expand", (x: Tensor) => x.reshape(1, 1, 3).expand(1, 4, 3).expand(5, 4, 3).exp(), [k.f32([3])]],
  ["reshape of reshape", (x: Tensor) => x.reshape(12).reshape(3, 4).reshape(4, 3).sqrt(), [k.f32([2, 6])]],
  ["integer arithmetic", (x: Tensor) => x.int().mul(3).add(7), [k.f32([5])]],
];

describe("simplified graphs evaluate like the originals", () => {
  test.each(models)("%s", (name, fn, specs) => {
    const { graph } = traceFunction(name.replace(/\W+/g, "_"), fn, specs);
    const s = simplified(graph);
    expect(s.nodes.length).toBeLessThanOrEqual(graph.nodes.length);
    for (const seed of [1, 2, 3]) expectSameValues(graph, s, seed);
    expectOneSweepFixpoint(graph);
  });
});

describe("on random graphs", () => {
  // KILN_SEED=<n> replays one seed.
  const fixed = process.env["KILN_SEED"];
  const seeds = fixed !== undefined ? [Number(fixed)] : Array.from({ length: 120 }, (_, i) => i + 1);
  test.each(seeds)("seed %i: verifies, evaluates like the original, and is idempotent", (seed) => {
    const g = randomGraph(seed);
    const s = simplified(g);
    expect(verifyGraph(s)).toEqual([]);
    expect(s.inputs.length).toBe(g.inputs.length);
    expect(s.nodes.length).toBeLessThanOrEqual(g.nodes.length);
    expectSameValues(g, s, seed);
    expect(simplified(s)).toEqual(s);
    expectOneSweepFixpoint(g);
  });
});
