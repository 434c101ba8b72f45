// Fusion decisions as counts: kernels per compiled graph and bytes moved per step, for the
// cases issue #4 names. Each case also runs on the js target and is compared with the
// float64 interpreter, so a count is never bought with a wrong answer.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileJs, type JsCompiled } from "../../targets/js.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { IndexExpr } from "../../compiler/kernel/index-expr.ts";
import { formatFusionPlan, planFusion } from "../../compiler/passes/fuse.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { mulberry32 } from "../util/random-graph.ts";

const trace = (fn: (...args: never[]) => unknown, specs: k.Specs): Graph => k.traceFunction("case", fn, specs).graph;

/** Seeded inputs: f32 in [-1, 1] (rounded to f32), i32 in [0, classes). */
function inputsFor(g: Graph, seed: number, classes = 10): Record<string, HostTensor> {
  const rand = mulberry32(seed);
  const out: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const count = numel(n.type.shape);
    const data =
      n.type.dtype === "f32"
        ? Float64Array.from(Float32Array.from({ length: count }, () => rand() * 2 - 1))
        : n.type.dtype === "i32"
          ? Int32Array.from({ length: count }, () => Math.floor(rand() * classes))
          : Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 1 : 0));
    out[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data };
  }
  return out;
}

/** Compiles for js, runs, compares every output with the interpreter (f32 tolerances). */
function compileAndCheck(g: Graph, atol = 1e-5, rtol = 1e-4): JsCompiled {
  const compiled = compileJs(g, { verify: true });
  const inputs = inputsFor(g, 7);
  const want = interpret(g, inputs);
  const got = new JsArtifactRunner(compiled.artifact).run(inputs);
  for (const o of g.outputs) {
    const a = got[o.name]!.data;
    const e = want[o.name]!.data;
    expect(a.length).toBe(e.length);
    for (let i = 0; i < e.length; i++) {
      if (Math.abs(a[i]! - e[i]!) > atol + rtol * Math.abs(e[i]!))
        throw new Error(`output ${o.name}[${i}]: js ${a[i]}, interpreter ${e[i]}\n${formatFusionPlan(compiled.graph, compiled.plan)}`);
    }
  }
  return compiled;
}

const kernels = (c: JsCompiled): number => c.artifact.stats.kernels;

