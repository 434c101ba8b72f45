// k.trainStep end to end on the reference interpreter: a small MLP learns two Gaussian-like
// blobs and a linear regression (the loss falls), the step is one verified graph whose state
// outputs alias their inputs, parameters round-trip between the module and the executable,
// and misuse gets clear errors.

import { beforeEach, describe, expect, test } from "vitest";
import * as k from "kiln";
import { nodeOf } from "../../compiler/ir/graph.ts";
import { verifyGraph } from "../../compiler/ir/verifier.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostOutput } from "../../dsl/host-data.ts";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose } from "../util/ref.ts";
import { lcg } from "../util/lcg.ts";

beforeEach(() => k.manualSeed(0));

/** 2-d points: class 0 around (-1, -1), class 1 around (1, 1), spread ±0.8 uniformly. */
function blobs(n: number): { x: number[]; y: number[] } {
  const r = lcg(5);
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    const centre = label === 0 ? -1 : 1;
    x.push(centre + 1.6 * (r() - 0.5), centre + 1.6 * (r() - 0.5));
    y.push(label);
  }
  return { x, y };
}

const stateInputNames = (g: Graph): string[] =>
  g.inputs
    .map((id) => nodeOf(g, id))
    .flatMap((n) => (n.op === "input" ? [n.name] : []))
    .filter((n) => n !== "x" && n !== "y" && n !== "seed" && n !== "hyper");

const lossOf = (out: unknown): number => (out as { loss: HostOutput }).loss.data[0]!;

