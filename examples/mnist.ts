// Trains the 784-256-10 MLP on MNIST (AdamW, lr 1e-3, shuffled mini-batches of 128) for 4
// epochs (469 steps each under `kiln train`: the last batch of 96 on the same symbolic-batch step). `npx kiln train examples/mnist.ts` runs the exported `training` setup (progress,
// test accuracy per epoch, checkpoints, the loss curve; `predict` shares the step's weights);
// `trainMnist` is the same loop written out by hand (what `npm run demo` runs), reporting the
// time per epoch and keeping the executable; `npx tsx examples/mnist.ts --target webgpu` runs it
// and saves the trained step as a standalone artifact;
// `npx kiln compile examples/mnist.ts --entry trainStep --target webgpu --out out/mnist`.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as k from "kiln";
import { CLASSES, HIDDEN, IN_FEATURES, mlpForward } from "./mlp.ts";

export const BATCH = 128;
export const EPOCHS = 4;
const EVAL_BATCH = 1000;

/** The MLP as modules, seeded, so runs replay; parameters 0.weight, 0.bias, 2.weight, 2.bias. */
export function mnistNet(): k.nn.Sequential {
  k.manualSeed(0);
  return k.nn.sequential(k.nn.linear(IN_FEATURES, HIDDEN), k.nn.relu(), k.nn.linear(HIDDEN, CLASSES));
}

/**
 * One AdamW step of the MLP `net` (default: a fresh, seeded one) on a batch of `batch` images,
 * or, with "batch", of any number up to BATCH (a symbolic batch: the partial last one trains too).
 */
export function mnistTrainStep(batch: number | "batch", net: k.nn.Module = mnistNet()): k.Program {
  const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.adamW({ lr: 1e-3 }));
  const specs =
    batch === "batch"
      ? { x: k.f32(["batch", IN_FEATURES], { max: { batch: BATCH } }), y: k.i32(["batch"]) }
      : { x: k.f32([batch, IN_FEATURES]), y: k.i32([batch]) };
  return k.program(step, specs, { name: "trainStep" });
}

const net = mnistNet();
export const trainStep = mnistTrainStep(BATCH, net);

/** Logits for a batch of test images, with the weights as inputs (taken from the training state). */
export const predict = k.program(
  mlpForward,
  [k.f32([EVAL_BATCH, IN_FEATURES]), k.f32([HIDDEN, IN_FEATURES]), k.f32([HIDDEN]), k.f32([CLASSES, HIDDEN]), k.f32([CLASSES])],
  { name: "predict" },
);

// The data loads on first use, so `kiln dump examples/mnist.ts` does not read 47 MB of images.
let trainBatches: k.data.Batches<{ x: Float32Array; y: Int32Array }> | undefined;
const batches = (): k.data.Batches<{ x: Float32Array; y: Int32Array }> => {
  if (!trainBatches) {
    const train = k.data.mnist("train");
    trainBatches = k.data.batches({ x: train.images, y: train.labels }, { batchSize: BATCH, shuffle: true, seed: 1234 });
  }
  return trainBatches;
};
/** 468 batches of 128 and the last of 96: the step's batch is symbolic. */
const stepsPerEpoch = Math.ceil(60000 / BATCH);

/**
 * `kiln train examples/mnist.ts`: the step on `net` with a symbolic batch (every row of an epoch
 * trains), and a predict program on the same weights (one k.compileModel).
 */
export const training = k.training({
  name: "mnist",
  module: net,
  train: mnistTrainStep("batch", net),
  batch: (step) => batches().at(step),
  steps: EPOCHS * stepsPerEpoch,
  stepsPerEpoch,
  programs: { predict: k.program((x: k.Tensor) => net.call(x), [k.f32([EVAL_BATCH, IN_FEATURES])], { name: "predict" }) },
  evaluate: async ({ programs }) => ({ accuracy: await accuracy((x) => programs["predict"]!.run([x]), 10000) }),
});

