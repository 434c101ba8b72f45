// A wasm worker pool whose workers die or never start (runtime/wasm/pool.ts). A worker that
// dies once ready must not hang the caller: a launch waits in slices and gives up on a worker
// that shows no progress long after the caller finished its own chunks (the bound is shortened
// here through poolTestHooks), naming the thread and the kernel; the pool is then broken and
// later runs throw the same error at once. A worker that fails to start leaves the runner on
// the calling thread, with one KILN_WASM_THREADS warning, and results equal to a 1-thread
// runner's bit for bit and to the float64 interpreter's. Each test has its own timeout: a hang fails it.

import { afterAll, afterEach, describe, expect, test, vi } from "vitest";
import * as k from "kiln";
import { compileWasm, createWasmExecutor } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { stopPrestartedThreads, WasmArtifactRunner, type RuntimeTensor } from "../../runtime/wasm/run-artifact.ts";
import { poolTestHooks, WasmThreadError } from "../../runtime/wasm/pool.ts";

const runners: WasmArtifactRunner[] = [];
const keep = (r: WasmArtifactRunner): WasmArtifactRunner => {
  runners.push(r);
  return r;
};
const hooks = { ...poolTestHooks };
afterEach(() => {
  Object.assign(poolTestHooks, hooks);
  vi.restoreAllMocks();
});
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

const g = k.traceFunction("scale_shift", ((x: k.Tensor) => x.mul(3).add(1)) as never, [k.f32([4096])]).graph;
const artifact = compileWasm(g).artifact;
const x = Float32Array.from({ length: 4096 }, (_, i) => Math.fround(Math.sin(0.37 * i)));
const inputs: Record<string, HostTensor> = { [artifact.inputs[0]!.name]: { dtype: "f32", shape: [4096], data: x } };
const only = (out: Record<string, RuntimeTensor>): number[] => Array.from(Object.values(out)[0]!.data);
/** The float64 interpreter's values. */
const reference = Array.from(Object.values(interpret(g, inputs))[0]!.data);
const closeTo = (got: number[]): void => got.forEach((v, i) => expect(Math.abs(v - reference[i]!)).toBeLessThanOrEqual(1e-6 + 1e-6 * Math.abs(reference[i]!)));