describe("k.trainStep", () => {
  test("an MLP learns two blobs with AdamW (positional specs): loss falls, accuracy 100%", async () => {
    const net = k.nn.sequential(k.nn.linear(2, 16), k.nn.relu(), k.nn.linear(16, 2));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.adamW({ lr: 0.05 }));
    const exe = await k.compile(step, [k.f32([32, 2]), k.i32([32])]);
    const { x, y } = blobs(32);
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) losses.push(lossOf(await exe.run([x, y])));
    expect(losses[0]).toBeGreaterThan(0.3);
    expect(losses[29]).toBeLessThan(0.2 * losses[0]!);
    expect(losses.every(Number.isFinite)).toBe(true);

    // The trained parameters come back into the module by their dotted names.
    net.loadStateDict(exe.state(), { strict: false });
    const forward = await k.compile((inp: k.Tensor) => net.call(inp).argmax(1), [k.f32([32, 2])]);
    const predicted = (await forward.run([x])) as HostOutput;
    expect(Array.from(predicted.data)).toEqual(y);
  });

  test("record specs; SGD with momentum fits a linear regression (MSE)", async () => {
    const model = k.nn.linear(3, 1);
    const step = k.trainStep(model, (pred, target) => k.nn.functional.mseLoss(pred.reshape([16]), target), k.optim.sgd({ lr: 0.2, momentum: 0.5 }));
    const exe = await k.compile(step, { x: k.f32([16, 3]), y: k.f32([16]) });
    const r = lcg(9);
    const x = Array.from({ length: 48 }, () => r() * 2 - 1);
    const y = Array.from({ length: 16 }, (_, i) => 2 * x[3 * i]! - x[3 * i + 1]! + 0.5 * x[3 * i + 2]! + 0.25);
    const losses: number[] = [];
    for (let i = 0; i < 40; i++) losses.push(lossOf(await exe.run({ x, y })));
    expect(losses[39]).toBeLessThan(0.01 * losses[0]!);
    expectClose(exe.state()["weight"]!.data, [2, -1, 0.5], 0.1, 0);
    expectClose(exe.state()["bias"]!.data, [0.25], 0.1, 0);
  });

  test("one graph: forward, backward and update; every state input has one aliasing output", async () => {
    const net = k.nn.sequential(k.nn.linear(4, 8), k.nn.gelu(), k.nn.layerNorm(8), k.nn.linear(8, 3));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.adam({ lr: 1e-3 }), { clipGradNorm: 1 });
    const { graph, state } = traceFunction("trainStep", step, { x: k.f32([5, 4]), y: k.i32([5]) });
    expect(verifyGraph(graph)).toEqual([]);
    const params = ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"];
    const optState = ["opt.step", ...params.flatMap((p) => [`opt.${p}.exp_avg`, `opt.${p}.exp_avg_sq`])];
    expect(stateInputNames(graph).sort()).toEqual([...params, ...optState].sort());
    expect([...state.keys()].sort()).toEqual([...params, ...optState].sort());
    expect(graph.outputs[0]).toMatchObject({ name: "loss" });
    expect(graph.outputs[0]!.aliases).toBeUndefined();
    const aliased = graph.outputs.slice(1);
    expect(aliased.map((o) => o.aliases).sort()).toEqual([...params, ...optState].sort());
    for (const o of aliased) {
      expect(o.name).toBe(o.aliases);
      const input = graph.inputs.map((id) => nodeOf(graph, id)).find((n) => n.op === "input" && n.name === o.aliases)!;
      expect(nodeOf(graph, o.value).type).toEqual(input.type);
    }
    // Forward and backward matmuls live in the same graph: 2 forward, 3 backward (no dx for the input).
    expect(graph.nodes.filter((n) => n.op === "dot").length).toBeGreaterThanOrEqual(5);
  });

  test("exe.loadState takes a module's state dict; runs resume from it", async () => {
    const net = k.nn.sequential(k.nn.linear(2, 4), k.nn.tanh(), k.nn.linear(4, 2));
    const initial = net.stateDict();
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.sgd({ lr: 0.5 }));
    const { x, y } = blobs(8);
    const a = await k.compile(step, [k.f32([8, 2]), k.i32([8])]);
    const first = lossOf(await a.run([x, y]));
    await a.run([x, y]);
    // A second executable at the first's starting point gives the same first loss.
    const b = await k.compile(step, [k.f32([8, 2]), k.i32([8])]);
    net.loadStateDict(a.state(), { strict: false });
    b.loadState(initial);
    expect(lossOf(await b.run([x, y]))).toBeCloseTo(first, 12);
    // And the module now holds the trained values of `a`.
    for (const [name, t] of Object.entries(net.stateDict())) expect(Array.from(t.data)).toEqual(Array.from(a.state()[name]!.data));
  });

  test("dropout in the model: each run draws a fresh mask, eval() removes it", async () => {
    const net = k.nn.sequential(k.nn.linear(2, 8), k.nn.relu(), k.nn.dropout(0.5), k.nn.linear(8, 2));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.sgd({ lr: 0 }));
    const { x, y } = blobs(8);
    const exe = await k.compile(step, [k.f32([8, 2]), k.i32([8])]);
    const l0 = lossOf(await exe.run([x, y], { seed: 1 }));
    const l1 = lossOf(await exe.run([x, y], { seed: 2 }));
    const l0again = lossOf(await exe.run([x, y], { seed: 1 }));
    expect(l0).not.toBe(l1);
    expect(l0again).toBe(l0); // lr 0: the parameters did not move
    net.eval();
    const evalGraph = traceFunction("t", step, [k.f32([8, 2]), k.i32([8])]).graph;
    expect(evalGraph.nodes.some((n) => n.op === "rng")).toBe(false);
  });

  test("every available target takes the same steps from the same seed", async () => {
    const { x, y } = blobs(16);
    const trajectory = async (target: string) => {
      k.manualSeed(3);
      const net = k.nn.sequential(k.nn.linear(2, 8), k.nn.relu(), k.nn.linear(8, 2));
      const step = k.trainStep(net, (logits, t) => k.nn.functional.crossEntropy(logits, t), k.optim.adam({ lr: 0.05 }), { clipGradNorm: 1 });
      const exe = await k.compile(step, [k.f32([16, 2]), k.i32([16])], { target });
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) losses.push(lossOf(await exe.run([x, y])));
      return { losses, weight: Array.from((await exe.fetchState())["2.weight"]!.data) };
    };
    const reference = await trajectory("reference");
    for (const target of await k.availableTargets()) {
      const other = await trajectory(target);
      expectClose(other.losses, reference.losses, 1e-4, 1e-4); // f32 targets vs the float64 oracle
      expectClose(other.weight, reference.weight, 1e-4, 1e-4);
    }
  });

  test("frozen parameters (requiresGrad false) are read but not updated", async () => {
    class Scaled extends k.nn.Module {
      fc = k.nn.linear(2, 1);
      scale = new k.nn.Parameter("scale", [1], [3], "f32", false);
      forward(x: k.Tensor): k.Tensor {
        return this.fc.call(x).mul(this.scale.tensor());
      }
    }
    const step = k.trainStep(new Scaled(), (out) => out.sum(), k.optim.sgd({ lr: 0.1 }));
    const { graph } = traceFunction("t", step, [k.f32([1, 2])]);
    expect(stateInputNames(graph).sort()).toEqual(["fc.bias", "fc.weight", "scale"]);
    expect(
      graph.outputs
        .map((o) => o.aliases)
        .filter(Boolean)
        .sort(),
    ).toEqual(["fc.bias", "fc.weight"]);
  });

  test("errors", () => {
    const net = k.nn.linear(2, 2);
    const trace = (fn: (...a: never[]) => unknown) => traceFunction("t", fn, [k.f32([3, 2])]);
    expect(() => trace(k.trainStep(net, (out) => out, k.optim.sgd()))).toThrow(
      /^k\.trainStep: the loss function must return a scalar f32 tensor, got f32\[3,2\]/,
    );
    expect(() => trace(k.trainStep(k.nn.relu(), (out) => out.sum(), k.optim.sgd()))).toThrow("k.trainStep: the model has no trainable parameters");
    const step = k.trainStep(net, (out) => out.sum(), k.optim.sgd());
    expect(() => step({})).toThrow("needs a traced context");
    // @ts-expect-error: not an optimizer
    expect(() => k.trainStep(net, (out) => out.sum(), { lr: 1 })).toThrow("k.trainStep: the third argument must be an optimizer");
  });
});
