// The WebGPU runtime's contract: a run is one queue submission; state (parameters, optimizer
// moments) stays on the device across runs and is not uploaded again; only the requested
// outputs are read back; "auto" never picks a software adapter; an output larger than a
// readback chunk comes back in chunks, exactly, into the caller's arrays, with no GPU buffer
// made after the first run. Counts come from wrapping the device queue and the runtime's
// buffer counter, values and trajectories from the reference interpreter.

import { HyperStore } from "../../dsl/hyper.ts";
import { afterEach, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { resolveTarget } from "../../dsl/targets.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { decodeHalf } from "../../runtime/artifact/half.ts";
import { WebGpuArtifactRunner, webGpuBufferCounts } from "../../runtime/webgpu/run-artifact.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const env = await webGpuTestEnv();
const F = k.nn.functional;

interface QueueCounts {
  submits: number;
  writes: string[];
}

/** Counts submissions and uploads (by GPU buffer label) until the returned restore is called. */
function countQueue(queue: GPUQueue): { counts: QueueCounts; restore: () => void } {
  const counts: QueueCounts = { submits: 0, writes: [] };
  const submit = queue.submit.bind(queue);
  const writeBuffer = queue.writeBuffer.bind(queue);
  queue.submit = (buffers) => {
    counts.submits++;
    submit(buffers);
  };
  queue.writeBuffer = ((buffer: GPUBuffer, ...rest: never[]) => {
    counts.writes.push(buffer.label);
    (writeBuffer as (...a: unknown[]) => void)(buffer, ...rest);
  }) as GPUQueue["writeBuffer"];
  return { counts, restore: () => Object.assign(queue, { submit, writeBuffer }) };
}

let restore: (() => void) | undefined;
afterEach(() => restore?.());

const x = Array.from({ length: 32 }, (_, j) => Math.sin(j));
const y = Array.from({ length: 16 }, (_, j) => j % 2);

function makeStep() {
  k.manualSeed(5);
  const net = k.nn.sequential(k.nn.linear(2, 8), k.nn.relu(), k.nn.linear(8, 2));
  return k.trainStep(net, (logits, t) => F.crossEntropy(logits, t!), k.optim.adam({ lr: 0.05 }));
}

/**
 * makeStep's three losses on the reference, its graph compiled for webgpu, and the inputs of
 * the first step: the state the reference started from (the same seeded init, compiled
 * afresh), the hyperparameters, x and y.
 */
async function referenceStep() {
  const specs = [k.f32([16, 2]), k.i32([16])];
  const ref = await k.compile(makeStep(), specs, { target: "reference" });
  const wantLosses: number[] = [];
  for (let n = 0; n < 3; n++) wantLosses.push(((await ref.run([x, y])) as { loss: { data: ArrayLike<number> } }).loss.data[0]!);
  const graph = ref.graph;
  const { artifact } = compileWebGpu(graph, { limits: env.context!.limits });
  const fresh = await k.compile(makeStep(), specs, { target: "reference" });
  const hyper = new HyperStore(k.traceFunction("step", makeStep() as never, specs).hyper).inputs();
  const inputs: Record<string, HostTensor> = { ...fresh.state(), ...hyper };
  const [xName, yName] = graph.inputs.slice(0, 2).map((id) => (graph.nodes[id] as { name: string }).name);
  inputs[xName!] = { dtype: "f32", shape: [16, 2], data: Float64Array.from(x) };
  inputs[yName!] = { dtype: "i32", shape: [16], data: Int32Array.from(y) };
  const expectLosses = (losses: readonly number[]): void =>
    losses.forEach((v, j) => expect(Math.abs(v - wantLosses[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(wantLosses[j]!)));
  return { ref, artifact, inputs, stateNames: Object.keys(fresh.state()), expectLosses };
}

describe.skipIf(!env.available)("webgpu runtime", () => {
  test("a training step is one submission; parameters and optimizer state are uploaded once", async () => {
    const exe = await k.compile(makeStep(), [k.f32([16, 2]), k.i32([16])], { target: "webgpu" });
    const q = countQueue(env.context!.device.queue);
    restore = q.restore;
    await exe.run([x, y]);
    const firstWrites = q.counts.writes.length;
    expect(q.counts.submits).toBe(1);
    await exe.run([x, y]);
    await exe.run([x, y]);
    expect(q.counts.submits).toBe(3);
    // Runs 2 and 3 upload only the batch (x, y) and the hyperparameters (one f32[9] vector for Adam):
    // the state written by run 1 is still on the device.
    expect(q.counts.writes.length - firstWrites).toBe(6);
    expect(firstWrites).toBeGreaterThan(4);
  }, 180_000);

  test("reading back only the loss keeps the state on the device; the trajectory matches the reference", async () => {
    const { artifact, inputs, expectLosses } = await referenceStep();
    const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact);
    const q = countQueue(env.context!.device.queue);
    restore = q.restore;
    const losses: number[] = [];
    for (let n = 0; n < 3; n++) {
      const out = await runner.run(inputs, { readback: ["loss"] });
      expect(Object.keys(out)).toEqual(["loss"]);
      losses.push(out["loss"]!.data[0]!);
    }
    runner.destroy();
    expectLosses(losses);
    expect(q.counts.submits).toBe(3);
  }, 180_000);

  test("k.compile reads back only the user's outputs; the state comes back on fetchState()", async () => {
    const ref = await k.compile(makeStep(), [k.f32([16, 2]), k.i32([16])], { target: "reference" });
    for (let n = 0; n < 3; n++) await ref.run([x, y]);
    const want = ref.state();

    const exe = await k.compile(makeStep(), [k.f32([16, 2]), k.i32([16])], { target: "webgpu" });
    const device = env.context!.device;
    const createBuffer = device.createBuffer.bind(device);
    const readbackBytes: number[] = [];
    device.createBuffer = (desc: GPUBufferDescriptor) => {
      if (desc.label?.endsWith("/readback")) readbackBytes.push(desc.size);
      return createBuffer(desc);
    };
    restore = () => Object.assign(device, { createBuffer });
    for (let n = 0; n < 3; n++) await exe.run([x, y]);
    // One staging buffer sized for the f32 loss alone: no parameter or moment is read back per step.
    expect(readbackBytes).toEqual([4]);
    expect(() => exe.state()).toThrow(/lives on the webgpu device.*fetchState/);
    const got = await exe.fetchState();
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    for (const [name, t] of Object.entries(want))
      Array.from(t.data).forEach((v, j) => expect(Math.abs(got[name]!.data[j]! - v)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(v)));
    expect(exe.state()["opt.step"]!.data[0]).toBe(3);
  }, 180_000);

  test('"auto" picks webgpu only on a hardware adapter', async () => {
    const auto = await resolveTarget("auto");
    if (env.context!.adapter.software) expect(auto.name).not.toBe("webgpu");
    else expect(auto.name).toBe("webgpu");
    expect((await resolveTarget("webgpu")).name).toBe("webgpu");
  });
});

describe.skipIf(!env.available)("webgpu input slots", () => {
  test("each slot an input lives in is written whole by the host before any command uses it", async () => {
    // A fresh kernel (a constant no other test uses), so the runner warms its pipeline up with a dispatch over the slots.
    const fn = (x: k.Tensor, y: k.Tensor) => x.mul(3.0625).add(y).exp();
    const ref = await k.compile(fn, [k.f32([300]), k.f32([300])], { target: "reference" });
    const { artifact } = compileWebGpu(ref.graph, { limits: env.context!.limits });
    const queue = env.context!.device.queue;
    const events: string[] = [];
    const submit = queue.submit.bind(queue);
    const writeBuffer = queue.writeBuffer.bind(queue);
    queue.submit = (buffers) => {
      events.push("submit");
      submit(buffers);
    };
    queue.writeBuffer = ((buffer: GPUBuffer, offset: number, data: BufferSource, dataOffset?: number, size?: number) => {
      events.push(`${buffer.label} ${offset} ${size ?? data.byteLength} of ${buffer.size}`);
      writeBuffer(buffer, offset, data, dataOffset, size);
    }) as GPUQueue["writeBuffer"];
    restore = () => Object.assign(queue, { submit, writeBuffer });
    const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact);
    restore();
    restore = undefined;
    const slots = [...new Set(artifact.inputs.map((io) => artifact.buffers[io.buffer]!.slot))];
    const firstSubmit = events.indexOf("submit");
    expect(firstSubmit).toBeGreaterThan(0);
    for (const slot of slots) {
      const bytes = Math.ceil(artifact.memory.slotBytes[slot]! / 4) * 4;
      expect(events.slice(0, firstSubmit)).toContain(`${artifact.name}/slot${slot} 0 ${bytes} of ${bytes}`);
    }
    // The zeros are not results: a run computes from the inputs given.
    const inputs = Object.fromEntries(
      artifact.inputs.map((io, j) => [
        io.name,
        { dtype: "f32" as const, shape: [300], data: Float32Array.from({ length: 300 }, (_, i) => ((i * (j + 2)) % 17) / 8) },
      ]),
    );
    const got = await runner.run(inputs);
    const want = interpret(ref.graph, inputs);
    const name = artifact.outputs[0]!.name;
    Array.from(got[name]!.data).forEach((v, i) => expect(Math.abs(v - want[name]!.data[i]!)).toBeLessThanOrEqual(1e-6 * Math.abs(want[name]!.data[i]!)));
    runner.destroy();
  });
});

describe.skipIf(!env.available)("webgpu readback in chunks", () => {
  // Integer-valued data: every result is exact in f32, so the float64 interpreter must agree bit for bit.
  const n = 1001;
  const xs = Float32Array.from({ length: n }, (_, i) => (i % 37) - 18);
  const ys = Float32Array.from({ length: n }, (_, i) => (i % 11) - 5);

  test.each([false, true])(
    "large outputs come back exact through a few chunk buffers, into `out`, allocating nothing after the first run (quietWait %s)",
    async (quietWait) => {
      // f16 packs two elements to a device word: 1001 of them end in half a word.
      const fn = (x: k.Tensor, y: k.Tensor) => ({ a: x.mul(2).add(y), lt: x.lt(y), s: x.sum(), h: x.mul(3).add(y).half() });
      const ref = await k.compile(fn, [k.f32([n]), k.f32([n])], { target: "reference" });
      const graph = ref.graph;
      const { artifact } = compileWebGpu(graph, { limits: env.context!.limits });
      const [xName, yName] = graph.inputs.map((id) => (graph.nodes[id] as { name: string }).name);
      const inputs: Record<string, HostTensor> = {
        [xName!]: { dtype: "f32", shape: [n], data: xs },
        [yName!]: { dtype: "f32", shape: [n], data: ys },
      };
      const want = interpret(graph, inputs);
      // 64-byte chunks: the 1001-element outputs take 63 chunks each (the last one short), far more than the staging buffers.
      const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact, { readbackChunkBytes: 64, quietWait });
      const names = graph.outputs.map((o) => o.name);
      const out = Object.fromEntries(
        artifact.outputs.map((o) => [
          o.name,
          o.dtype === "bool" ? new Uint8Array(n) : o.dtype === "f16" ? new Uint16Array(n) : new Float32Array(o.shape.length === 0 ? 1 : n),
        ]),
      );
      let created = 0;
      for (let run = 0; run < 3; run++) {
        if (run === 1) created = webGpuBufferCounts().created;
        const got = await runner.run(inputs, { out });
        for (const name of names) {
          expect(got[name]!.data).toBe(out[name]);
          const values = got[name]!.dtype === "f16" ? decodeHalf("f16", got[name]!.data) : got[name]!.data;
          expect(Array.from(values)).toEqual(Array.from(want[name]!.data));
        }
        expect(runner.io.bytesAllocated).toBe(0);
      }
      expect(webGpuBufferCounts().created).toBe(created);
      // One slot per buffer, the small-output staging buffer and 3 chunk buffers: none of an output's size (and quietly, the 4-byte probe).
      expect(runner.liveBuffers).toBe(artifact.memory.slotBytes.length + 1 + 3 + (quietWait ? 1 : 0));
      runner.destroy();
    },
    120_000,
  );

  test("the runner's options are strict: an unknown key is refused by name", async () => {
    const { artifact } = await referenceStep();
    await expect(WebGpuArtifactRunner.create(env.context!.device, artifact, { readbackChunkByte: 64 } as never)).rejects.toThrow(
      "webgpu runner: unknown option 'readbackChunkByte' (options: shared, progress, progressAfterMs, warmUp, readbackChunkBytes, quietWait)",
    );
  });

  test("a training step whose every output is read back in chunks keeps its trajectory and its state", async () => {
    const { ref, artifact, inputs, stateNames, expectLosses } = await referenceStep();
    // 4-byte chunks: every element of every output (all read back) is a chunk of its own.
    const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact, { readbackChunkBytes: 4 });
    const losses: number[] = [];
    for (let s = 0; s < 3; s++) {
      const got = await runner.run(inputs);
      losses.push(got["loss"]!.data[0]!);
      // The updated state, read back, is the next step's state (the runner then skips its upload).
      for (const o of artifact.outputs) if (o.aliases !== undefined) inputs[o.aliases] = got[o.name]!;
    }
    const state = await runner.readInputs(stateNames);
    runner.destroy();
    expectLosses(losses);
    for (const [name, t] of Object.entries(ref.state()))
      Array.from(t.data).forEach((v, j) => expect(Math.abs(state[name]!.data[j]! - v)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(v)));
  }, 180_000);
});
