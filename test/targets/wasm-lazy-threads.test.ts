// The wasm runner's worker pool starts without blocking (runtime/wasm/pool.ts): a runner made
// with `start` runs on the calling thread alone until its workers are ready, then splits. The
// results must not depend on which: each split iteration computes the same values on any
// thread. Checked bit for bit against runners that waited for their workers (`create`) and
// runners of one thread, and the pure graph against the float64 interpreter; then workers
// booted ahead of the pool (prestartThreads, as k.compile does while it compiles) are taken
// by the next pool; and k.compile's executor hands each kernel module to the prestarted worker's
// compile as it renders (EarlyModules), whose runner takes them all and computes what a 1-thread one does.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm, createWasmExecutor } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { EarlyModules, prestartThreads, stopPrestartedThreads, WasmArtifactRunner, type RuntimeTensor } from "../../runtime/wasm/run-artifact.ts";
import { idleWorkerCount } from "../../runtime/wasm/pool.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const f = k.f32;
const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
  await stopPrestartedThreads();
});

const keep = (r: WasmArtifactRunner): WasmArtifactRunner => {
  runners.push(r);
  return r;
};

/** f32-exact inputs: sines of the flat index, a different phase per input; labels in [0, 10). */
function inputsOf(g: Graph): Record<string, HostTensor> {
  return graphInputs(g, ({ dtype, count, index, name }) =>
    dtype === "i32"
      ? Int32Array.from({ length: count }, (_, j) => (j * 7 + index) % 10)
      : name === "hyper"
        ? Float64Array.from({ length: count }, () => 0.05)
        : Float64Array.from({ length: count }, (_, j) => Math.fround(0.5 * Math.sin(0.37 * j + index))),
  );
}

const values = (out: Record<string, RuntimeTensor>): Record<string, number[]> =>
  Object.fromEntries(Object.entries(out).map(([name, t]) => [name, Array.from(t.data)]));

/**
 * Runs `g` on a runner whose workers are not up yet (the lone first run), again once they are
 * (the split run), and on a 1-thread runner: all three bit for bit, and the interpreter within
 * 1e-5 + 1e-4·|v|.
 */
