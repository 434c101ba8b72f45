// k.compileModel on cuda: the programs bind one device buffer per state entry, so the state
// stays on the device: a train step uploads only its batch and scalars, predict after train
// only x, and nothing crosses the host or is copied on the device when the program changes.
// Predict sees the trained weights (it follows the float64 interpreter, the reference target,
// through the same steps). And `kiln train --resume` is bit-exact on cuda: 10 + 10 steps of
// test/cli/fixtures/tiny-train.ts give the 20-step run's checkpoint byte for byte (as
// test/cli/train.test.ts checks on the other targets). Skips where CUDA cannot run;
// test/targets/cuda-runtime.test.ts runs it over a fake libcuda.so.1 with the emulating nvcc
// (kernels compiled at run time as C++ against the CPU emulation).

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { cudaAvailable } from "../../runtime/cuda/index.ts";
import { expectClose } from "../util/ref.ts";
import { lcg } from "../util/lcg.ts";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { LOSSES_KEY, STEP_KEY } from "../../cli/train-loop.ts";

const batch = 8;
const features = 6;
const hidden = 16;
const classes = 4;
const r = lcg(9);
const xs = Float32Array.from({ length: batch * features }, () => 2 * r() - 1);
const ys = Int32Array.from({ length: batch }, (_, i) => i % classes);
const specs = { x: k.f32([batch, features]), y: k.i32([batch]) };
const out = (o: unknown): number[] => Array.from((o as HostOutput).data);
const loss = (logits: k.Tensor, y: k.Tensor): k.Tensor => k.nn.functional.crossEntropy(logits, y);

async function build(target: string) {
  k.manualSeed(4);
  const m = k.nn.sequential(k.nn.linear(features, hidden), k.nn.relu(), k.nn.linear(hidden, classes));
  return k.compileModel(m, { train: k.trainStep(m, loss, k.optim.adam({ lr: 0.02 })), predict: (x: k.Tensor) => m.call(x) }, specs, { target });
}

describe.runIf(cudaAvailable())("cuda k.compileModel: one device buffer per state entry", () => {
  test("program switches copy no state; predict sees the trained weights", async () => {
    const model = await build("cuda");
    const ref = await build("reference");
    const stateNames = new Set(Object.keys(await model.fetchState()));
    const userBytes = (graph: Graph): number =>
      graph.inputs
        .map((id) => nodeOf(graph, id))
        .filter((n) => n.op === "input" && !stateNames.has(n.name))
        .reduce((bytes, n) => bytes + n.type.shape.reduce((a, b) => a * b, 1) * 4, 0);
    const xBytes = batch * features * 4;
    const trainBytes = userBytes(model.programs.train.graph);
    await model.predict({ x: xs }); // the initial weights go up once
    expect(model.programs.predict.ioStats!.bytesIn).toBeGreaterThan(xBytes);
    const losses: number[] = [];
    const refLosses: number[] = [];
    for (let step = 0; step < 3; step++) {
      losses.push((await model.train({ x: xs, y: ys })).loss.data[0]!);
      refLosses.push((await ref.train({ x: xs, y: ys })).loss.data[0]!);
      // After the first step (the optimizer's initial state goes up once) a step uploads only its batch and scalars.
      if (step > 0) expect(model.programs.train.ioStats).toMatchObject({ bytesIn: trainBytes });
      const predicted = out(await model.predict({ x: xs }));
      expect(model.programs.predict.ioStats).toMatchObject({ bytesIn: xBytes, bytesOnDevice: 0, bytesOut: batch * classes * 4 });
      expectClose(predicted, out(await ref.predict({ x: xs })), 1e-4, 1e-4);
    }
    expectClose(losses, refLosses, 1e-4, 1e-4);
    const trained = await model.fetchState();
    expect(trained["opt.step"]!.data[0]).toBe(3);
    expectClose(Array.from(trained["2.weight"]!.data), Array.from((await ref.fetchState())["2.weight"]!.data), 1e-4, 1e-4);
    await model.close();
  });

  test("kiln train: 10 + 10 steps equal 20 steps, byte for byte", async () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
    const train = async (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      const io = bufferIO("", root);
      const code = await main(["train", "test/cli/fixtures/tiny-train.ts", "-e", "training", "--target", "cuda", ...args], io);
      return { code, stdout: io.stdout, stderr: io.stderr };
    };
    const checkpoint = (file: string) => {
      const read = k.safetensors.read(file);
      return {
        tensors: new Map([...read.tensors].map(([name, t]) => [name, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)])),
        step: read.metadata[STEP_KEY],
        losses: JSON.parse(read.metadata[LOSSES_KEY] ?? "[]") as number[],
      };
    };
    const [whole, split] = [0, 1].map(() => mkdtempSync(path.join(os.tmpdir(), "kiln-cuda-train-")));
    const straight = await train(["--out", whole!]);
    expect(straight.code, straight.stderr).toBe(0);
    expect((await train(["--out", split!, "--steps", "10"])).code).toBe(0);
    const resumed = await train(["--out", split!, "--resume", path.join(split!, "ckpt-10.safetensors")]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain("resumed from ckpt-10.safetensors at step 10");
    const a = checkpoint(path.join(whole!, "ckpt-20.safetensors"));
    const b = checkpoint(path.join(split!, "ckpt-20.safetensors"));
    expect(b.step).toBe("20");
    expect([...b.tensors.keys()]).toEqual([...a.tensors.keys()]);
    expect([...a.tensors.keys()]).toContain("opt.step");
    for (const [name, bytes] of a.tensors) expect(b.tensors.get(name)!.equals(bytes), name).toBe(true);
    expect(b.losses).toEqual(a.losses);
    expect(a.losses).toHaveLength(20);
    // Independent of the resume logic: the same 20 losses as the float64 interpreter.
    const reference = mkdtempSync(path.join(os.tmpdir(), "kiln-cuda-train-"));
    const io = bufferIO("", root);
    expect(await main(["train", "test/cli/fixtures/tiny-train.ts", "-e", "training", "--target", "reference", "--out", reference], io)).toBe(0);
    const want = checkpoint(path.join(reference, "ckpt-20.safetensors")).losses;
    a.losses.forEach((loss, i) => expect(Math.abs(loss - want[i]!), `step ${i + 1}`).toBeLessThan(1e-4));
  });
});
