// One MNIST-shaped CNN training step, batch 64: conv 1→32 3×3 pad 1, ReLU, 2×2 max-pool, conv
// 32→64 3×3 pad 1, ReLU, 2×2 max-pool, flatten, linear 3136→10; mean cross-entropy on class
// indices, SGD lr 0.01. Weights use PyTorch's default init bounds from a seeded PRNG, shared
// by every runner; the loss is read back every step.

import * as k from "kiln";
import { f32Of, seededUniform, type BenchCase, type CaseData } from "./case.ts";

export const CNN_BATCH = 64;
export const CNN_LR = 0.01;
/** Parameter name → shape, PyTorch's names for nn.Sequential(conv, relu, pool, conv, relu, pool, flatten, linear). */
export const CNN_PARAMS: Readonly<Record<string, readonly number[]>> = {
  "0.weight": [32, 1, 3, 3],
  "0.bias": [32],
  "3.weight": [64, 32, 3, 3],
  "3.bias": [64],
  "7.weight": [10, 64 * 7 * 7],
  "7.bias": [10],
};
const FAN_IN: Readonly<Record<string, number>> = { "0": 9, "3": 32 * 9, "7": 64 * 7 * 7 };

function cnnFlops(): number {
  const conv = (cin: number, cout: number, hw: number): number => 2 * CNN_BATCH * cout * hw * hw * cin * 9;
  const forward = conv(1, 32, 28) + conv(32, 64, 14) + 2 * CNN_BATCH * 3136 * 10;
  // Backward: weight gradients of all three, input gradients of the second conv and the linear.
  return forward + conv(1, 32, 28) + 2 * conv(32, 64, 14) + 2 * 2 * CNN_BATCH * 3136 * 10;
}

function makeCnnData(): CaseData {
  const data: Record<string, Float32Array | Int32Array> = {};
  let seed = 300;
  for (const [name, shape] of Object.entries(CNN_PARAMS)) {
    const bound = 1 / Math.sqrt(FAN_IN[name.split(".")[0]!]!);
    data[name] = seededUniform(
      seed++,
      shape.reduce((a, b) => a * b, 1),
      -bound,
      bound,
    );
  }
  data["x"] = seededUniform(8, CNN_BATCH * 28 * 28, 0, 1);
  data["y"] = Int32Array.from(seededUniform(9, CNN_BATCH, 0, 10), (v) => Math.min(9, Math.floor(v)));
  return data;
}

/** The case's training step (parameters drawn from the current seed): this case and bench/cnn-step.ts both run it. */
export function cnnTrainStep() {
  const net = k.nn.sequential(
    k.nn.conv2d(1, 32, 3, { padding: 1 }),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.conv2d(32, 64, 3, { padding: 1 }),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.flatten(),
    k.nn.linear(64 * 7 * 7, 10),
  );
  return k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: CNN_LR }));
}

/** Its inputs: a batch of 28×28 single-channel images and their class indices. */
export const cnnSpecs = () => ({ x: k.f32([CNN_BATCH, 1, 28, 28]), y: k.i32([CNN_BATCH]) });

export const cnnCase: BenchCase = {
  id: "cnn",
  title: `MNIST CNN train step (conv 1→32, pool, conv 32→64, pool, linear), batch ${CNN_BATCH}, cross-entropy, SGD lr ${CNN_LR}`,
  throughput: { unit: "GFLOP/s", flopsPerStep: cnnFlops() },
  makeData: makeCnnData,
  kiln: () => {
    return {
      fn: cnnTrainStep(),
      specs: cnnSpecs(),
      setup: (exe, data) => exe.loadState(Object.fromEntries(Object.keys(CNN_PARAMS).map((name) => [name, f32Of(data, name)]))),
      inputs: (data) => ({ x: f32Of(data, "x"), y: data["y"]! }),
      output: lossOutput,
    };
  },
};

/** The f32 loss of a train step's result. */
export function lossOutput(result: unknown): Float32Array {
  const loss = (result as { loss?: { data?: unknown } }).loss?.data;
  if (!(loss instanceof Float32Array)) throw new Error("the train step returned no f32 loss");
  return loss;
}