async function loneSplitAndOneAgree(g: Graph): Promise<void> {
  const artifact = compileWasm(g).artifact;
  const inputs = inputsOf(g);
  const lazy = keep(await WasmArtifactRunner.start(artifact, { threads: 2, minParallelWork: 0 }));
  // Nothing but microtasks ran since the pool posted its start messages: no worker has answered.
  expect([lazy.threads, lazy.activeThreads]).toEqual([2, 1]);
  const lone = values(lazy.run(inputs));
  expect(lazy.launchStats.launches).toBeGreaterThan(0);
  await lazy.whenThreadsReady();
  expect(lazy.activeThreads).toBe(2);
  const split = values(lazy.run(inputs));
  const one = values(keep(await WasmArtifactRunner.create(artifact, { threads: 1 })).run(inputs));
  expect(split).toEqual(lone);
  expect(one).toEqual(lone);
  const want = interpret(g, inputs);
  for (const [name, got] of Object.entries(lone)) {
    const expected = Array.from(want[name]!.data);
    got.forEach((v, j) => expect(Math.abs(v - expected[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(expected[j]!)));
  }
}

describe("wasm worker threads started without waiting", () => {
  test("a pure graph: the lone first run, the pool's split run and a 1-thread runner agree bit for bit, and with the interpreter", async () => {
    await loneSplitAndOneAgree(
      k.traceFunction("mm_softmax", ((x: k.Tensor, w: k.Tensor) => x.matmul(w).relu().softmax(-1)) as never, [f([48, 96]), f([96, 80])]).graph,
    );
  });

  test("a split loop that is itself a vector loop (column sums of products, relaxed_madd lanes, a scalar remainder): chunks start at multiples of 4, so the lone run, the split run and 1 thread agree bit for bit", async () => {
    // 29 columns: under 16 per thread, where the runner's own grain is 1 (chunks of 2 made the
    // split run's lanes take the scalar mul + add path that the lone run's lanes fuse).
    await loneSplitAndOneAgree(k.traceFunction("colsum", ((x: k.Tensor, w: k.Tensor) => x.mul(w).sum(0)) as never, [f([301, 29]), f([301, 29])]).graph);
  });

  test("two SGD steps of an MLP, the first before the workers are up: the same losses and parameters as eager and 1-thread runners", async () => {
    k.manualSeed(11);
    const net = k.nn.sequential(k.nn.linear(64, 128), k.nn.relu(), k.nn.linear(128, 10));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.05 }));
    const g = k.traceFunction("mlp_step", step as never, [f([32, 64]), k.i32([32])]).graph;
    const artifact = compileWasm(g).artifact;
    const twoSteps =
      (runner: WasmArtifactRunner, between: () => Promise<void> = async () => {}) =>
      async () => {
        const inputs = inputsOf(g);
        const first = runner.run(inputs);
        const activeAtFirst = runner.activeThreads;
        await between();
        // The next step starts from the first one's state updates (outputs that alias an input).
        const next = { ...inputs };
        for (const o of artifact.outputs) if (o.aliases !== undefined) next[o.aliases] = first[o.name] as HostTensor;
        return { activeAtFirst, first: values(first), second: values(runner.run(next)) };
      };
    const lazy = keep(await WasmArtifactRunner.start(artifact, { threads: 2, minParallelWork: 0 }));
    const lazyRun = await twoSteps(lazy, () => lazy.whenThreadsReady())();
    const eager = await twoSteps(keep(await WasmArtifactRunner.create(artifact, { threads: 2, minParallelWork: 0 })))();
    const single = await twoSteps(keep(await WasmArtifactRunner.create(artifact, { threads: 1 })))();
    expect([lazyRun.activeAtFirst, eager.activeAtFirst, single.activeAtFirst]).toEqual([1, 2, 1]);
    expect(lazyRun.first).toEqual(eager.first);
    expect(lazyRun.second).toEqual(eager.second);
    expect(single.second).toEqual(eager.second);
    // The steps did something: the second loss differs from the first and is finite.
    const lossName = artifact.outputs[0]!.name;
    expect(Number.isFinite(lazyRun.second[lossName]![0])).toBe(true);
    expect(lazyRun.second[lossName]).not.toEqual(lazyRun.first[lossName]);
  });

  test("the runner's options are strict: an unknown key, a threads count that is not a whole number ≥ 1, a negative minParallelWork or a non-object is refused", async () => {
    const g = k.traceFunction("double", ((x: k.Tensor) => x.mul(2)) as never, [f([4])]).graph;
    const artifact = compileWasm(g).artifact;
    await expect(WasmArtifactRunner.create(artifact, { thread: 2 } as never)).rejects.toThrow(
      "wasm runner: unknown option 'thread' (options: threads, minParallelWork)",
    );
    for (const threads of [0, 1.5, Number.NaN])
      await expect(WasmArtifactRunner.create(artifact, { threads })).rejects.toThrow(`wasm runner: threads must be a whole number ≥ 1, got ${threads}`);
    for (const minParallelWork of [-1, Number.NaN, "0" as unknown as number])
      await expect(WasmArtifactRunner.create(artifact, { minParallelWork })).rejects.toThrow(
        `wasm runner: minParallelWork must be a number ≥ 0, got ${String(minParallelWork)}`,
      );
    // A null or non-object options argument (a loader passing JSON.parse("null")) is named, not a TypeError from inside.
    await expect(WasmArtifactRunner.create(artifact, null as never)).rejects.toThrow("wasm runner: options must be an object, got null");
    await expect(WasmArtifactRunner.create(artifact, 2 as never)).rejects.toThrow("wasm runner: options must be an object, got number");
  });

  test("workers booted ahead of the pool (prestartThreads) are taken by the next pool; stopPrestartedThreads ends unused ones", async () => {
    const g = k.traceFunction("scale", ((x: k.Tensor) => x.mul(3).add(1)) as never, [f([4096])]).graph;
    const artifact = compileWasm(g).artifact;
    await prestartThreads({ threads: 3 });
    expect(idleWorkerCount()).toBe(2);
    const runner = keep(await WasmArtifactRunner.create(artifact, { threads: 3, minParallelWork: 0 }));
    expect(idleWorkerCount()).toBe(0);
    expect(runner.activeThreads).toBe(3);
    const x = inputsOf(g);
    const got = Object.values(runner.run(x))[0]!.data;
    const xs = Object.values(x)[0]!.data;
    expect(Array.from(got)).toEqual(Array.from(xs, (v) => Math.fround(Math.fround(v * 3) + 1)));
    await prestartThreads({ threads: 2 });
    expect(idleWorkerCount()).toBe(1);
    await stopPrestartedThreads();
    expect(idleWorkerCount()).toBe(0);
  });

  test("k.compile's wasm executor with threads compiles each module as it renders (the runner takes every one), one thread compiles them itself; both agree bit for bit, and with the interpreter", async () => {
    const g = k.traceFunction("mm_bias_relu", ((x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w).add(b).relu().sum(1)) as never, [
      f([40, 72]),
      f([72, 24]),
      f([24]),
    ]).graph;
    const inputs = inputsOf(g);
    const two = await createWasmExecutor(g, { threads: 2, minParallelWork: 0 });
    const one = await createWasmExecutor(g, { threads: 1 });
    try {
      expect(two.artifact.kernels.length).toBeGreaterThan(0);
      expect(two.runner.precompiledModules).toBe(two.artifact.kernels.length);
      // On the worker booted for the pool, whose thread is free while this one renders (pool.ts
      // idleWorkerCompile), but for those it had not begun when the runner started: this thread's (steal).
      expect(two.runner.workerCompiledModules + two.runner.callerCompiledModules).toBe(two.artifact.kernels.length);
      expect(one.runner.precompiledModules).toBe(0);
      const got = values(await two.run(inputs));
      expect(got).toEqual(values(await one.run(inputs)));
      const want = interpret(g, inputs);
      for (const [name, vs] of Object.entries(got)) {
        const expected = Array.from(want[name]!.data);
        vs.forEach((v, j) => expect(Math.abs(v - expected[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(expected[j]!)));
      }
    } finally {
      await two.close();
      await one.close();
    }
  });

  test("modules the worker has not begun when the runner starts are compiled by the calling thread, last first, until one the worker claimed; each once; runs agree with 1 thread bit for bit", async () => {
    const g = k.traceFunction("mm_bias_relu2", ((x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w).add(b).relu().softmax(-1)) as never, [
      f([24, 40]),
      f([40, 16]),
      f([16]),
    ]).graph;
    const artifact = compileWasm(g).artifact;
    const n = artifact.kernels.length;
    expect(n).toBeGreaterThan(1);
    const inputs = inputsOf(g);
    const want = values(keep(await WasmArtifactRunner.create(artifact, { threads: 1 })).run(inputs));
    // A stand-in worker that claims (and compiles) the first `begun` modules handed to it and never gets to the others.
    const withWorker = async (begun: number) => {
      let handed = 0;
      const workerCompiles: number[] = [];
      const early = new EarlyModules((bytes, claim) => {
        const i = handed++;
        if (i >= begun) return new Promise(() => {});
        expect(Atomics.compareExchange(claim!, 0, 0, 1)).toBe(0);
        workerCompiles.push(i);
        return WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
      });
      for (const kern of artifact.kernels) early.add(kern.source, new Uint8Array(Buffer.from(kern.source, "base64")));
      const runner = keep(await WasmArtifactRunner.start(artifact, { threads: 2, minParallelWork: 0 }, undefined, early));
      expect([runner.precompiledModules, runner.workerCompiledModules, runner.callerCompiledModules, workerCompiles.length]).toEqual([
        n,
        begun,
        n - begun,
        begun,
      ]);
      // Taken already: a second steal finds nothing unclaimed.
      expect(early.steal()).toBe(0);
      expect(values(runner.run(inputs))).toEqual(want);
      await runner.whenThreadsReady();
      expect(values(runner.run(inputs))).toEqual(want);
    };
    await withWorker(0);
    await withWorker(1);
    await withWorker(n);
  });
});
