// A wasm runner maps the pages its buffer plan needs when it is made (runtime/wasm/prefault.ts),
// so its first run does not pay the OS's first-touch faults: the memory is sized to the plan at
// creation, its bytes and the first run's fresh output arrays are touched then (the first run
// then takes almost no page faults: a count, not a time), the first run returns its outputs in those
// arrays, and the results still match a 1-thread runner bit for bit and the float64 interpreter.
// State updates (outputs aliasing an input) get no array made ahead, and a symbolic batch's
// program nothing at all. The worker's copy of the
// shared touch loop (pool.ts runs it as source) leaves every byte as it was, as the caller's does.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm, createWasmExecutor } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { EARLY_PREFAULT_BYTES, prestartThreads, stopPrestartedThreads, WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { artifactLayout, PAGE_BYTES } from "../../runtime/artifact/wasm-layout.ts";
import { PREFAULT_CHUNK_BYTES, SHARED_TOUCH_SOURCE, sharedTouch, TOUCH_STRIDE } from "../../runtime/wasm/prefault.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const f = k.f32;
const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
  await stopPrestartedThreads();
});

/** f32-exact sines, a different phase per input. */
const inputsOf = (g: Graph): Record<string, HostTensor> =>
  graphInputs(g, ({ dtype, count, index }) =>
    dtype === "i32"
      ? Int32Array.from({ length: count }, (_, j) => (j * 7 + index) % 10)
      : Float32Array.from({ length: count }, (_, j) => Math.sin(0.37 * j + index)),
  );

/** Whether two arrays hold the same bytes (vitest's toEqual walks millions of elements slowly). */
const sameBits = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  Buffer.compare(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength)) === 0;

const MiB = 2 ** 20;
/** 1M elements: 4 MiB per tensor, so the memory is over the size whose pre-fault goes to a worker too. */
const N = MiB;
const chain = k.traceFunction("chain", ((x: k.Tensor, y: k.Tensor) => x.mul(2).add(1).relu().mul(y).sigmoid()) as never, [f([N]), f([N])]).graph;

