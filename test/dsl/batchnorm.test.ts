// nn.BatchNorm1d / nn.BatchNorm2d: against PyTorch 1.13 (test/fixtures/torch/batchnorm.json,
// written by make-batchnorm-fixtures.py) on every available target — three training-mode
// passes, the running statistics they leave (momentum, cumulative average, unbiased variance),
// then an eval-mode pass, through k.compileModel programs sharing the buffers; gradients
// against finite differences; running statistics after k.trainStep steps against a hand
// computation; PyTorch's state-dict names.

import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { HostOutput } from "../../dsl/host-data.ts";
import type { Tensor } from "../../dsl/tensor.ts";
import { gradcheck, uniform } from "../util/gradcheck.ts";
import { expectClose } from "../util/ref.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
interface TorchCase {
  readonly shape: number[];
  readonly params: Record<string, number[]>;
  readonly inputs: number[][];
  readonly train: number[][];
  readonly buffers: Record<string, number[]>;
  readonly evalInput: number[];
  readonly eval: number[];
}
const torch = JSON.parse(readFileSync(path.join(here, "../fixtures/torch/batchnorm.json"), "utf8")) as Record<string, TorchCase>;

const modules: Record<string, () => k.nn.Module> = {
  "bn1d-affine": () => k.nn.batchNorm1d(3),
  "bn1d-seq-cumulative": () => k.nn.batchNorm1d(2, { momentum: null }),
  "bn2d-no-affine": () => k.nn.batchNorm2d(3, { eps: 1e-3, momentum: 0.3, affine: false }),
  "bn2d-untracked": () => k.nn.batchNorm2d(2, { trackRunningStats: false }),
};

const data = (o: unknown): number[] => Array.from((o as HostOutput).data);

describe("BatchNorm against PyTorch 1.13", async () => {
  const targets = await k.availableTargets();
  for (const [name, c] of Object.entries(torch))
    test.each(targets)(`${name} on %s: 3 training passes, running statistics, then eval`, async (target) => {
      const bn = modules[name]!();
      bn.loadStateDict(Object.fromEntries(Object.entries(c.params).map(([n, v]) => [n, { shape: [v.length], data: v }])), { strict: false });
      const model = await k.compileModel(
        bn,
        { step: (x: Tensor) => bn.call(x), predict: (x: Tensor) => bn.call(x) },
        { x: k.f32(c.shape) },
        {
          target,
          modes: { step: "train" },
        },
      );
      expect(model.modes).toEqual({ step: "train", predict: "eval" });
      for (let i = 0; i < 3; i++) expectClose(data(await model.step({ x: c.inputs[i]! })), c.train[i]!, 1e-4, 1e-4);
      const state = await model.fetchState();
      for (const [buffer, expected] of Object.entries(c.buffers)) expectClose(Array.from(state[buffer]!.data), expected, 1e-5, 1e-4);
      expect(Object.keys(state).sort()).toEqual([...Object.keys(c.params), ...Object.keys(c.buffers)].sort());
      expectClose(data(await model.predict({ x: c.evalInput })), c.eval, 1e-4, 1e-4);
      await model.close();
    });
});

