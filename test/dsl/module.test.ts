// nn modules: dotted state-dict names (explicit registration, fields, Sequential, nesting),
// loadStateDict's checks, PyTorch-default init (bounds from fan_in, determinism per seed,
// the threefry stream each parameter takes), and forward passes against loops written here.

import { beforeEach, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { rngValueAt } from "../../compiler/util/threefry.ts";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose } from "../util/ref.ts";

const seq = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

class Block extends k.nn.Module {
  fc1 = k.nn.linear(3, 4);
  act = k.nn.relu();
  fc2 = k.nn.linear(4, 2, { bias: false });
  forward(x: k.Tensor): k.Tensor {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

class Net extends k.nn.Module {
  encoder = new Block();
  heads = [k.nn.linear(2, 1), k.nn.linear(2, 1)];
  scale = new k.nn.Parameter("scale", [1], [2]);
  forward(x: k.Tensor): k.Tensor {
    const h = this.encoder.call(x);
    return this.heads[0]!.call(h).add(this.heads[1]!.call(h)).mul(this.scale.tensor());
  }
}

beforeEach(() => k.manualSeed(0));

describe("state dict names", () => {
  test("sequential children are named 0, 1, …; parameterless layers add no keys", () => {
    const net = k.nn.sequential(k.nn.linear(4, 3), k.nn.relu(), k.nn.dropout(0.1), k.nn.linear(3, 2));
    expect(Object.keys(net.stateDict())).toEqual(["0.weight", "0.bias", "3.weight", "3.bias"]);
    expect(net.stateDict()["3.weight"]!.shape).toEqual([2, 3]);
    expect(net.parameters().map((p) => p.path)).toEqual(["0.weight", "0.bias", "3.weight", "3.bias"]);
  });

  test("fields register as children and parameters, arrays as name.i, in definition order", () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual([
      "scale",
      "encoder.fc1.weight",
      "encoder.fc1.bias",
      "encoder.fc2.weight",
      "heads.0.weight",
      "heads.0.bias",
      "heads.1.weight",
      "heads.1.bias",
    ]);
    // The state input names a trace uses are the same dotted names.
    expect(net.parameters().map((p) => p.path)).toEqual(net.namedParameters().map(([n]) => n));
  });

  test("nested sequentials", () => {
    const net = k.nn.sequential(k.nn.sequential(k.nn.linear(2, 2), k.nn.tanh()), k.nn.layerNorm(2));
    expect(Object.keys(net.stateDict())).toEqual(["0.0.weight", "0.0.bias", "1.weight", "1.bias"]);
  });
});

describe("module scopes", () => {
  test("ops traced inside Module.call carry the module's dotted path; the root module and plain code carry none", () => {
    const net = new Net();
    const { graph } = traceFunction("f", (x: k.Tensor) => net.call(x).exp(), [k.f32([5, 3])]);
    const scopesOf = (op: string): (string | undefined)[] => graph.nodes.filter((n) => n.op === op).map((n) => n.scope);
    // fc1 and fc2 are dots; heads are dots too; relu is a max; the root's scale multiply and the exp have no scope.
    expect(scopesOf("dot")).toEqual(["encoder.fc1", "encoder.fc2", "heads.0", "heads.1"]);
    expect(scopesOf("max")).toEqual(["encoder.act"]);
    expect(scopesOf("exp2")).toEqual([undefined]);
    expect(graph.nodes.find((n) => n.op === "mul" && n.scope === undefined)).toBeDefined();
  });

  test("backward nodes keep the scope of the forward node they differentiate", () => {
    const net = k.nn.sequential(k.nn.linear(3, 2));
    const { graph } = traceFunction("g", (x: k.Tensor) => k.grad((y: k.Tensor) => net.call(y).sum())(x), [k.f32([4, 3])]);
    const dots = graph.nodes.filter((n) => n.op === "dot");
    // The forward x @ Wᵀ and the backward g @ W both come from module "0".
    expect(dots.length).toBeGreaterThanOrEqual(2);
    expect(dots.every((n) => n.scope === "0")).toBe(true);
  });
});

describe("loadStateDict", () => {
  const net = () => k.nn.sequential(k.nn.linear(2, 3), k.nn.relu(), k.nn.linear(3, 1));

  test("round trip replaces values", () => {
    const a = net();
    const b = net();
    expect(Array.from(a.stateDict()["0.weight"]!.data)).not.toEqual(Array.from(b.stateDict()["0.weight"]!.data));
    b.loadStateDict(a.stateDict());
    for (const [name, t] of Object.entries(a.stateDict())) expect(Array.from(b.stateDict()[name]!.data)).toEqual(Array.from(t.data));
  });

  test("missing and unexpected keys are named; strict: false skips them", () => {
    const state = net().stateDict();
    const { ["2.bias"]: _dropped, ...missing } = state;
    expect(() => net().loadStateDict(missing)).toThrow("loadStateDict: missing key(s): 2.bias");
    expect(() => net().loadStateDict({ ...state, "9.weight": { shape: [1], data: [0] } })).toThrow("loadStateDict: unexpected key(s): 9.weight");
    const target = net();
    target.loadStateDict({ "2.bias": { shape: [1], data: [0.25] }, extra: { shape: [1], data: [1] } }, { strict: false });
    expect(Array.from(target.stateDict()["2.bias"]!.data)).toEqual([0.25]);
  });

  test("shape mismatches name the key and both shapes", () => {
    const state = net().stateDict();
    expect(() => net().loadStateDict({ ...state, "0.weight": { shape: [2, 3], data: new Array(6).fill(0) } })).toThrow(
      "loadStateDict: '0.weight' has shape [2,3], the module expects [3,2]",
    );
    expect(() => net().loadStateDict({ ...state, "0.bias": { shape: [3], data: [1, 2] } })).toThrow("loadStateDict: '0.bias' has 2 values for shape [3]");
  });
});

describe("initialization", () => {
  const maxAbs = (t: { data: ArrayLike<number> }) => Math.max(...Array.from(t.data, Math.abs));

  test("Linear: weight and bias in ±1/sqrt(in_features), filling the range", () => {
    const layer = k.nn.linear(64, 32);
    const bound = 1 / 8;
    const w = layer.weight.hostTensor();
    expect(maxAbs(w)).toBeLessThanOrEqual(bound);
    expect(maxAbs(w)).toBeGreaterThan(0.95 * bound);
    expect(maxAbs(layer.bias!.hostTensor())).toBeLessThanOrEqual(bound);
    // Mean of U(-b, b) over 2048 draws: sd b/sqrt(3·2048) ≈ 0.0016.
    const mean = Array.from(w.data).reduce((a, b) => a + b, 0) / w.data.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
  });

  test("Conv2d and ConvTranspose2d: fan_in is dim 1 × kH × kW of the weight", () => {
    const conv = k.nn.conv2d(6, 8, [3, 2], { groups: 2 }); // weight [8, 3, 3, 2]: fan_in 18
    expect(conv.weight.shape).toEqual([8, 3, 3, 2]);
    expect(maxAbs(conv.weight.hostTensor())).toBeLessThanOrEqual(1 / Math.sqrt(18));
    expect(maxAbs(conv.weight.hostTensor())).toBeGreaterThan(0.9 / Math.sqrt(18));
    expect(maxAbs(conv.bias!.hostTensor())).toBeLessThanOrEqual(1 / Math.sqrt(18));
    const tconv = k.nn.convTranspose2d(4, 10, 3); // weight [4, 10, 3, 3]: fan_in 90, not 36
    expect(tconv.weight.shape).toEqual([4, 10, 3, 3]);
    expect(maxAbs(tconv.weight.hostTensor())).toBeLessThanOrEqual(1 / Math.sqrt(90));
    expect(maxAbs(tconv.weight.hostTensor())).toBeGreaterThan(0.9 / Math.sqrt(90));
  });

  test("each parameter takes the next threefry stream of the seed: w = -b + 2b·u", () => {
    k.manualSeed(42);
    const layer = k.nn.linear(3, 2);
    const b = 1 / Math.sqrt(3);
    expectClose(
      layer.weight.hostTensor().data,
      seq(6, (i) => -b + 2 * b * rngValueAt(42, 0, i)),
      1e-15,
    );
    expectClose(
      layer.bias!.hostTensor().data,
      seq(2, (i) => -b + 2 * b * rngValueAt(42, 1, i)),
      1e-15,
    );
  });

  test("same seed, same weights; another seed, other weights", () => {
    const make = (seed: number) => {
      k.manualSeed(seed);
      return k.nn.sequential(k.nn.linear(5, 4), k.nn.embedding(3, 2)).stateDict();
    };
    const a = make(7);
    const b = make(7);
    const c = make(8);
    for (const name of Object.keys(a)) {
      expect(Array.from(b[name]!.data)).toEqual(Array.from(a[name]!.data));
      expect(Array.from(c[name]!.data)).not.toEqual(Array.from(a[name]!.data));
    }
  });

  test("LayerNorm: weight 1, bias 0; no parameters without elementwiseAffine", () => {
    const ln = k.nn.layerNorm([2, 3]);
    expect(Array.from(ln.stateDict()["weight"]!.data)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(ln.stateDict()["bias"]!.data)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Object.keys(k.nn.layerNorm(4, { elementwiseAffine: false }).stateDict())).toEqual([]);
  });

  test("Embedding: N(0, 1) (moments of 20,000 draws)", () => {
    const data = Array.from(k.nn.embedding(200, 100).weight.hostTensor().data);
    const mean = data.reduce((a, b) => a + b, 0) / data.length;
    const variance = data.reduce((a, b) => a + (b - mean) ** 2, 0) / data.length;
    const fourth = data.reduce((a, b) => a + (b - mean) ** 4, 0) / data.length;
    expect(Math.abs(mean)).toBeLessThan(0.03); // sd of the mean ≈ 0.007
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    expect(Math.abs(fourth / variance ** 2 - 3)).toBeLessThan(0.2); // kurtosis of a normal
  });

  test("bad arguments", () => {
    expect(() => k.nn.linear(0, 3)).toThrow("Linear: inFeatures must be a positive integer, got 0");
    expect(() => k.nn.conv2d(3, 4, 3, { groups: 2 })).toThrow("Conv2d: inChannels 3 and outChannels 4 must be divisible by groups 2");
    expect(() => k.nn.dropout(1.5)).toThrow("Dropout: p must be in [0, 1], got 1.5");
    expect(() => k.manualSeed(0.5)).toThrow("manualSeed: seed must be a 32-bit integer, got 0.5");
  });
});

describe("forward", () => {
  test("Sequential(Linear, ReLU, Linear) matches loops over its own weights", async () => {
    const net = k.nn.sequential(k.nn.linear(3, 4), k.nn.relu(), k.nn.linear(4, 2));
    const exe = await k.compile((x: k.Tensor) => net.call(x), [k.f32([2, 3])], { target: "reference" });
    const x = [0.5, -1, 2, 1.5, 0.25, -0.75];
    const s = net.stateDict();
    const dense = (inp: number[], w: ArrayLike<number>, b: ArrayLike<number>, n: number, inF: number, outF: number): number[] =>
      seq(n * outF, (idx) => {
        const [i, o] = [Math.floor(idx / outF), idx % outF];
        return b[o]! + seq(inF, (j) => inp[i * inF + j]! * w[o * inF + j]!).reduce((a, c) => a + c, 0);
      });
    const xf = Array.from(Float32Array.from(x));
    const hidden = dense(xf, s["0.weight"]!.data, s["0.bias"]!.data, 2, 3, 4).map((v) => Math.max(v, 0));
    const expected = dense(hidden, s["2.weight"]!.data, s["2.bias"]!.data, 2, 4, 2);
    const y = (await exe.run([x])) as HostOutput;
    expect(y.shape).toEqual([2, 2]);
    expectClose(y.data, expected, 1e-12, 1e-12);
    // The graph reads each parameter as a state input named by its dotted path.
    expect(Object.keys(exe.state())).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
  });

  test("Conv2d module equals functional conv2d with its weights", async () => {
    const conv = k.nn.conv2d(2, 3, 3, { padding: 1, stride: 2 });
    const mod = await k.compile((x: k.Tensor) => conv.call(x), [k.f32([1, 2, 5, 5])], { target: "reference" });
    const fn = await k.compile(
      (x: k.Tensor, w: k.Tensor, b: k.Tensor) => k.nn.functional.conv2d(x, w, b, { padding: 1, stride: 2 }),
      [k.f32([1, 2, 5, 5]), k.f32([3, 2, 3, 3]), k.f32([3])],
      { target: "reference" },
    );
    const x = seq(50, (i) => Math.cos(i));
    const a = (await mod.run([x])) as HostOutput;
    const b = (await fn.run([x, conv.weight.hostTensor().data, conv.bias!.hostTensor().data])) as HostOutput;
    expect(a.shape).toEqual([1, 3, 3, 3]);
    expectClose(a.data, b.data, 1e-12);
  });

  test("Embedding and LayerNorm modules", async () => {
    const emb = k.nn.embedding(4, 3);
    const exe = await k.compile((i: k.Tensor) => k.nn.sequential(emb, k.nn.layerNorm(3)).call(i), [k.i32([2])], { target: "reference" });
    const y = (await exe.run([[3, 1]])) as HostOutput;
    const table = emb.weight.hostTensor().data;
    const expected = [3, 1].flatMap((row) => {
      const v = seq(3, (j) => table[row * 3 + j]!);
      const mean = (v[0]! + v[1]! + v[2]!) / 3;
      const variance = v.reduce((a, c) => a + (c - mean) ** 2, 0) / 3;
      return v.map((c) => (c - mean) / Math.sqrt(variance + 1e-5));
    });
    expectClose(y.data, expected, 1e-12, 1e-12);
  });

  test("Dropout is active while training and the identity after eval()", () => {
    const net = k.nn.sequential(k.nn.linear(2, 2), k.nn.dropout(0.5));
    const inputs = (g: ReturnType<typeof traceFunction>["graph"]) => g.nodes.flatMap((n) => (n.op === "input" ? [n.name] : []));
    expect(inputs(traceFunction("t", (x: k.Tensor) => net.call(x), [k.f32([1, 2])]).graph)).toContain("seed");
    net.eval();
    expect(net.at(1).training).toBe(false);
    expect(inputs(traceFunction("t", (x: k.Tensor) => net.call(x), [k.f32([1, 2])]).graph)).not.toContain("seed");
  });

  test("functionalCall runs the module with substitute parameter values", async () => {
    const layer = k.nn.linear(2, 1);
    const exe = await k.compile((x: k.Tensor, w: k.Tensor) => k.functionalCall(layer, { weight: w }, () => layer.call(x)), [k.f32([1, 2]), k.f32([1, 2])], {
      target: "reference",
    });
    const y = (await exe.run([
      [1, 2],
      [3, -1],
    ])) as HostOutput;
    expectClose(y.data, [3 - 2 + layer.bias!.hostTensor().data[0]!], 1e-12);
    expect(() => traceFunction("t", (x: k.Tensor) => k.functionalCall(layer, { nope: x }, () => x), [k.f32([1])])).toThrow(
      "functionalCall: the module has no parameter 'nope'",
    );
  });

  test("two unregistered layers with the same parameter names in one graph are an error", () => {
    const a = k.nn.linear(2, 2);
    const b = k.nn.linear(2, 2);
    expect(() => traceFunction("t", (x: k.Tensor) => b.call(a.call(x)), [k.f32([1, 2])])).toThrow("two parameters share the state name 'weight'");
  });
});
