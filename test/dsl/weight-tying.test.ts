// Weight tying as PyTorch users write it (`head.weight = emb.weight`): one parameter, listed
// once under the embedding's name, one state input, and a training step whose update is the
// gradient of both uses together — checked against central finite differences of the tied
// loss written as a plain function of one matrix. Also Embedding's default init, N(0, 1).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { expectClose, runRef } from "../util/ref.ts";

const F = k.nn.functional;
const [VOCAB, DIM, T] = [7, 4, 5];

class TinyLm extends k.nn.Module {
  emb = k.nn.embedding(VOCAB, DIM);
  proj = k.nn.linear(DIM, DIM);
  head = k.nn.linear(DIM, VOCAB, { bias: false });
  constructor() {
    super();
    this.head.weight = this.emb.weight;
  }
  forward(ids: k.Tensor): k.Tensor {
    return this.head.call(this.proj.call(this.emb.call(ids)).tanh());
  }
}

const ids = [1, 3, 3, 6, 0];
const targets = [3, 3, 6, 0, 2];

describe("weight tying: head.weight = emb.weight", () => {
  test("one parameter under the embedding's name; the state dict and the graph have it once", () => {
    k.manualSeed(1);
    const net = new TinyLm();
    expect(net.namedParameters().map(([n]) => n)).toEqual(["emb.weight", "proj.weight", "proj.bias"]);
    expect(Object.keys(net.stateDict())).toEqual(["emb.weight", "proj.weight", "proj.bias"]);
    const g = k.traceFunction("lm", (x: k.Tensor) => net.call(x), [k.i32([T])]).graph;
    expect(k.printGraph(g)).toContain("emb.weight");
    expect(k.printGraph(g)).not.toContain("head.weight");
  });

  test("a PyTorch state dict listing both names loads; either name alone is enough", () => {
    k.manualSeed(1);
    const net = new TinyLm();
    const state = net.stateDict();
    const w = { shape: [VOCAB, DIM], data: Array.from({ length: VOCAB * DIM }, (_, i) => i / 10) };
    net.loadStateDict({ ...state, "emb.weight": w, "head.weight": w });
    expect(Array.from(net.emb.weight.data)).toEqual(w.data);
    const { "emb.weight": _, ...rest } = state;
    net.loadStateDict({ ...rest, "head.weight": { shape: [VOCAB, DIM], data: new Array(VOCAB * DIM).fill(2) } });
    expect(net.head.weight.data[0]).toBe(2);
    expect(() => net.loadStateDict(rest)).toThrow(/missing key\(s\): emb.weight/);
  });

  test("tying parameters of different shapes is an error naming both", () => {
    const a = k.nn.linear(3, 5);
    a.weight = k.nn.embedding(4, 3).weight;
    expect(() => a.namedParameters()).toThrow(/shape mismatch tying 'weight' of Linear: it is f32\[5,3\], the assigned parameter 'weight' is f32\[4,3\]/);
  });

  test("an SGD step moves the shared matrix by the gradient of both uses (finite differences of the tied loss)", async () => {
    k.manualSeed(2);
    const net = new TinyLm();
    const w0 = Array.from(net.emb.weight.data);
    const pw = Array.from(net.proj.weight.data);
    const pb = Array.from(net.proj.bias!.data);
    const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 1 }));
    const exe = await k.compile(step, [k.i32([T]), k.i32([T])], { target: "reference" });
    await exe.run([ids, targets]);
    const w1 = Array.from((await exe.fetchState())["emb.weight"]!.data);
    // The same loss as a plain function of one matrix W used twice.
    const loss = (w: readonly number[]): number =>
      runRef(
        (W: k.Tensor, P: k.Tensor, b: k.Tensor, x: k.Tensor, y: k.Tensor) => F.crossEntropy(F.linear(F.linear(F.embedding(x, W), P, b).tanh(), W), y),
        [k.f32([VOCAB, DIM]), k.f32([DIM, DIM]), k.f32([DIM]), k.i32([T]), k.i32([T])],
        [w, pw, pb, ids, targets],
      ).values[0]!;
    const eps = 1e-6;
    const numeric = w0.map((_, i) => {
      const up = [...w0];
      const down = [...w0];
      up[i]! += eps;
      down[i]! -= eps;
      return (loss(up) - loss(down)) / (2 * eps);
    });
    // Rows of tokens never seen still move through the head: the gradient is non-zero there too.
    expect(numeric.slice(2 * DIM, 3 * DIM).some((g) => Math.abs(g) > 1e-4)).toBe(true);
    expectClose(
      w1.map((v, i) => w0[i]! - v),
      numeric,
      1e-6,
      1e-5,
    );
  });
});

test("Embedding's default init is N(0, 1), as PyTorch's", () => {
  k.manualSeed(5);
  const data = Array.from(k.nn.embedding(200, 50).weight.data);
  const n = data.length;
  const mean = data.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(data.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  // 10,000 draws: the mean's standard error is 0.01, the std's about 0.007.
  expect(Math.abs(mean)).toBeLessThan(0.04);
  expect(Math.abs(std - 1)).toBeLessThan(0.03);
  expect(data.filter((v) => Math.abs(v) > 3).length / n).toBeLessThan(0.006); // N(0,1): 0.27 %
});