describe("BatchNorm module", () => {
  test.each(["js", "wasm"])("%s: a symbolic batch normalizes and corrects the variance by the actual batch, not its maximum", async (target) => {
    const c = torch["bn1d-affine"]!;
    const bn = k.nn.batchNorm1d(3);
    bn.loadStateDict(Object.fromEntries(Object.entries(c.params).map(([n, v]) => [n, { shape: [v.length], data: v }])), { strict: false });
    const model = await k.compileModel(
      bn,
      { step: (x: Tensor) => bn.call(x), predict: (x: Tensor) => bn.call(x) },
      { x: k.f32(["batch", 3], { max: { batch: 16 } }) },
      {
        target,
        modes: { step: "train" },
      },
    );
    for (let i = 0; i < 3; i++) expectClose(data(await model.step({ x: c.inputs[i]! })), c.train[i]!, 1e-4, 1e-4); // 4 rows of at most 16
    const state = model.state();
    for (const [buffer, expected] of Object.entries(c.buffers)) expectClose(Array.from(state[buffer]!.data), expected, 1e-5, 1e-4);
    expectClose(data(await model.predict({ x: c.evalInput })), c.eval, 1e-4, 1e-4);
  });

  test("PyTorch's state-dict names, num_batches_tracked as i32", () => {
    const net = k.nn.sequential(k.nn.linear(4, 3), k.nn.batchNorm1d(3));
    expect(Object.keys(net.stateDict())).toEqual(["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]);
    expect(net.stateDict()["1.num_batches_tracked"]!.dtype).toBe("i32");
    expect(net.namedParameters().map(([n]) => n)).toEqual(["0.weight", "0.bias", "1.weight", "1.bias"]);
  });

  test("gradients (input, weight, bias) in training mode match finite differences", () => {
    const bn = k.nn.batchNorm2d(2);
    const buffers: Record<string, HostTensor> = {
      running_mean: { dtype: "f32", shape: [2], data: new Float64Array(2) },
      running_var: { dtype: "f32", shape: [2], data: new Float64Array([1, 1]) },
      num_batches_tracked: { dtype: "i32", shape: [], data: new Int32Array(1) },
    };
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => k.functionalCall(bn, { weight: w, bias: b }, () => bn.call(x)),
      [k.f32([3, 2, 2, 2]), k.f32([2]), k.f32([2])],
      [uniform(24, 1, -1, 1), uniform(2, 2, 0.5, 1.5), uniform(2, 3, -1, 1)],
      { extra: buffers },
    );
    const bn1 = k.nn.batchNorm1d(3).eval();
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => k.functionalCall(bn1, { weight: w, bias: b }, () => bn1.call(x)),
      [k.f32([4, 3]), k.f32([3]), k.f32([3])],
      [uniform(12, 4, -1, 1), uniform(3, 5, 0.5, 1.5), uniform(3, 6, -1, 1)],
      {
        extra: {
          running_mean: { dtype: "f32", shape: [3], data: new Float64Array([0.1, -0.2, 0.3]) },
          running_var: { dtype: "f32", shape: [3], data: new Float64Array([0.5, 1, 2]) },
          num_batches_tracked: { dtype: "i32", shape: [], data: new Int32Array(1) },
        },
      },
    );
  });

  test("a train step updates the running statistics as PyTorch would (first layer: from the inputs alone)", async () => {
    k.manualSeed(0);
    const net = k.nn.sequential(k.nn.batchNorm1d(2, { momentum: 0.2 }), k.nn.linear(2, 1));
    const model = await k.compileModel(
      net,
      { train: k.trainStep(net, (out, y) => out.sub(y).square().mean(), k.optim.sgd({ lr: 0.1 })) },
      { x: k.f32([4, 2]), y: k.f32([4, 1]) },
      { target: "js" },
    );
    const batches = [
      [1, 2, 3, 5, 5, 7, 7, 11],
      [0, -1, 2, 1, 4, 3, -2, 0],
    ];
    let mean = [0, 0];
    let variance = [1, 1];
    for (const x of batches) {
      await model.train({ x, y: [1, 0, 1, 0] });
      // By hand: per feature, the batch mean and the unbiased variance, blended with momentum 0.2.
      for (let c = 0; c < 2; c++) {
        const column = [0, 1, 2, 3].map((r) => x[2 * r + c]!);
        const m = column.reduce((a, b) => a + b, 0) / 4;
        const unbiased = column.reduce((a, b) => a + (b - m) ** 2, 0) / 3;
        mean[c] = 0.8 * mean[c]! + 0.2 * m;
        variance[c] = 0.8 * variance[c]! + 0.2 * unbiased;
      }
      mean = [...mean];
      variance = [...variance];
    }
    const state = model.state();
    expectClose(Array.from(state["0.running_mean"]!.data), mean, 1e-6, 1e-5);
    expectClose(Array.from(state["0.running_var"]!.data), variance, 1e-6, 1e-5);
    expect(Array.from(state["0.num_batches_tracked"]!.data)).toEqual([2]);
    // The step's graph updates the buffers in place, like the optimizer state.
    const aliases = model.programs.train.graph.outputs.flatMap((o) => (o.aliases ? [o.aliases] : []));
    expect(aliases).toEqual(expect.arrayContaining(["0.running_mean", "0.running_var", "0.num_batches_tracked", "1.weight"]));
  });

  test("bad shapes and options are named", () => {
    const bn = k.nn.batchNorm2d(3);
    expect(() => k.traceFunction("t", (x: Tensor) => bn.call(x), [k.f32([2, 3, 4])])).toThrow(
      "shape mismatch in BatchNorm2d(3): input [2,3,4] must be [N, C, H, W] with C = 3",
    );
    expect(() => k.traceFunction("t", (x: Tensor) => k.nn.batchNorm1d(3).call(x), [k.f32([1, 3])])).toThrow(
      "expected more than 1 value per channel when training",
    );
    expect(() => k.nn.batchNorm1d(3, { momentum: 2 })).toThrow("BatchNorm1d: momentum must be in [0, 1] or null, got 2");
    expect(() => k.nn.batchNorm1d(3, { mommentum: 0.1 } as never)).toThrow(/unknown option 'mommentum'/);
  });
});
