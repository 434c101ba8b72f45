// A 784-256-10 multilayer perceptron for MNIST, with its weights as explicit inputs so the
// whole model is one graph of primitives. `npx kiln dump examples/mlp.ts` prints it;
// examples/demo.ts runs it on real digits. `trainStep` is the same network as k.nn modules
// trained with AdamW: `npx kiln dump examples/mlp.ts --entry trainStep` shows one graph with
// the forward pass, the backward pass and the parameter update.

import * as k from "kiln";

export const BATCH = 128;
export const IN_FEATURES = 784;
export const HIDDEN = 256;
export const CLASSES = 10;

/** logits = linear(relu(linear(x, w1, b1)), w2, b2); weights are [out, in] as in PyTorch. */
export function mlpForward(x: k.Tensor, w1: k.Tensor, b1: k.Tensor, w2: k.Tensor, b2: k.Tensor): k.Tensor {
  const hidden = k.nn.functional.linear(x, w1, b1).relu();
  return k.nn.functional.linear(hidden, w2, b2);
}

export const forward = k.program(mlpForward, [
  k.f32([BATCH, IN_FEATURES]),
  k.f32([HIDDEN, IN_FEATURES]),
  k.f32([HIDDEN]),
  k.f32([CLASSES, HIDDEN]),
  k.f32([CLASSES]),
]);

/** The MLP as modules; parameters are named 0.weight, 0.bias, 2.weight, 2.bias (PyTorch's names). */
export function mlpModule(): k.nn.Sequential {
  return k.nn.sequential(k.nn.linear(IN_FEATURES, HIDDEN), k.nn.relu(), k.nn.linear(HIDDEN, CLASSES));
}

export const net = mlpModule();

/** One AdamW step on a batch: parameters and optimizer state live in the executable. */
export const trainStep = k.program(
  k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.adamW({ lr: 1e-3 })),
  { x: k.f32([BATCH, IN_FEATURES]), y: k.i32([BATCH]) },
);

export interface MlpParams {
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2: Float32Array;
  readonly b2: Float32Array;
}

/** PyTorch's nn.Linear default init, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, from a seeded PRNG. */
export function initParams(seed = 0): MlpParams {
  const random = mulberry32(seed);
  const uniform = (count: number, fanIn: number): Float32Array => {
    const bound = 1 / Math.sqrt(fanIn);
    return Float32Array.from({ length: count }, () => (2 * random() - 1) * bound);
  };
  return {
    w1: uniform(HIDDEN * IN_FEATURES, IN_FEATURES),
    b1: uniform(HIDDEN, IN_FEATURES),
    w2: uniform(CLASSES * HIDDEN, HIDDEN),
    b2: uniform(CLASSES, HIDDEN),
  };
}

/** A small, fast 32-bit PRNG (mulberry32): enough for reproducible example weights and batch order. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
