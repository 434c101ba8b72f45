// LeNet-5 on MNIST: conv(1→6, 5×5) → relu → max-pool → conv(6→16, 5×5) → relu → max-pool →
// 120 → 84 → 10, trained with AdamW on shuffled batches of 64 for two epochs, the learning
// rate on a cosine from 2e-3 to 0 after 50 warmup steps; test accuracy after each epoch. The
// step's batch is symbolic (up to 64 rows), so the last, partial batch of an epoch (60,000 =
// 937 × 64 + 32) trains too: 938 steps an epoch, one compiled program.
// `npx kiln train examples/cnn.ts` runs it: 98.92 % on the 10,000 test images in 2 min 47 s
// on cpu (docs/training.md has the numbers measured).

import * as k from "kiln";

export const BATCH = 64;
export const EVAL_BATCH = 1000;
export const EPOCHS = 2;
export const LR = 2e-3;

/** LeNet-5 with ReLU and max-pooling (the modern reading of LeCun et al. 1998), seeded so runs replay. */
export function lenet5(): k.nn.Sequential {
  k.manualSeed(0);
  return k.nn.sequential(
    k.nn.conv2d(1, 6, 5, { padding: 2 }),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.conv2d(6, 16, 5),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.flatten(),
    k.nn.linear(16 * 5 * 5, 120),
    k.nn.relu(),
    k.nn.linear(120, 84),
    k.nn.relu(),
    k.nn.linear(84, 10),
  );
}

const net = lenet5();
const lossFn = (logits: k.Tensor, y: k.Tensor): k.Tensor => k.nn.functional.crossEntropy(logits, y);

export const trainStep = k.program(
  k.trainStep(net, lossFn, k.optim.adamW({ lr: 1e-3 })),
  { x: k.f32(["batch", 1, 28, 28], { max: { batch: BATCH } }), y: k.i32(["batch"]) },
  { name: "trainStep" },
);
export const predict = k.program((x: k.Tensor) => net.call(x), [k.f32([EVAL_BATCH, 1, 28, 28])], { name: "predict" });

// The data loads on first use, so `kiln dump examples/cnn.ts` does not read 47 MB of images.
let trainBatches: k.data.Batches<{ x: Float32Array; y: Int32Array }> | undefined;
const batches = (): k.data.Batches<{ x: Float32Array; y: Int32Array }> => {
  if (!trainBatches) {
    const train = k.data.mnist("train");
    trainBatches = k.data.batches({ x: train.images, y: train.labels }, { batchSize: BATCH, shuffle: true, seed: 1234 });
  }
  return trainBatches;
};
/** Batches an epoch, the partial last one included (k.data.batches' length without dropLast). */
export const STEPS_PER_EPOCH = Math.ceil(60000 / BATCH);
const stepsPerEpoch = STEPS_PER_EPOCH;
const schedule = k.optim.schedule.cosine({ lr: LR, total: EPOCHS * stepsPerEpoch, warmup: 50, warmupStart: 0.1 });

/** Fraction of the first `count` test images that `predictExe` (holding trained weights) classifies correctly. */
export async function testAccuracy(predictExe: k.Executable, count = 10000): Promise<number> {
  let correct = 0;
  for (let offset = 0; offset < count; offset += EVAL_BATCH) {
    const test = k.data.mnist("test", { count: EVAL_BATCH, offset });
    const logits = (await predictExe.run([test.images])) as k.HostOutput;
    for (let r = 0; r < EVAL_BATCH; r++) {
      let best = 0;
      for (let c = 1; c < 10; c++) if (logits.data[r * 10 + c]! > logits.data[r * 10 + best]!) best = c;
      if (best === test.labels[r]) correct++;
    }
  }
  return correct / count;
}

export const training = k.training({
  name: "cnn",
  module: net,
  train: trainStep,
  batch: (step) => batches().at(step),
  hyper: (step) => ({ lr: schedule(step) }),
  steps: EPOCHS * stepsPerEpoch,
  stepsPerEpoch,
  programs: { predict },
  evaluate: async ({ programs }) => ({ accuracy: await testAccuracy(programs["predict"]!) }),
});
