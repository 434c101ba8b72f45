// One pre-LN transformer block training step: x [8, 128, 256] → x + attn(ln1(x)) (4 heads,
// causal, one qkv projection) → + mlp(ln2(·)) (256→1024 GELU →256); loss = mean squared error
// against a target of the same shape; AdamW (lr 1e-3, weight decay 0.01). Weights use PyTorch's
// default init bounds from a seeded PRNG, shared by every runner; the loss is read back.

import * as k from "kiln";
import { f32Of, seededUniform, type BenchCase, type CaseData } from "./case.ts";
import { lossOutput } from "./cnn.ts";
import { Block } from "./gpt.ts";

export const TF_BATCH = 8;
export const TF_SEQ = 128;
export const TF_DIM = 256;
export const TF_HEADS = 4;
export const TF_LR = 1e-3;
const D = TF_DIM;

/** PyTorch-style parameter names of the block (see gpt.ts's Block) → shape. */
export const TF_PARAMS: Readonly<Record<string, readonly number[]>> = {
  "ln1.weight": [D],
  "ln1.bias": [D],
  "attn.qkv.weight": [3 * D, D],
  "attn.qkv.bias": [3 * D],
  "attn.proj.weight": [D, D],
  "attn.proj.bias": [D],
  "ln2.weight": [D],
  "ln2.bias": [D],
  "mlp.0.weight": [4 * D, D],
  "mlp.0.bias": [4 * D],
  "mlp.2.weight": [D, 4 * D],
  "mlp.2.bias": [D],
};

function makeTransformerData(): CaseData {
  const data: Record<string, Float32Array | Int32Array> = {};
  let seed = 400;
  for (const [name, shape] of Object.entries(TF_PARAMS)) {
    const count = shape.reduce((a, b) => a * b, 1);
    if (name.startsWith("ln")) data[name] = new Float32Array(count).fill(name.endsWith("weight") ? 1 : 0);
    else {
      const bound = 1 / Math.sqrt(name.startsWith("mlp.2") ? 4 * D : D);
      data[name] = seededUniform(seed++, count, -bound, bound);
    }
  }
  data["x"] = seededUniform(10, TF_BATCH * TF_SEQ * D, -1, 1);
  data["y"] = seededUniform(11, TF_BATCH * TF_SEQ * D, -1, 1);
  return data;
}

function transformerFlops(): number {
  const tokens = TF_BATCH * TF_SEQ;
  const linear = 2 * tokens * (D * 3 * D + D * D + 2 * D * 4 * D);
  const attention = 2 * 2 * TF_BATCH * TF_SEQ * TF_SEQ * D;
  return 3 * (linear + attention); // forward, and twice that backward
}

export const transformerCase: BenchCase = {
  id: "transformer",
  title: `pre-LN transformer block train step, batch ${TF_BATCH}×${TF_SEQ}, d ${D}, ${TF_HEADS} heads, MSE, AdamW lr ${TF_LR}`,
  throughput: { unit: "GFLOP/s", flopsPerStep: transformerFlops() },
  makeData: makeTransformerData,
  kiln: () => {
    const block = new Block({ vocab: 1, context: TF_SEQ, dModel: D, heads: TF_HEADS, layers: 1, batch: TF_BATCH });
    return {
      fn: k.trainStep(block, (out, y) => k.nn.mseLoss(out, y!), k.optim.adamW({ lr: TF_LR })),
      specs: { x: k.f32([TF_BATCH, TF_SEQ, D]), y: k.f32([TF_BATCH, TF_SEQ, D]) },
      setup: (exe, data) => exe.loadState(Object.fromEntries(Object.keys(TF_PARAMS).map((name) => [name, f32Of(data, name)]))),
      inputs: (data) => ({ x: f32Of(data, "x"), y: f32Of(data, "y") }),
      output: lossOutput,
    };
  },
};