/** `fn`'s error, which must be thrown. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

describe("a wasm worker that dies after it is ready", () => {
  test("a launch waiting for a chunk it holds throws a WasmThreadError naming the thread and the kernel; later runs throw it at once", {
    timeout: 15_000,
  }, async () => {
    const runner = keep(await WasmArtifactRunner.create(artifact, { threads: 2, minParallelWork: 0 }));
    expect(runner.activeThreads).toBe(2);
    closeTo(only(runner.run(inputs)));
    // Alive but stopped inside a chunk it claimed, as a crash mid-chunk looks from the caller.
    runner.stallWorkers();
    poolTestHooks.stallMs = 200;
    const e = thrown(() => runner.run(inputs));
    expect(e).toBeInstanceOf(WasmThreadError);
    expect(e.message).toMatch(/^wasm worker thread 1 of 1 stopped responding: kernel 0 \(.+\), section 0 did not finish/);
    expect((e as WasmThreadError).code).toBe("target-unavailable");
    // Broken for good, with no second wait: a long bound now would hit the test's timeout.
    poolTestHooks.stallMs = 60_000;
    expect(thrown(() => runner.run(inputs))).toBe(e);
    expect(() => runner.activeThreads).toThrow(e.message);
    await runner.close();
  });

  test("a worker that never runs again holds up no launch: the caller claims every chunk (all are claimed, none set aside)", {
    timeout: 15_000,
  }, async () => {
    const runner = keep(await WasmArtifactRunner.create(artifact, { threads: 2, minParallelWork: 0 }));
    closeTo(only(runner.run(inputs)));
    // Dead without the pool seeing its exit event (a descheduled worker looks the same to a launch).
    await runner.killWorker(1, true);
    poolTestHooks.stallMs = 60_000; // a wait for it would hit the test's timeout
    for (let i = 0; i < 3; i++) closeTo(only(runner.run(inputs)));
    await runner.close();
  });

  test("an exit seen between runs breaks the pool with no wait: the next run throws at once", { timeout: 15_000 }, async () => {
    poolTestHooks.stallMs = 60_000;
    const runner = keep(await WasmArtifactRunner.create(artifact, { threads: 3, minParallelWork: 0 }));
    closeTo(only(runner.run(inputs)));
    await runner.killWorker(2, false);
    // The 'exit' event is delivered after terminate() resolves; one more turn to be sure.
    await new Promise((r) => setTimeout(r, 10));
    const e = thrown(() => runner.run(inputs));
    expect(e).toBeInstanceOf(WasmThreadError);
    expect(e.message).toMatch(/^wasm worker thread 2 of 2 stopped: it exited \(code \d+\)/);
    await runner.close();
  });
});

describe("wasm worker threads that fail to start", () => {
  test("the runner falls back to the calling thread with one KILN_WASM_THREADS warning; results equal a 1-thread runner's", { timeout: 15_000 }, async () => {
    await stopPrestartedThreads(); // no booted worker of the normal source is taken
    poolTestHooks.workerSource = `throw new Error("no threads in this test");`;
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const runner = keep(await WasmArtifactRunner.create(artifact, { threads: 2, minParallelWork: 0 }));
    expect(runner.threadsFailure).toMatch(/no threads in this test/);
    expect([runner.threads, runner.activeThreads]).toEqual([1, 1]);
    const first = only(runner.run(inputs));
    const second = only(runner.run(inputs));
    const one = only(keep(await WasmArtifactRunner.create(artifact, { threads: 1 })).run(inputs));
    expect(first).toEqual(one);
    expect(second).toEqual(one);
    closeTo(first);
    const ours = warn.mock.calls.filter(([, o]) => (o as { code?: string } | undefined)?.code === "KILN_WASM_THREADS");
    expect(ours.length).toBe(1);
    expect(String(ours[0]![0])).toMatch(/worker threads failed to start \(.*no threads in this test.*\); running on the calling thread alone/);
    await runner.close();
  });

  test("a runner started without waiting runs on the calling thread before and after the failure is known", { timeout: 15_000 }, async () => {
    await stopPrestartedThreads();
    poolTestHooks.workerSource = `process.exit(3);`;
    vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const runner = keep(await WasmArtifactRunner.start(artifact, { threads: 3, minParallelWork: 0 }));
    const before = only(runner.run(inputs));
    await runner.whenThreadsReady();
    expect(runner.threadsFailure).toMatch(/exited \(code 3\) before it was ready/);
    expect(only(runner.run(inputs))).toEqual(before);
    closeTo(before);
    await runner.close();
  });

  test("k.compile's executor whose prestarted worker fails: the kernel modules it was to compile fall back to this thread's compile, and the runs to the calling thread", {
    timeout: 15_000,
  }, async () => {
    await stopPrestartedThreads();
    poolTestHooks.workerSource = `throw new Error("no compiles in this test");`;
    vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const exe = await createWasmExecutor(g, { threads: 2, minParallelWork: 0 });
    try {
      expect(exe.runner.workerCompiledModules + exe.runner.callerCompiledModules).toBe(exe.artifact.kernels.length);
      const first = only((await exe.run(inputs)) as Record<string, RuntimeTensor>);
      await exe.runner.whenThreadsReady();
      expect(exe.runner.threadsFailure).toMatch(/no compiles in this test/);
      closeTo(first);
    } finally {
      await exe.close();
    }
  });

  test("a runner closed while its workers are still starting warns of nothing (they were ended on purpose)", { timeout: 15_000 }, async () => {
    await stopPrestartedThreads(); // fresh workers: still booting when the runner closes
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const runner = await WasmArtifactRunner.start(artifact, { threads: 3, minParallelWork: 0 });
    closeTo(only(runner.run(inputs)));
    await runner.close();
    await runner.whenThreadsReady();
    await new Promise((r) => setTimeout(r, 50)); // any exit events of the ended workers
    expect(warn.mock.calls.filter(([, o]) => (o as { code?: string } | undefined)?.code === "KILN_WASM_THREADS")).toEqual([]);
  });
});
