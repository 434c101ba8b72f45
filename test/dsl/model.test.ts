// k.compileModel: a train step and predict compiled from one module share one state. After
// training steps through the model, predict equals the float64 interpreter run on the trained
// weights (read back once, at the end), in eval mode (no dropout) whatever net.train() said;
// every available target. Checkpoints hold the whole model, optimizer included, and a bad one
// is refused whole with one line naming the problem.

import { beforeEach, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import { expectClose } from "../util/ref.ts";
import { lcg } from "../util/lcg.ts";

beforeEach(() => k.manualSeed(0));

const batch = 8;
const features = 3;
const classes = 4;
const r = lcg(11);
const xs = Array.from({ length: batch * features }, () => 2 * r() - 1);
const ys = Array.from({ length: batch }, (_, i) => i % classes);

function mlp(): k.nn.Module {
  return k.nn.sequential(k.nn.linear(features, 6), k.nn.relu(), k.nn.dropout(0.5), k.nn.linear(6, classes));
}

const loss = (logits: k.Tensor, y: k.Tensor): k.Tensor => k.nn.functional.crossEntropy(logits, y);
const specs = { x: k.f32([batch, features]), y: k.i32([batch]) };
const out = (o: unknown): number[] => Array.from((o as HostOutput).data);

/** The forward pass in eval mode on the float64 interpreter, with `weights`: independent of the model's programs. */
async function referencePredict(weights: Record<string, HostTensor>): Promise<number[]> {
  const net = mlp().eval();
  const exe = await k.compile((x: k.Tensor) => net.call(x), [specs.x], { target: "reference" });
  exe.loadState(Object.fromEntries(Object.entries(weights).filter(([n]) => !n.startsWith("opt."))));
  return out(await exe.run([xs]));
}

describe("k.compileModel", async () => {
  const targets = await k.availableTargets();
  test.each(targets)("%s: predict sees the weights the train steps left, in eval mode", async (target) => {
    k.manualSeed(1);
    const net = mlp();
    net.train(); // the mode at trace time does not matter: predict is traced in eval mode
    const model = await k.compileModel(net, { train: k.trainStep(net, loss, k.optim.adam({ lr: 0.05 })), predict: (x: k.Tensor) => net.call(x) }, specs, {
      target,
    });
    expect(model.modes).toEqual({ train: "train", predict: "eval" });
    expect(net.training).toBe(true); // put back
    const before = out(await model.predict({ x: xs }));
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) losses.push((await model.train({ x: xs, y: ys }, { seed: i })).loss.data[0]!);
    const after = out(await model.predict({ x: xs }));
    expect(out(await model.predict({ x: xs }))).toEqual(after); // no dropout: the same output twice
    const trained = await model.fetchState();
    expect(Object.keys(trained)).toContain("opt.step");
    expect(trained["opt.step"]!.data[0]).toBe(4);
    expect(after).not.toEqual(before);
    expectClose(after, await referencePredict(trained), 1e-4, 1e-4);
    // The train program's state and the model's agree, and predict's executable sees the same weights.
    expectClose(Array.from((await model.programs.predict.fetchState())["3.weight"]!.data), Array.from(trained["3.weight"]!.data), 0, 0);
    await model.close();
  });

  test.each(targets.filter((t) => t !== "reference"))(
    "%s: programs share the device state: no parameter crosses the host between train and predict",
    async (target) => {
      const net = mlp();
      const model = await k.compileModel(net, { train: k.trainStep(net, loss, k.optim.adam({ lr: 0.05 })), predict: (x: k.Tensor) => net.call(x) }, specs, {
        target,
      });
      const xBytes = batch * features * 4;
      // Every input of the step that is not state (x, y, the dropout seed, the optimizer's hyperparameters) is uploaded each run.
      const stateNames = new Set(Object.keys(model.state()));
      const trainInputBytes = model.programs.train.graph.inputs
        .map((id) => nodeOf(model.programs.train.graph, id))
        .filter((n) => n.op === "input" && !stateNames.has(n.name))
        .reduce((bytes, n) => bytes + n.type.shape.reduce((a, b) => a * b, 1) * 4, 0);
      expect(trainInputBytes).toBeGreaterThanOrEqual(xBytes + batch * 4 + 4);
      const parameterBytes = (features * 6 + 6 + 6 * classes + classes) * 4;
      await model.predict({ x: xs }); // the initial weights go up once
      expect(model.programs.predict.ioStats?.bytesIn).toBe(xBytes + parameterBytes);
      await model.predict({ x: xs });
      expect(model.programs.predict.ioStats?.bytesIn).toBe(xBytes);
      for (let i = 0; i < 3; i++) await model.train({ x: xs, y: ys });
      expect(model.programs.train.ioStats?.bytesIn).toBe(trainInputBytes);
      await model.predict({ x: xs });
      const shared = target === "webgpu" || target === "js" || target === "wasm";
      // webgpu and js bind one buffer per state entry in every program, wasm one memory with the state at the same addresses; cuda hands the weights over through the host once.
      if (shared) expect(model.programs.predict.ioStats?.bytesIn).toBe(xBytes);
      else expect(model.programs.predict.ioStats?.bytesIn).toBeGreaterThanOrEqual(xBytes + parameterBytes);
      await model.predict({ x: xs });
      expect(model.programs.predict.ioStats?.bytesIn).toBe(xBytes);
      await model.train({ x: xs, y: ys });
      // wasm: the parameters predict read come back up; the optimizer state never left the train program's memory.
      expect(model.programs.train.ioStats?.bytesIn).toBe(trainInputBytes + (shared ? 0 : parameterBytes));
      await model.close();
    },
  );

  test.runIf(targets.includes("webgpu"))(
    "webgpu with few storage buffers per stage: a packed state entry falls back to the host hand-over, still right",
    async () => {
      k.manualSeed(1);
      const net = mlp();
      const model = await k.compileModel(net, { train: k.trainStep(net, loss, k.optim.adam({ lr: 0.05 })), predict: (x: k.Tensor) => net.call(x) }, specs, {
        target: "webgpu",
        limits: { maxStorageBuffersPerShaderStage: 4 },
      });
      for (let i = 0; i < 3; i++) await model.train({ x: xs, y: ys }, { seed: i });
      const after = out(await model.predict({ x: xs }));
      await model.train({ x: xs, y: ys }, { seed: 3 });
      // The packed layout cannot bind the shared buffers: the state came back up after predict ran.
      expect(model.programs.train.ioStats!.bytesIn).toBeGreaterThan(batch * features * 4 + batch * 4 + 4);
      const trained = await model.fetchState();
      expectClose(out(await model.predict({ x: xs })), await referencePredict(trained), 1e-4, 1e-4);
      expect(after).not.toEqual(out(await model.predict({ x: xs })));
    },
  );

  test("misuse is named", async () => {
    const net = mlp();
    const predict = (x: k.Tensor) => net.call(x);
    await expect(k.compileModel(net, { state: predict }, specs)).rejects.toThrow(
      "k.compileModel: a program may not be named 'state' (a property of the model)",
    );
    await expect(k.compileModel(net, { predict }, { predict: [specs.x], other: [specs.x] })).rejects.toThrow(
      "k.compileModel: specs: 'other' is neither an input spec nor a program (programs: predict)",
    );
    await expect(k.compileModel(net, { predict }, specs, { modes: { predcit: "eval" } as never })).rejects.toThrow(
      "k.compileModel: modes: 'predcit' is not a program (programs: predict)",
    );
    await expect(k.compileModel(net, { predict }, specs, { modes: { predict: "training" as never } })).rejects.toThrow(
      'modes.predict must be "train" or "eval"',
    );
    await expect(k.compileModel({} as never, { predict }, specs)).rejects.toThrow("the first argument must be the module");
    // Per-program specs: each program gets its own.
    const model = await k.compileModel(
      net,
      { predict, scores: (x: k.Tensor) => net.call(x).softmax(1) },
      { predict: [specs.x], scores: [k.f32([2, features])] },
      { target: "js" },
    );
    expect((await model.scores([xs.slice(0, 2 * features)])).shape).toEqual([2, classes]);
  });

  test("a train step runs dropout, predict does not, whatever the module's flag at trace time", async () => {
    const net = mlp().eval();
    const model = await k.compileModel(
      net,
      {
        train: k.trainStep(net, loss, k.optim.sgd({ lr: 0 })),
        evalLoss: (x: k.Tensor, y: k.Tensor) => loss(net.call(x), y),
        predict: (x: k.Tensor) => net.call(x),
      },
      specs,
      { target: "reference" },
    );
    expect(model.modes).toEqual({ train: "train", evalLoss: "eval", predict: "eval" });
    expect(net.training).toBe(false);
    // lr 0: the weights never move, so the train loss differs from evalLoss only by dropout.
    const evalLoss = (await model.evalLoss({ x: xs, y: ys })).data[0]!;
    const trainLosses = [0, 1, 2].map(async (seed) => (await model.train({ x: xs, y: ys }, { seed })).loss.data[0]!);
    const resolved = await Promise.all(trainLosses);
    expect(resolved.some((l) => Math.abs(l - evalLoss) > 1e-6)).toBe(true);
    expect(new Set(resolved).size).toBeGreaterThan(1); // a fresh mask per seed
    expect(model.programs.predict.graph.nodes.some((n) => n.op === "rng")).toBe(false);
    expect(model.programs.train.graph.nodes.some((n) => n.op === "rng")).toBe(true);
  });

  test("one checkpoint for the model: save after training, load into a fresh model, continue identically", async () => {
    const build = async () => {
      k.manualSeed(2);
      const net = mlp();
      return k.compileModel(net, { train: k.trainStep(net, loss, k.optim.adam({ lr: 0.05 })), predict: (x: k.Tensor) => net.call(x) }, specs, { target: "js" });
    };
    const a = await build();
    for (let i = 0; i < 2; i++) await a.train({ x: xs, y: ys }, { seed: i });
    const bytes = await a.stateBytes();
    const b = await build();
    b.loadState(bytes);
    for (let i = 2; i < 4; i++) {
      const la = (await a.train({ x: xs, y: ys }, { seed: i })).loss.data[0];
      const lb = (await b.train({ x: xs, y: ys }, { seed: i })).loss.data[0];
      expect(lb).toBe(la);
    }
    expect(out(await b.predict({ x: xs }))).toEqual(out(await a.predict({ x: xs })));
    // The train program's state (opt.* included) loads into predict's executable: opt.* is dropped there.
    const c = await build();
    c.programs.predict.loadState(a.programs.train.state());
    expect(out(await c.predict({ x: xs }))).toEqual(out(await a.predict({ x: xs })));
  });

  test("a checkpoint of another model or optimizer is refused whole, in one line", async () => {
    const net = mlp();
    const model = await k.compileModel(net, { train: k.trainStep(net, loss, k.optim.adam({ lr: 0.05 })), predict: (x: k.Tensor) => net.call(x) }, specs, {
      target: "js",
    });
    const before = model.state();
    const other = k.nn.sequential(k.nn.linear(features, 5), k.nn.relu(), k.nn.dropout(0.5), k.nn.linear(5, classes));
    const otherModel = await k.compileModel(other, { train: k.trainStep(other, loss, k.optim.adam({ lr: 0.05 })) }, specs, { target: "js" });
    const oneLine = (f: () => void, pattern: RegExp) => {
      let message = "";
      try {
        f();
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(pattern);
      expect(message).not.toContain("\n");
    };
    oneLine(() => model.loadState(otherModel.state()), /model\.loadState: '0\.weight': .*\[5,3\].*\[6,3\]|shape/);
    const sgdNet = mlp();
    const sgdModel = await k.compileModel(sgdNet, { train: k.trainStep(sgdNet, loss, k.optim.sgd({ lr: 0.1, momentum: 0.9 })) }, specs, { target: "js" });
    await sgdModel.train({ x: xs, y: ys });
    oneLine(() => model.loadState(await1(sgdModel)), /optimizer/);
    const renamed = Object.fromEntries(Object.entries(before).map(([n, t]) => [n.replace("3.", "head."), t]));
    oneLine(() => model.loadState(k.safetensors.encode(renamed)), /missing 3\.weight, 3\.bias.*unexpected head\.bias, head\.weight/);
    const wrongDtype = { ...before, "opt.step": { dtype: "f32" as const, shape: [], data: Float32Array.of(1.5) } };
    oneLine(() => model.loadState(k.safetensors.encode(wrongDtype)), /opt\.step/);
    // Nothing was half-loaded.
    const now = model.state();
    for (const [name, t] of Object.entries(before)) expect(Array.from(now[name]!.data)).toEqual(Array.from(t.data));
  });
});

function await1(m: { state(): Record<string, HostTensor> }): Uint8Array {
  return k.safetensors.encode(m.state());
}
