// examples/mnist.ts: a short MNIST training run on the js target (the loss falls, test accuracy is far
// above chance), `kiln train examples/mnist.ts` briefly on wasm (its predict program sees the
// trained weights), the same steps on WebGPU (lavapipe counts) against js, and
// `kiln compile examples/mnist.ts --entry trainStep --target webgpu` then `kiln run`.

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { BATCH, trainMnist, training } from "../../examples/mnist.ts";
import { encodeSafetensors } from "../../runtime/artifact/safetensors.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const webgpu = (await k.availableTargets()).includes("webgpu");
const requireWebGpu = process.env["KILN_REQUIRE_WEBGPU"] === "1";
if (!webgpu && !requireWebGpu) console.warn("test/examples/mnist: no WebGPU adapter here, the webgpu cases skip");

describe("examples/mnist.ts", () => {
  test("60 steps on js: the loss falls and test accuracy is far above chance", async () => {
    const result = await trainMnist({ target: "js", epochs: 1, trainImages: 60 * BATCH, testImages: 1000 });
    expect(result.target).toBe("js");
    expect(result.losses.length).toBe(60);
    const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(result.losses[0]).toBeGreaterThan(2); // about ln 10 = 2.30 before any training
    expect(mean(result.losses.slice(-10))).toBeLessThan(0.5 * mean(result.losses.slice(0, 10)));
    expect(result.testAccuracy).toBeGreaterThan(0.8);
  });

  test("kiln train examples/mnist.ts: 4 epochs of 469 steps (the last of 96 rows); 40 steps on wasm, then predict on the shared weights scores above 80 %", async () => {
    expect(k.isTraining(training)).toBe(true);
    expect(training.stepsPerEpoch).toBe(469);
    expect(training.steps).toBe(4 * 469);
    expect((training.batch(468) as { y: Int32Array }).y.length).toBe(96);
    const io = bufferIO("", root);
    const out = mkdtempSync(path.join(os.tmpdir(), "kiln-mnist-train-"));
    expect(await main(["train", "examples/mnist.ts", "--steps", "40", "--target", "wasm", "--out", out], io), io.stderr).toBe(0);
    const accuracy = Number(/accuracy (\d+\.\d+)%/.exec(io.stdout)?.[1]);
    expect(accuracy).toBeGreaterThan(80);
    expect(readdirSync(out)).toEqual(expect.arrayContaining(["ckpt-40.safetensors", "loss-curve.svg"]));
  });

  test.runIf(webgpu || requireWebGpu)("the same 8 steps on webgpu give js's losses", async () => {
    expect(webgpu, "KILN_REQUIRE_WEBGPU=1 but no WebGPU adapter").toBe(true);
    const options = { epochs: 1, trainImages: 8 * BATCH, testImages: 1000 };
    const [onGpu, onJs] = [await trainMnist({ ...options, target: "webgpu" }), await trainMnist({ ...options, target: "js" })];
    expect(onGpu.target).toBe("webgpu");
    onGpu.losses.forEach((loss, i) => expect(Math.abs(loss - onJs.losses[i]!), `step ${i}`).toBeLessThan(1e-4));
    expect(Math.abs(onGpu.testAccuracy - onJs.testAccuracy)).toBeLessThanOrEqual(0.002);
  });

  test.runIf(webgpu || requireWebGpu)("kiln compile --target webgpu writes .wgsl kernels; kiln run trains a step on them", async () => {
    expect(webgpu, "KILN_REQUIRE_WEBGPU=1 but no WebGPU adapter").toBe(true);
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-mnist-"));
    const out = path.join(dir, "mnist");
    const io = bufferIO("", root);
    expect(await main(["compile", "examples/mnist.ts", "--entry", "trainStep", "--target", "webgpu", "--out", out], io), io.stderr).toBe(0);
    const kernels = readdirSync(path.join(out, "kernels"));
    expect(kernels.length).toBeGreaterThan(0);
    expect(kernels.every((f) => f.endsWith(".wgsl"))).toBe(true);
    expect(readFileSync(path.join(out, "kernels", kernels[0]!), "utf8")).toMatch(/@compute @workgroup_size/);

    const batch = k.data.mnist("train", { count: BATCH });
    const inputFile = path.join(dir, "batch.safetensors");
    writeFileSync(
      inputFile,
      encodeSafetensors({ x: { dtype: "f32", shape: [BATCH, 784], data: batch.images }, y: { dtype: "i32", shape: [BATCH], data: batch.labels } }),
    );
    const runIO = bufferIO("", root);
    expect(await main(["run", out, "--input", inputFile, "--steps", "2"], runIO), runIO.stderr).toBe(0);
    const printed = Number(/^loss: f32\[\] \[(\S+)\]$/m.exec(runIO.stdout)![1]);
    const reference = await k.compile((await import("../../examples/mnist.ts")).trainStep, undefined, { target: "js" });
    let expected = 0;
    for (let i = 0; i < 2; i++) expected = ((await reference.run({ x: batch.images, y: batch.labels })) as { loss: k.HostOutput }).loss.data[0]!;
    expect(Math.abs(printed - expected)).toBeLessThan(1e-4 * (1 + expected));
  });
});
