// k.compileModel on wasm: every program runs in one WebAssembly.Memory with the model's state at
// the same addresses (wasm-layout.ts's state region), so switching programs copies no state:
// predict after train steps uploads only x, train after predict only its batch and scalars.
// Predict sees the trained weights: its output equals, bit for bit, a lone wasm executable of
// the same predict graph loaded with the state read back, and matches the float64 interpreter
// (the reference target) run through the same steps. On 1 thread (an unshared memory, grown
// as the larger program joins) and on 2 (worker threads; the sections are big enough to split).

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { expectClose } from "../util/ref.ts";
import { lcg } from "../util/lcg.ts";
import { createModel, loadArtifact } from "../../runtime/artifact/load.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";

const batch = 64;
const features = 64;
const hidden = 256;
const classes = 10;
const r = lcg(5);
const xs = Float32Array.from({ length: batch * features }, () => 2 * r() - 1);
const ys = Int32Array.from({ length: batch }, (_, i) => (i * 7) % classes);
const specs = { x: k.f32([batch, features]), y: k.i32([batch]) };
const out = (o: unknown): number[] => Array.from((o as HostOutput).data);

const net = (): k.nn.Module => {
  k.manualSeed(3);
  return k.nn.sequential(k.nn.linear(features, hidden), k.nn.relu(), k.nn.linear(hidden, classes));
};
const loss = (logits: k.Tensor, y: k.Tensor): k.Tensor => k.nn.functional.crossEntropy(logits, y);

async function build(target: string, threads?: number) {
  const m = net();
  // predict first: its (smaller) program makes the memory, train's grows it.
  return k.compileModel(
    m,
    {
      predict: (x: k.Tensor) => m.call(x),
      train: k.trainStep(m, loss, k.optim.adam({ lr: 0.01 })),
      evalLoss: (x: k.Tensor, y: k.Tensor) => loss(m.call(x), y),
    },
    specs,
    { target, ...(threads !== undefined ? { threads } : {}) },
  );
}

describe.runIf(await k.availableTargets().then((t) => t.includes("wasm")))("wasm k.compileModel: one memory, the state at fixed addresses", () => {
  test.each([1, 2])("%i thread(s): program switches copy no state; predict sees the trained weights", async (threads) => {
    const model = await build("wasm", threads);
    const ref = await build("reference");
    const stateNames = new Set(Object.keys(model.state()));
    const userBytes = (graph: Graph): number =>
      graph.inputs
        .map((id) => nodeOf(graph, id))
        .filter((n) => n.op === "input" && !stateNames.has(n.name))
        .reduce((bytes, n) => bytes + n.type.shape.reduce((a, b) => a * b, 1) * 4, 0);
    const xBytes = batch * features * 4;
    expect(userBytes(model.programs.predict.graph)).toBe(xBytes);
    const trainBytes = userBytes(model.programs.train.graph);

    await model.predict({ x: xs }); // the initial weights go in once
    expect(model.programs.predict.ioStats!.bytesIn).toBeGreaterThan(xBytes);
    const losses: number[] = [];
    const refLosses: number[] = [];
    for (let step = 0; step < 3; step++) {
      losses.push((await model.train({ x: xs, y: ys })).loss.data[0]!);
      refLosses.push((await ref.train({ x: xs, y: ys })).loss.data[0]!);
      // train after predict: only the batch and the scalars went in (and the optimizer's initial state, the first time).
      if (step === 0) expect(model.programs.train.ioStats!.bytesIn).toBeGreaterThan(trainBytes);
      else expect(model.programs.train.ioStats).toMatchObject({ bytesIn: trainBytes });
      const predicted = out(await model.predict({ x: xs }));
      // predict after train: only x went in; nothing was copied inside the memory either.
      expect(model.programs.predict.ioStats).toMatchObject({ bytesIn: xBytes, bytesOnDevice: 0 });
      expectClose(predicted, out(await ref.predict({ x: xs })), 1e-4, 1e-4);
      const evalLoss = (await model.evalLoss({ x: xs, y: ys })).data[0]!;
      expect(model.programs.evalLoss.ioStats).toMatchObject({ bytesIn: xBytes + batch * 4, bytesOnDevice: 0 });
      expectClose([evalLoss], [(await ref.evalLoss({ x: xs, y: ys })).data[0]!], 1e-4, 1e-4);
    }
    expectClose(losses, refLosses, 1e-4, 1e-4);
    expect(losses[2]).toBeLessThan(losses[0]!);

    // Bit for bit: a lone wasm predict (its own memory) loaded with the state read back.
    const trained = await model.fetchState();
    expect(trained["opt.step"]!.data[0]).toBe(3);
    const m = net();
    const lone = await k.compile((x: k.Tensor) => m.call(x), [specs.x], { target: "wasm", threads });
    lone.loadState(Object.fromEntries(Object.entries(trained).filter(([n]) => !n.startsWith("opt."))));
    const predicted = out(await model.predict({ x: xs }));
    expect(predicted).toEqual(out(await lone.run([xs])));
    await lone.close?.();
    // A program saved from the model records its slots' addresses (the state region's) and runs alone, in a memory of its own.
    const dir = mkdtempSync(path.join(tmpdir(), "kiln-wasm-shared-"));
    await model.programs.predict.save(dir);
    const loaded = await loadArtifact(dir);
    expect(loaded.artifact.memory.slotOffsets).toBeDefined();
    const runner = await WasmArtifactRunner.create(loaded.artifact, { threads });
    const saved = createModel(loaded, runner);
    expect(Array.from((await saved.run({ x: xs }))["out"]!.data)).toEqual(predicted);
    await runner.close();
    await model.close();
  });
});
