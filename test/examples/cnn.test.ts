// examples/cnn.ts: the setup `kiln train` runs (two epochs of LeNet-5, the partial last batch
// of an epoch on the same symbolic-batch program), a short run on wasm whose loss falls and
// whose test accuracy is far above chance, and whose partial batch's loss equals a fixed
// 32-row program's on the same weights; under KILN_FULL=1 the whole
// run through `kiln train`, which must reach 98.5 % test accuracy (issue 12 item 6).

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { EPOCHS, lenet5, predict, testAccuracy, trainStep, training } from "../../examples/cnn.ts";
import { FULL } from "../util/full.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("examples/cnn.ts", () => {
  test("the k.training export: two epochs of 938 steps, 937 of 64 images and the last of 32", () => {
    expect(k.isTraining(training)).toBe(true);
    expect(training.name).toBe("cnn");
    expect(training.stepsPerEpoch).toBe(938);
    expect(training.steps).toBe(EPOCHS * 938);
    const first = training.batch(0) as { x: Float32Array; y: Int32Array };
    expect(first.x.length).toBe(64 * 784);
    expect(first.y.length).toBe(64);
    // The partial last batch of the epoch: the rows the 937 full ones left (60,000 − 937 × 64).
    const last = training.batch(937) as { x: Float32Array; y: Int32Array };
    expect(last.y.length).toBe(32);
    expect(last.x.length).toBe(32 * 784);
    // Step 938 starts the second epoch: another permutation of the same rows.
    expect((training.batch(938) as { y: Int32Array }).y).not.toEqual(first.y);
  });

  test("30 steps on wasm: the loss falls and 1,000 test images score far above chance", async () => {
    const exe = await k.compile(trainStep, undefined, { target: "wasm" });
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) losses.push(((await exe.run(training.batch(step), { seed: step })) as { loss: k.HostOutput }).loss.data[0]!);
    expect(losses[0]).toBeGreaterThan(2); // about ln 10 = 2.30 before any training
    const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.85 * mean(losses.slice(0, 5)));
    const predictExe = await k.compile(predict, undefined, { target: "wasm" });
    const state = await exe.fetchState();
    predictExe.loadState(Object.fromEntries(Object.keys(predictExe.state()).map((n) => [n, state[n]!])));
    expect(await testAccuracy(predictExe, 1000)).toBeGreaterThan(0.3);
    // The partial last batch of the epoch runs on the same program: its mean loss over its 32 rows
    // equals the loss of the same step on a fixed-size program of 32 rows (the same weights).
    const partial = training.batch(937) as { x: Float32Array; y: Int32Array };
    const net = lenet5();
    const fixed = await k.compile((x: k.Tensor, y: k.Tensor) => k.nn.functional.crossEntropy(net.call(x), y), [k.f32([32, 1, 28, 28]), k.i32([32])], {
      target: "wasm",
    });
    fixed.loadState(Object.fromEntries(Object.keys(fixed.state()).map((n) => [n, state[n]!])));
    const want = ((await fixed.run([partial.x, partial.y])) as k.HostOutput).data[0]!;
    const got = ((await exe.run(partial, { seed: 30 })) as { loss: k.HostOutput }).loss.data[0]!;
    expect(Math.abs(got - want)).toBeLessThan(1e-4);
  });

  test.runIf(FULL)(
    "kiln train examples/cnn.ts reaches 98.5 % test accuracy",
    async () => {
      const io = bufferIO("", root);
      const out = mkdtempSync(path.join(os.tmpdir(), "kiln-cnn-"));
      expect(await main(["train", "examples/cnn.ts", "--out", out], io), io.stderr).toBe(0);
      const accuracies = [...io.stdout.matchAll(/accuracy (\d+\.\d+)%/g)].map((m) => Number(m[1]));
      expect(accuracies).toHaveLength(EPOCHS);
      expect(accuracies.at(-1)).toBeGreaterThanOrEqual(98.5);
    },
    3_600_000,
  );
});
