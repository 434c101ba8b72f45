// Runs on one executable are serialized: 16 `exe.run` calls started together on a training
// step give the same losses, in call order, and the same final state as 16 sequential runs of
// a fresh executable (opt.step = 16), on every target; runs of two executables interleave
// freely; a run that fails does not wedge the ones queued behind it. On WebGPU no validation
// error may surface (Dawn's uncaptured errors are collected for the whole test).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { lcg } from "../util/lcg.ts";

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = await webGpuTestEnv();

const RUNS = 16;
const batches = Array.from({ length: RUNS }, (_, i) => {
  const r = lcg(100 + i);
  return { x: Array.from({ length: 8 * 3 }, () => r() * 2 - 1), y: Array.from({ length: 8 }, () => r() * 2 - 1) };
});

async function makeExe(target: string): Promise<k.Executable<{ loss: HostOutput }>> {
  k.manualSeed(3);
  const model = k.nn.sequential(k.nn.linear(3, 4), k.nn.tanh(), k.nn.linear(4, 1));
  const step = k.trainStep(model, (pred, y) => k.nn.functional.mseLoss(pred.reshape([8]), y), k.optim.adam({ lr: 0.05 }));
  return (await k.compile(step, { x: k.f32([8, 3]), y: k.f32([8]) }, { target })) as unknown as k.Executable<{ loss: HostOutput }>;
}

const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

// Dawn reports validation errors that no error scope catches as `uncapturederror` events.
const uncaptured: string[] = [];
beforeAll(() => {
  gpu.context?.device.addEventListener("uncapturederror", (e) => uncaptured.push((e as GPUUncapturedErrorEvent).error.message));
});
afterAll(() => expect(uncaptured).toEqual([]));

describe.each(targets)("concurrent runs on %s", (target) => {
  test(`${RUNS} runs started together equal ${RUNS} sequential runs; opt.step = ${RUNS}`, async () => {
    const sequential = await makeExe(target);
    const want: number[] = [];
    for (const b of batches) want.push((await sequential.run(b)).loss.data[0]!);

    const concurrent = await makeExe(target);
    const got = (await Promise.all(batches.map((b) => concurrent.run(b)))).map((o) => o.loss.data[0]!);
    expect(got).toEqual(want);
    const state = await concurrent.fetchState();
    expect(Array.from(state["opt.step"]!.data)).toEqual([RUNS]);
    const wantState = await sequential.fetchState();
    for (const [name, t] of Object.entries(wantState)) expect(Array.from(state[name]!.data), name).toEqual(Array.from(t.data));
  });

  test("a run refused at the call does not take a turn; fetchState waits for the runs started before it", async () => {
    const exe = await makeExe(target);
    const first = exe.run(batches[0]!);
    const bad = exe.run({ x: [1, 2, 3], y: batches[0]!.y });
    const third = exe.run(batches[1]!);
    const state = exe.fetchState();
    await expect(bad).rejects.toThrow(/'x'/);
    await first;
    await third;
    expect(Array.from((await state)["opt.step"]!.data)).toEqual([2]);
  });

  test("loadState while a run is in progress takes effect after it, in call order", async () => {
    const exe = await makeExe(target);
    const first = exe.run(batches[0]!);
    exe.loadState({ "opt.step": [100] });
    await first;
    expect(Array.from((await exe.fetchState())["opt.step"]!.data)).toEqual([100]);
    await exe.run(batches[1]!);
    expect(Array.from((await exe.fetchState())["opt.step"]!.data)).toEqual([101]);
  });

  test("two executables run concurrently and each keeps its own order", async () => {
    const a = await makeExe(target);
    const b = await makeExe(target);
    const runs = batches.slice(0, 4).flatMap((batch) => [a.run(batch), b.run(batch)]);
    const losses = (await Promise.all(runs)).map((o) => o.loss.data[0]!);
    const fromA = losses.filter((_, i) => i % 2 === 0);
    const fromB = losses.filter((_, i) => i % 2 === 1);
    expect(fromA).toEqual(fromB);
    expect(new Set(fromA).size).toBe(4);
  });
});

test("a run that fails while it runs does not wedge the queue (reference target: integer division by zero)", async () => {
  k.manualSeed(3);
  const model = k.nn.linear(3, 1);
  // d // d fails in the interpreter when d = 0: a run that fails after it took its turn.
  const step = k.trainStep(
    model,
    (pred, y, d) => k.nn.functional.mseLoss(pred.reshape([8]), y).add(k.floorDivide(d!, d!).sum().mul(0)),
    k.optim.sgd({ lr: 0.1 }),
  );
  const exe = await k.compile(step, { x: k.f32([8, 3]), y: k.f32([8]), d: k.i32([1]) }, { target: "reference" });
  const ok = { ...batches[0]!, d: [1] };
  const runs = [exe.run(ok), exe.run({ ...ok, d: [0] }), exe.run(ok), exe.run(ok)];
  const settled = await Promise.allSettled(runs);
  expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
  const losses = settled.flatMap((s) => (s.status === "fulfilled" ? [(s.value as { loss: HostOutput }).loss.data[0]!] : []));
  // Three updates happened, one after another: the loss falls on this fixed batch.
  expect(losses[1]!).toBeLessThan(losses[0]!);
  expect(losses[2]!).toBeLessThan(losses[1]!);
  expect(Array.from((await exe.fetchState())["weight"]!.data).every(Number.isFinite)).toBe(true);
});

describe.skipIf(!gpu.available)("WebGpuArtifactRunner used directly", () => {
  test("concurrent run() calls are serialized: each sees the state the previous one left", async () => {
    // acc ← acc + x; out = acc: run i returns the sum of the first i+1 inputs.
    const { GraphBuilder } = await import("../../compiler/ir/graph.ts");
    const b = new GraphBuilder("acc");
    const acc = b.input("acc", { dtype: "f32", shape: [4] });
    const x = b.input("x", { dtype: "f32", shape: [4] });
    const sum = b.add({ op: "add", x: acc, y: x });
    const g = b.build([
      { name: "out", value: sum },
      { name: "acc_new", value: sum, aliases: "acc" },
    ]);
    const compiled = compileWebGpu(g, { limits: gpu.context!.limits });
    const runner = await WebGpuArtifactRunner.create(gpu.context!.device, compiled.artifact);
    const accData = new Float32Array(4);
    // The same `acc` array each run: the runner keeps the device value (it is resident).
    const first = await runner.run(
      { acc: { dtype: "f32", shape: [4], data: accData }, x: { dtype: "f32", shape: [4], data: Float32Array.of(1, 1, 1, 1) } },
      { readback: ["out"] },
    );
    expect(Array.from(first["out"]!.data)).toEqual([1, 1, 1, 1]);
    const outs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        runner.run(
          { acc: { dtype: "f32", shape: [4], data: accData }, x: { dtype: "f32", shape: [4], data: Float32Array.of(i, i, i, i) } },
          { readback: ["out"] },
        ),
      ),
    );
    let want = 1;
    outs.forEach((o, i) => {
      want += i;
      expect(Array.from(o["out"]!.data)).toEqual([want, want, want, want]);
    });
    runner.destroy();
  });
});
