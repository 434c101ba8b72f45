// One MLP training step, 784-512-512-10 (ReLU), batch 128, mean cross-entropy on class
// indices, plain SGD (lr 0.01, no momentum). Weights are [out, in] (PyTorch's layout) with
// PyTorch's default init drawn from a seeded PRNG, shared by every runner, so the first
// step's loss must agree across runners. The loss is read back every step.

import * as k from "kiln";
import { seededUniform, f32Of, type BenchCase, type CaseData } from "./case.ts";

export const MLP_BATCH = 128;
/** Layer widths, input first. */
export const MLP_SIZES = [784, 512, 512, 10] as const;
export const MLP_LR = 0.01;
const CLASSES = MLP_SIZES[MLP_SIZES.length - 1]!;

/** Names of the weight and bias of layer i in the case data (w0, b0, w1, …). */
export const weightName = (layer: number): string => `w${layer}`;
export const biasName = (layer: number): string => `b${layer}`;
export const MLP_LAYERS = MLP_SIZES.length - 1;

/** FLOPs of the step's matmuls: forward, weight gradients, and input gradients of layers 2…n. */
function mlpFlops(): number {
  let macs = 0;
  for (let i = 0; i < MLP_LAYERS; i++) {
    const layerMacs = MLP_BATCH * MLP_SIZES[i]! * MLP_SIZES[i + 1]!;
    macs += layerMacs * (i === 0 ? 2 : 3);
  }
  return 2 * macs;
}

function makeMlpData(): CaseData {
  const data: Record<string, Float32Array | Int32Array> = {};
  for (let i = 0; i < MLP_LAYERS; i++) {
    const fanIn = MLP_SIZES[i]!;
    const fanOut = MLP_SIZES[i + 1]!;
    const bound = 1 / Math.sqrt(fanIn); // nn.Linear's default: U(-1/√in, 1/√in) for weight and bias
    data[weightName(i)] = seededUniform(100 + i, fanOut * fanIn, -bound, bound);
    data[biasName(i)] = seededUniform(200 + i, fanOut, -bound, bound);
  }
  data["x"] = seededUniform(6, MLP_BATCH * MLP_SIZES[0], 0, 1);
  const labels = seededUniform(7, MLP_BATCH, 0, CLASSES);
  data["y"] = Int32Array.from(labels, (v) => Math.min(CLASSES - 1, Math.floor(v)));
  return data;
}

export const mlpCase: BenchCase = {
  id: "mlp",
  title: `MLP train step ${MLP_SIZES.join("-")}, batch ${MLP_BATCH}, cross-entropy, SGD lr ${MLP_LR}`,
  throughput: { unit: "GFLOP/s", flopsPerStep: mlpFlops() },
  makeData: makeMlpData,
  kiln: () => {
    const layers: k.nn.Module[] = [];
    for (let i = 0; i < MLP_LAYERS; i++) {
      if (i > 0) layers.push(k.nn.relu());
      layers.push(k.nn.linear(MLP_SIZES[i]!, MLP_SIZES[i + 1]!));
    }
    const net = k.nn.sequential(...layers);
    // sequential names layers by position: linear layers sit at 0, 2, 4 (ReLUs between).
    const stateName = (layer: number, param: "weight" | "bias"): string => `${2 * layer}.${param}`;
    return {
      fn: k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: MLP_LR })),
      specs: { x: k.f32([MLP_BATCH, MLP_SIZES[0]]), y: k.i32([MLP_BATCH]) },
      setup: (exe, data) => {
        const weights: Record<string, Float32Array> = {};
        for (let i = 0; i < MLP_LAYERS; i++) {
          weights[stateName(i, "weight")] = f32Of(data, weightName(i));
          weights[stateName(i, "bias")] = f32Of(data, biasName(i));
        }
        exe.loadState(weights);
      },
      inputs: (data) => ({ x: f32Of(data, "x"), y: data["y"]! }),
      output: (result) => {
        const loss = (result as { loss?: { data?: unknown } }).loss?.data;
        if (!(loss instanceof Float32Array)) throw new Error("the train step returned no f32 loss");
        return loss;
      },
    };
  },
};
