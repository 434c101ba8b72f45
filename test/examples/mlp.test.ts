// examples/: the MNIST loader against well-known facts of the data set, the MLP's forward
// pass against an explicit loop implementation, and the demo script run end to end.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { BATCH, CLASSES, HIDDEN, IN_FEATURES, forward, initParams, mlpForward } from "../../examples/mlp.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** relu(x W1^T + b1) W2^T + b2 for `rows` rows, in float64 loops. */
function mlpByLoops(x: Float32Array, p: ReturnType<typeof initParams>, rows: number): Float64Array {
  const logits = new Float64Array(rows * CLASSES);
  const hidden = new Float64Array(HIDDEN);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < HIDDEN; h++) {
      let acc = p.b1[h]!;
      for (let i = 0; i < IN_FEATURES; i++) acc += x[r * IN_FEATURES + i]! * p.w1[h * IN_FEATURES + i]!;
      hidden[h] = Math.max(acc, 0);
    }
    for (let c = 0; c < CLASSES; c++) {
      let acc = p.b2[c]!;
      for (let h = 0; h < HIDDEN; h++) acc += hidden[h]! * p.w2[c * HIDDEN + h]!;
      logits[r * CLASSES + c] = acc;
    }
  }
  return logits;
}

describe("k.data.mnist, as the examples use it", () => {
  test("the first test labels are the well-known 7 2 1 0 4 1 4 9 5 9", () => {
    const batch = k.data.mnist("test", { count: 10 });
    expect(Array.from(batch.labels)).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    expect(batch.images.length).toBe(10 * 784);
  });

  test("pixels are normalized with MNIST's mean and std", () => {
    const { images } = k.data.mnist("train", { count: 4, offset: 100 });
    const background = (0 - 0.1307) / 0.3081;
    const ink = (1 - 0.1307) / 0.3081;
    expect(Math.min(...images)).toBeCloseTo(background, 6);
    expect(Math.max(...images)).toBeCloseTo(ink, 6); // every digit has a fully dark pixel
    expect(() => k.data.mnist("test", { count: 2, offset: 9999 })).toThrow(/the split has 10000/);
  });
});

describe("examples/mlp.ts", () => {
  test("forward is a program over x [128,784] and explicit [out,in] weights", () => {
    expect(k.isProgram(forward)).toBe(true);
    expect(forward.specs).toEqual([k.f32([BATCH, 784]), k.f32([256, 784]), k.f32([256]), k.f32([10, 256]), k.f32([10])]);
  });

  test("forward on real digits matches an explicit loop MLP", async () => {
    const batch = k.data.mnist("test", { count: BATCH });
    const params = initParams(7);
    const exe = await k.compile(forward, undefined, { target: "reference" });
    const logits = (await exe.run([batch.images, params.w1, params.b1, params.w2, params.b2])) as k.HostOutput;
    expect(logits.shape).toEqual([BATCH, CLASSES]);
    const expected = mlpByLoops(batch.images, params, BATCH);
    let worst = 0;
    for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(logits.data[i]! - expected[i]!));
    expect(worst).toBeLessThan(1e-9); // both are float64 sums of the same float32 values
  });

  test("initParams follows nn.Linear's U(-1/sqrt(in), 1/sqrt(in)) and is reproducible", () => {
    const a = initParams(1);
    const maxAbs = (xs: Float32Array) => xs.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const bound1 = 1 / Math.sqrt(784);
    const slack = 1 + 1e-6; // values are rounded to float32
    expect(maxAbs(a.w1)).toBeLessThanOrEqual(bound1 * slack);
    expect(maxAbs(a.w1)).toBeGreaterThan(0.99 * bound1); // 200k draws reach the edge
    expect(maxAbs(a.b1)).toBeLessThanOrEqual(bound1 * slack);
    expect(maxAbs(a.w2)).toBeLessThanOrEqual((1 / 16) * slack);
    expect(initParams(1).w2).toEqual(a.w2);
    expect(initParams(2).w2).not.toEqual(a.w2);
  });

  test("mlpForward traces for any batch size", async () => {
    const exe = await k.compile(mlpForward, [k.f32([2, 784]), k.f32([256, 784]), k.f32([256]), k.f32([10, 256]), k.f32([10])], { target: "reference" });
    const batch = k.data.mnist("test", { count: 2 });
    const params = initParams(3);
    const out = (await exe.run([batch.images, params.w1, params.b1, params.w2, params.b2])) as k.HostOutput;
    const expected = mlpByLoops(batch.images, params, 2);
    expect(out.shape).toEqual([2, 10]);
    Array.from(expected).forEach((v, i) => expect(out.data[i]).toBeCloseTo(v, 9));
  });
});

describe("examples/demo.ts", () => {
  test("trains a few steps on the named target and writes the loss curve, IR dumps and artifact", () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), "kiln-demo-"));
    const env = { ...process.env, KILN_TARGET: "js", KILN_DEMO_STEPS: "3" };
    const r = spawnSync(path.join(root, "node_modules/.bin/tsx"), [path.join(root, "examples/demo.ts")], { cwd, encoding: "utf8", env });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^target: +js$/m);
    expect(r.stdout).toMatch(/^train: +3 steps in /m);
    expect(r.stdout).toMatch(/^accuracy: +\d+(\.\d)?% on \d+ test images$/m);
    expect(readFileSync(path.join(cwd, "out/demo/loss-curve.svg"), "utf8")).toMatch(/^<svg/);
    expect(readFileSync(path.join(cwd, "out/demo/ir/00-input.kir"), "utf8")).toMatch(/^graph @trainStep\(%x: f32\[128,784\]/);
    expect(readdirSync(path.join(cwd, "out/demo/artifact"))).toContain("manifest.json");
  });
});