export interface TrainOptions {
  readonly target: string;
  readonly epochs: number;
  readonly batch?: number;
  /** Train on the first `trainImages` images (of 60,000) each epoch; default all. */
  readonly trainImages?: number;
  /** Evaluate on the first `testImages` (of 10,000, a multiple of 1000); default all. */
  readonly testImages?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface TrainResult {
  readonly target: string;
  /** Loss of every step, in order. */
  readonly losses: readonly number[];
  readonly msPerEpoch: readonly number[];
  /** After the last epoch. */
  readonly testAccuracy: number;
  /** After each epoch. */
  readonly testAccuracies: readonly number[];
  readonly compileMs: number;
  readonly exe: k.Executable;
}

export async function trainMnist(opts: TrainOptions): Promise<TrainResult> {
  const batch = opts.batch ?? BATCH;
  const log = opts.log ?? (() => {});
  const trainCount = opts.trainImages ?? 60000;
  const train = k.data.mnist("train", { count: trainCount });
  const compileStart = performance.now();
  const exe = await k.compile(batch === BATCH ? trainStep : mnistTrainStep(batch), undefined, { target: opts.target });
  const compileMs = performance.now() - compileStart;
  log(`compiled trainStep for ${exe.target} in ${compileMs.toFixed(0)} ms (${exe.stats?.kernels ?? "?"} kernels per step)`);
  // The step is compiled for `batch` rows: the last partial batch of an epoch is dropped.
  const batches = k.data.batches({ x: train.images, y: train.labels }, { batchSize: batch, shuffle: true, seed: 1234, dropLast: true });
  const stepsPerEpoch = batches.length;
  const losses: number[] = [];
  const msPerEpoch: number[] = [];
  const testAccuracies: number[] = [];
  const testCount = opts.testImages ?? 10000;
  const predictExe = await k.compile(predict, undefined, { target: exe.target });
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const started = performance.now();
    let step = 0;
    for (const { x, y } of batches) {
      step++;
      const { loss } = (await exe.run({ x, y })) as { loss: k.HostOutput };
      losses.push(loss.data[0]!);
      if (step % 100 === 0) log(`epoch ${epoch + 1} step ${step}/${stepsPerEpoch}: loss ${mean(losses.slice(-100)).toFixed(4)}`);
    }
    msPerEpoch.push(performance.now() - started);
    testAccuracies.push(await evaluate(exe, predictExe, testCount));
    log(
      `epoch ${epoch + 1}: mean loss ${mean(losses.slice(-stepsPerEpoch)).toFixed(4)}, ${(msPerEpoch.at(-1)! / 1000).toFixed(1)} s (${(msPerEpoch.at(-1)! / stepsPerEpoch).toFixed(1)} ms/step), test accuracy ${(100 * testAccuracies.at(-1)!).toFixed(2)}%`,
    );
  }
  return { target: exe.target, losses, msPerEpoch, testAccuracy: testAccuracies.at(-1) ?? 0, testAccuracies, compileMs, exe };
}

/** Fraction of the first `count` test images the trained weights classify correctly; `predictExe` runs `predict`. */
export async function evaluate(trained: k.Executable, predictExe: k.Executable, count: number): Promise<number> {
  const state = await trained.fetchState();
  const weight = (name: string): k.HostInput => state[name]!.data;
  return accuracy((images) => predictExe.run([images, weight("0.weight"), weight("0.bias"), weight("2.weight"), weight("2.bias")]), count);
}

/** Fraction of the first `count` test images (a multiple of 1000) that `logitsOf` classifies correctly. */
async function accuracy(logitsOf: (images: Float32Array) => Promise<unknown>, count: number): Promise<number> {
  let correct = 0;
  for (let offset = 0; offset < count; offset += EVAL_BATCH) {
    const test = k.data.mnist("test", { count: EVAL_BATCH, offset });
    const logits = (await logitsOf(test.images)) as k.HostOutput;
    for (let r = 0; r < EVAL_BATCH; r++) if (argmax(logits.data, r * CLASSES, CLASSES) === test.labels[r]) correct++;
  }
  return correct / count;
}

function argmax(data: ArrayLike<number>, start: number, width: number): number {
  let best = 0;
  for (let c = 1; c < width; c++) if (data[start + c]! > data[start + best]!) best = c;
  return best;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: "string", default: "auto" },
      epochs: { type: "string", default: String(EPOCHS) },
      batch: { type: "string", default: String(BATCH) },
      out: { type: "string", default: "out/mnist" },
    },
  });
  const epochs = Number(values.epochs);
  const result = await trainMnist({ target: values.target!, epochs, batch: Number(values.batch), log: (line) => console.log(line) });
  const outDir = values.out!;
  mkdirSync(outDir, { recursive: true });
  const svgPath = path.join(outDir, "loss-curve.svg");
  writeFileSync(
    svgPath,
    k.lossCurveSvg(result.losses, { title: `MNIST MLP on ${result.target}: training loss per step`, stepsPerEpoch: result.losses.length / epochs }),
  );
  await result.exe.save(path.join(outDir, "artifact"));
  const perEpoch = result.msPerEpoch.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ");
  console.log(`target ${result.target}: test accuracy ${(100 * result.testAccuracy).toFixed(2)}% after ${epochs} epoch(s); time per epoch ${perEpoch}`);
  console.log(`wrote ${svgPath} and the trained artifact ${path.join(outDir, "artifact")}`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