describe("wasm runners map their pages when made", () => {
  for (const threads of [2, 1]) {
    test(`${threads} thread(s): the memory is the plan's size and mapped, with the first run's output array, before any run; that run returns in it and agrees with the interpreter`, async () => {
      const artifact = compileWasm(chain).artifact;
      const layout = artifactLayout(artifact.memory);
      // Two inputs and the output, each N f32 (the chain fuses into one kernel, no intermediate).
      expect(artifact.memory.slotBytes.reduce((a, b) => a + b, 0)).toBe(3 * 4 * N);
      // As k.compile does: the workers boot first, and one takes chunks of the pre-fault.
      if (threads > 1) await prestartThreads({ threads });
      const runner = await WasmArtifactRunner.start(artifact, { threads, minParallelWork: 0 });
      runners.push(runner);
      expect(runner.memoryBytes).toBe(layout.pages * PAGE_BYTES);
      const output = artifact.outputs[0]!;
      expect(runner.prefaultedBytes).toBe(layout.totalBytes + 4 * N);
      const spare = runner.spares.get(output.name)!;
      expect(spare.length).toBe(N);
      const inputs = inputsOf(chain);
      const faultsBefore = process.resourceUsage().minorPageFault;
      const first = runner.run(inputs)[output.name]!;
      // The process's minor faults (every thread's): without the pre-fault the run maps each
      // 4 KiB page of the inputs' and output's slots and of the returned array (4096 faults).
      const faults = process.resourceUsage().minorPageFault - faultsBefore;
      expect(faults).toBeLessThan(0.05 * (runner.prefaultedBytes / 4096));
      // (identity by ===: vitest's toBe on typed arrays of millions of elements walks them)
      expect(first.data === spare).toBe(true);
      expect(runner.io.bytesAllocated).toBe(4 * N);
      expect(runner.spares.size).toBe(0);
      const second = runner.run(inputs)[output.name]!;
      expect(second.data === spare).toBe(false);
      expect(sameBits(second.data, first.data)).toBe(true);
      const want = interpret(chain, inputs)[output.name]!.data;
      let worst = 0;
      first.data.forEach((v, j) => {
        worst = Math.max(worst, Math.abs(v - want[j]!) / (1e-6 + Math.abs(want[j]!)));
      });
      expect(worst).toBeLessThan(1e-5);
      if (threads === 1) {
        await runner.whenThreadsReady();
        return;
      }
      // The split run of the pool (workers up) computes what a 1-thread runner does, bit for bit.
      await runner.whenThreadsReady();
      const one = await WasmArtifactRunner.create(artifact, { threads: 1 });
      runners.push(one);
      expect(sameBits(runner.run(inputs)[output.name]!.data, one.run(inputs)[output.name]!.data)).toBe(true);
    });
  }

  test("a train step: only the loss gets an array made ahead, not the parameter updates (read back only when asked)", async () => {
    k.manualSeed(3);
    const net = k.nn.sequential(k.nn.linear(16, 32), k.nn.relu(), k.nn.linear(32, 4));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
    const g = k.traceFunction("step", step as never, [f([8, 16]), k.i32([8])]).graph;
    const artifact = compileWasm(g).artifact;
    const runner = await WasmArtifactRunner.start(artifact, { threads: 1 });
    runners.push(runner);
    const updates = artifact.outputs.filter((o) => o.aliases !== undefined).map((o) => o.name);
    expect(updates.length).toBe(4);
    expect([...runner.spares.keys()]).toEqual(artifact.outputs.filter((o) => !updates.includes(o.name)).map((o) => o.name));
    const inputs = inputsOf(g);
    const got = runner.run(inputs);
    const want = interpret(g, inputs);
    for (const o of artifact.outputs)
      got[o.name]!.data.forEach((v, j) => expect(Math.abs(v - want[o.name]!.data[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want[o.name]!.data[j]!)));
  });

  test("a symbolic batch maps nothing ahead (its buffers are sized for the largest batch, which a run may not reach); the same program at a fixed batch does", async () => {
    const fn = (x: k.Tensor) => x.mul(2).sigmoid();
    const symbolic = await createWasmExecutor(k.traceFunction("sym", fn as never, [f(["batch", 1024], { max: { batch: 64 } })]).graph, { threads: 1 });
    const fixed = await createWasmExecutor(k.traceFunction("fixed", fn as never, [f([64, 1024])]).graph, { threads: 1 });
    try {
      expect([symbolic.runner.prefaultedBytes, symbolic.runner.spares.size]).toEqual([0, 0]);
      expect(fixed.runner.prefaultedBytes).toBe(artifactLayout(fixed.artifact.memory).totalBytes + 4 * 64 * 1024);
      expect(fixed.runner.spares.size).toBe(1);
    } finally {
      await symbolic.close();
      await fixed.close();
    }
  });

  test("k.compile's executor with threads makes the memory as the render begins and the prestarted worker maps its first EARLY_PREFAULT_BYTES then; the runner takes that memory, maps the rest, and its first run takes almost no faults and agrees with 1 thread; a symbolic batch's gets none", async () => {
    // 2M elements a tensor: 24 MiB of slots, over what the worker is given during the render.
    const M = 2 * MiB;
    const big = k.traceFunction("chain2", ((x: k.Tensor, y: k.Tensor) => x.mul(2).add(1).relu().mul(y).sigmoid()) as never, [f([M]), f([M])]).graph;
    const two = await createWasmExecutor(big, { threads: 2 });
    const one = await createWasmExecutor(big, { threads: 1 });
    const fn = (x: k.Tensor) => x.mul(2).sigmoid();
    const symbolic = await createWasmExecutor(k.traceFunction("sym2", fn as never, [f(["batch", 1024], { max: { batch: 64 } })]).graph, { threads: 2 });
    try {
      const layout = artifactLayout(two.artifact.memory);
      expect(layout.totalBytes).toBeGreaterThan(EARLY_PREFAULT_BYTES);
      expect(two.runner.renderPrefaultBytes).toBe(EARLY_PREFAULT_BYTES);
      expect(two.runner.memoryBytes).toBe(layout.pages * PAGE_BYTES);
      expect(two.runner.prefaultedBytes).toBe(layout.totalBytes + 4 * M);
      expect([one.runner.renderPrefaultBytes, symbolic.runner.renderPrefaultBytes, symbolic.runner.prefaultedBytes]).toEqual([0, 0, 0]);
      const inputs = inputsOf(big);
      const faultsBefore = process.resourceUsage().minorPageFault;
      const first = Object.values(await two.run(inputs))[0]!;
      expect(process.resourceUsage().minorPageFault - faultsBefore).toBeLessThan(0.05 * (two.runner.prefaultedBytes / 4096));
      expect(sameBits(first.data, Object.values(await one.run(inputs))[0]!.data)).toBe(true);
    } finally {
      await Promise.all([two.close(), one.close(), symbolic.close()]);
    }
  });

  test("the shared touch loop, on the calling thread and as the workers' source, takes every chunk once and changes no byte", () => {
    const fromSource = new Function(`return ${SHARED_TOUCH_SOURCE}`)() as typeof sharedTouch;
    for (const touch of [sharedTouch, fromSource]) {
      const bytes = new Uint8Array(new SharedArrayBuffer(3 * PREFAULT_CHUNK_BYTES + 5 * TOUCH_STRIDE));
      // Values at page starts (where the touch writes) and elsewhere: all must survive.
      for (let at = 0; at < bytes.length; at += 3 * TOUCH_STRIDE + 1) bytes[at] = (at % 251) + 1;
      for (let at = 0; at < bytes.length; at += 5 * TOUCH_STRIDE) bytes[at] = 7;
      const before = bytes.slice();
      const ctl = new Int32Array(new SharedArrayBuffer(8));
      const from = TOUCH_STRIDE;
      touch(bytes, from, bytes.length, ctl);
      const chunks = Math.ceil((bytes.length - from) / PREFAULT_CHUNK_BYTES);
      expect(chunks).toBe(4);
      // Every chunk claimed and finished once (the last claim found none left).
      expect(Array.from(ctl)).toEqual([chunks + 1, chunks]);
      expect(sameBits(bytes, before)).toBe(true);
    }
  });
});