describe("kernels per graph", () => {
  test("an elementwise chain is one kernel", () => {
    const g = trace((x: k.Tensor, y: k.Tensor) => x.mul(2).add(y).exp().sub(1).relu().mul(y.sigmoid()), [k.f32([8, 16]), k.f32([8, 16])]);
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test("broadcasts and movement ops fold into the chain's indices", () => {
    const g = trace((x: k.Tensor, b: k.Tensor) => x.reshape(2, 3, 4).permute(2, 0, 1).flip(0).add(b).neg(), [k.f32([2, 12]), k.f32([3])]);
    const c = compileAndCheck(g);
    expect(kernels(c)).toBe(1);
    expect(c.artifact.kernels[0]!.source).not.toMatch(/ % | \/ /); // the simplifier removed every div/mod
  });

  test("matmul + bias + ReLU is one kernel", () => {
    const g = trace((x: k.Tensor, w: k.Tensor, b: k.Tensor) => k.nn.functional.linear(x, w, b).relu(), [k.f32([16, 32]), k.f32([24, 32]), k.f32([24])]);
    const c = compileAndCheck(g);
    expect(kernels(c)).toBe(1);
    expect(c.plan.groups[0]!.label).toMatch(/dot/);
  });

  test("matmul + bias + residual add + GELU is one kernel", () => {
    const g = trace(
      (x: k.Tensor, w: k.Tensor, b: k.Tensor, r: k.Tensor) => x.matmul(w).add(b).add(r).gelu(),
      [k.f32([8, 12]), k.f32([12, 20]), k.f32([20]), k.f32([8, 20])],
    );
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test.each([
    ["softmax", (x: k.Tensor) => x.softmax(-1)],
    ["logSoftmax", (x: k.Tensor) => x.logSoftmax(-1)],
    ["layerNorm", (x: k.Tensor) => k.nn.functional.layerNorm(x, 33)],
  ] as const)("%s over the last dim is one row kernel", (_name, fn) => {
    const g = trace(fn, [k.f32([6, 33])]);
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test.each([
    ["softmax", (x: k.Tensor) => x.softmax(-1)],
    ["layerNorm", (x: k.Tensor) => k.nn.functional.layerNorm(x, 32)],
  ] as const)("the backward of %s (grad of sum(f(x)·c)) is one row kernel", (_name, f) => {
    const g = trace(k.grad((x: k.Tensor, c: k.Tensor) => f(x).mul(c).sum()) as never, [k.f32([8, 32]), k.f32([8, 32])]);
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test("layerNorm with weight and bias is one row kernel", () => {
    const g = trace((x: k.Tensor, w: k.Tensor, b: k.Tensor) => k.nn.functional.layerNorm(x, 20, w, b), [k.f32([2, 5, 20]), k.f32([20]), k.f32([20])]);
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test("cross-entropy (logSoftmax + NLL, mean over the batch) forward is one kernel", () => {
    const g = trace((x: k.Tensor, y: k.Tensor) => k.nn.functional.crossEntropy(x, y), [k.f32([16, 10]), k.i32([16])]);
    expect(kernels(compileAndCheck(g))).toBe(1);
  });

  test("conv2d + bias + ReLU is one kernel, its window indices free of div/mod but for the flattened k", () => {
    const g = trace(
      (x: k.Tensor, w: k.Tensor, b: k.Tensor) => k.nn.functional.conv2d(x, w, b, { padding: 1 }).relu(),
      [k.f32([2, 3, 8, 8]), k.f32([4, 3, 3, 3]), k.f32([4])],
    );
    const c = compileAndCheck(g);
    expect(kernels(c)).toBe(1);
    // Every div/mod left in a load index involves only the reduction variable (k = cin*kh*kw flattened).
    const divModVars = new Set<string>();
    const visit = (e: IndexExpr, inside: boolean): void => {
      for (const t of e.terms) {
        if (t.atom.kind === "var" && inside) divModVars.add(t.atom.name);
        if (t.atom.kind === "div" || t.atom.kind === "mod") visit(t.atom.x, true);
      }
    };
    for (const e of c.program.kernels[0]!.sections[0]!.exprs) if (e.op === "load") visit(e.index, false);
    expect([...divModVars].filter((v) => v.startsWith("o"))).toEqual([]);
  });

  test("causal scaled-dot-product attention forward is at most 3 kernels", () => {
    const g = trace(
      (q: k.Tensor, kk: k.Tensor, v: k.Tensor) => k.nn.functional.scaledDotProductAttention(q, kk, v, { isCausal: true }),
      [k.f32([2, 2, 8, 16]), k.f32([2, 2, 8, 16]), k.f32([2, 2, 8, 16])],
    );
    expect(kernels(compileAndCheck(g))).toBeLessThanOrEqual(3);
  });

  test("independent small updates share one kernel (horizontal fusion)", () => {
    const g = trace(
      (a: k.Tensor, b: k.Tensor, c: k.Tensor, ga: k.Tensor, gb: k.Tensor, gc: k.Tensor) => [a.sub(ga.mul(0.1)), b.sub(gb.mul(0.1)), c.sub(gc.mul(0.1))],
      [k.f32([4, 3]), k.f32([7]), k.f32([2, 2, 2]), k.f32([4, 3]), k.f32([7]), k.f32([2, 2, 2])],
    );
    const c = compileAndCheck(g);
    expect(c.plan.groups.length).toBe(3);
    expect(kernels(c)).toBe(1);
    expect(compileJs(g, { horizontal: false }).artifact.stats.kernels).toBe(3);
    // Each update binds 3 buffers (param, grad, new param): a limit of 6 allows two per kernel.
    expect(planFusion(g, { maxBuffersPerKernel: 6 }).kernels.map((kk) => kk.length)).toEqual([2, 1]);
  });

  test("noFusion gives one group per computed node", () => {
    const g = trace((x: k.Tensor) => x.mul(2).add(1).exp(), [k.f32([5])]);
    // mul, add, the exp's scale by log2(e), exp2; constants and broadcasts fold into indices.
    expect(planFusion(g, { noFusion: true, horizontal: false }).groups.length).toBe(4);
  });
});

describe("the 784-512-512-10 MLP training step with Adam", () => {
  const net = k.nn.sequential(k.nn.linear(784, 512), k.nn.relu(), k.nn.linear(512, 512), k.nn.relu(), k.nn.linear(512, 10));
  const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-3 }));
  const g = trace(step as never, { x: k.f32([128, 784]), y: k.i32([128]) });
  const compiled = compileJs(g);

  test("runs in at most 10 kernels", () => {
    expect(kernels(compiled), formatFusionPlan(compiled.graph, compiled.plan)).toBeLessThanOrEqual(10);
  });

  test("moves at most 1.5x the analytic minimum of bytes", () => {
    // The minimum: read every input once (batch, labels, parameters, Adam state) and write every output once.
    let minimum = 0;
    for (const id of g.inputs) minimum += numel(nodeOf(g, id).type.shape) * 4;
    for (const o of g.outputs) minimum += numel(nodeOf(g, o.value).type.shape) * 4;
    const moved = compiled.artifact.stats.bytesRead + compiled.artifact.stats.bytesWritten;
    expect(moved / minimum).toBeLessThanOrEqual(1.5);
    expect(compiled.artifact.stats.peakBytes).toBeGreaterThan(0);
  });
});

describe("a deep pre-LN residual stack's training step", () => {
  // Inlining the residual stream into every user would recompute it from the first layer in
  // each later layer's kernels: kernel IR and reads quadratic in depth. Written out once its
  // recomputation reads more than FAN_IN_LIMIT values, both grow linearly.
  class Block extends k.nn.Module {
    readonly ln = k.nn.layerNorm(8);
    readonly fc1 = k.nn.linear(8, 16);
    readonly fc2 = k.nn.linear(16, 8);
    forward(x: k.Tensor): k.Tensor {
      return x.add(this.fc2.call(this.fc1.call(this.ln.call(x)).relu()));
    }
  }
  class Deep extends k.nn.Module {
    readonly blocks: Block[];
    constructor(depth: number) {
      super();
      this.blocks = Array.from({ length: depth }, () => new Block());
    }
    forward(x: k.Tensor): k.Tensor {
      for (const b of this.blocks) x = b.call(x);
      return x;
    }
  }
  const compileDeep = (depth: number, check: boolean) => {
    const step = k.trainStep(new Deep(depth), (y, t) => y.sub(t!).square().mean(), k.optim.sgd({ lr: 0.1 }));
    const g = trace(step as never, { x: k.f32([4, 8]), y: k.f32([4, 8]) });
    const c = check ? compileAndCheck(g) : compileJs(g);
    return {
      exprs: c.program.kernels.reduce((sum, kk) => sum + kk.sections.reduce((s2, s) => s2 + s.exprs.length, 0), 0),
      maxReads: Math.max(...c.program.kernels.map((kk) => kk.reads.length)),
    };
  };

  test("kernel IR grows linearly with depth, and no kernel reads more buffers at 16 layers than at 8", () => {
    const [eight, sixteen] = [compileDeep(8, true), compileDeep(16, false)];
    expect(sixteen.maxReads).toBe(eight.maxReads);
    expect(sixteen.exprs).toBeLessThanOrEqual(2.05 * eight.exprs);
  });
});
