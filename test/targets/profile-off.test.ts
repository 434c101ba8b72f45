// Profiling off costs nothing: a run without a profiler reads no clock (js, wasm), submits once
// and creates no query set (webgpu); a profiled run does time, so the counters can see it; a
// wasm run with `timeIo` reads the clock four times, around its write, execute and read.
// WebGPU pipelines are created through createComputePipelineAsync, and a creation that takes
// long reports its progress (pipelines done / total) to the reporter, here with a zero threshold;
// with quietWait (a CPU adapter) the warm-ups are waited for through probes, never onSubmittedWorkDone.

import { afterEach, describe, expect, test, vi } from "vitest";
import * as k from "kiln";
import { traceFunction } from "../../dsl/trace.ts";
import { compileJs } from "../../targets/js.ts";
import { compileWasm } from "../../targets/wasm.ts";
import { compileWebGpu, formatPipelineProgress } from "../../targets/webgpu.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { pipelineKey, WebGpuArtifactRunner, webGpuPipelineCounts, type PipelineProgress } from "../../runtime/webgpu/run-artifact.ts";
import { newRunProfiler, type RunProfiler } from "../../runtime/artifact/profile.ts";
import type { Artifact } from "../../runtime/artifact/format.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const gpu = await webGpuTestEnv();

afterEach(() => vi.restoreAllMocks());

// Two kernels (a matmul, then a row softmax reading it) on [4,3] @ [3,5].
const graph = traceFunction("g", (x: k.Tensor, w: k.Tensor) => k.softmax(k.matmul(x, w), -1).mul(k.matmul(x, w).sum()), [k.f32([4, 3]), k.f32([3, 5])]).graph;
function namedInputs(artifactInputs: readonly { readonly name: string; readonly shape: readonly number[] }[]): Record<string, HostTensor> {
  return Object.fromEntries(
    artifactInputs.map((io) => [
      io.name,
      { dtype: "f32", shape: [...io.shape], data: Float32Array.from({ length: io.shape.reduce((a, b) => a * b, 1) }, (_, i) => i / 7) },
    ]),
  );
}

/**
 * Runs `runner` without a profiler (expecting no performance.now call), then with one (expecting
 * more than `minClockReads` calls and every kernel counted once); returns that profiler.
 */
function runPlainThenProfiled(
  runner: { run(inputs: Record<string, HostTensor>, io?: { profile?: RunProfiler }): unknown },
  artifact: Pick<Artifact, "inputs" | "kernels">,
  minClockReads: number,
): RunProfiler {
  const data = namedInputs(artifact.inputs);
  const now = vi.spyOn(performance, "now");
  runner.run(data);
  expect(now).toHaveBeenCalledTimes(0);
  const profile = newRunProfiler(artifact.kernels.length);
  runner.run(data, { profile });
  expect(now.mock.calls.length).toBeGreaterThan(minClockReads);
  expect(profile.kernelCalls).toEqual(artifact.kernels.map(() => 1));
  return profile;
}

describe("profiling off reads no clock", () => {
  test("js: a plain run makes no performance.now call; a profiled one times each kernel", () => {
    const artifact = compileJs(graph).artifact;
    runPlainThenProfiled(new JsArtifactRunner(artifact), artifact, artifact.kernels.length);
  });

  test.each([1, 2])("wasm, %i thread(s): a plain run makes no performance.now call", async (threads) => {
    const artifact = compileWasm(graph).artifact;
    const runner = await WasmArtifactRunner.create(artifact, { threads, minParallelWork: 1 });
    try {
      const profile = runPlainThenProfiled(runner, artifact, 0);
      // Each thread times its own chunk (minParallelWork 1: every section is split).
      expect(profile.threads).toBe(threads);
      expect(profile.threadBusyMs?.length).toBe(artifact.kernels.length);
      for (const ms of profile.threadBusyMs!) expect(ms).toBeGreaterThanOrEqual(0);
    } finally {
      await runner.close();
    }
  });
});

describe("wasm timeIo: a run's parts timed only when asked", () => {
  test("four clock reads around write, execute and read give io.times; a plain run after it reads none and has no times", async () => {
    const artifact = compileWasm(graph).artifact;
    const runner = await WasmArtifactRunner.create(artifact, { threads: 1 });
    try {
      const data = namedInputs(artifact.inputs);
      const clock = [10, 13, 20, 21.5];
      const now = vi.spyOn(performance, "now").mockImplementation(() => clock.shift()!);
      runner.run(data, { timeIo: true });
      expect(now).toHaveBeenCalledTimes(4);
      expect(runner.io.times).toEqual({ writeMs: 3, executeMs: 7, readMs: 1.5 });
      now.mockClear();
      runner.run(data);
      expect(now).toHaveBeenCalledTimes(0);
      expect(runner.io.times).toBeUndefined();
    } finally {
      await runner.close();
    }
  });
});

describe.skipIf(!gpu.available)("webgpu pipelines and profiling", () => {
  const device = () => gpu.context!.device;

  test("a plain run submits once and creates no query set; a profiled run does", async () => {
    const artifact = compileWebGpu(graph, { limits: gpu.context!.limits }).artifact;
    expect(artifact.kernels.length).toBeGreaterThan(1);
    const runner = await WebGpuArtifactRunner.create(device(), artifact);
    try {
      const data = namedInputs(artifact.inputs);
      const submit = vi.spyOn(device().queue, "submit");
      const querySets = vi.spyOn(device(), "createQuerySet");
      const now = vi.spyOn(performance, "now");
      await runner.run(data);
      expect(submit).toHaveBeenCalledTimes(1);
      expect(querySets).toHaveBeenCalledTimes(0);
      expect(now).toHaveBeenCalledTimes(0);
      const profile = newRunProfiler(artifact.kernels.length);
      await runner.run(data, { profile });
      expect(submit.mock.calls.length).toBeGreaterThan(1);
      expect(profile.kernelCalls).toEqual(artifact.kernels.map(() => 1));
      if (device().features.has("timestamp-query")) {
        expect(profile.clock).toBe("device-timestamps");
        expect(querySets).toHaveBeenCalledTimes(1);
      } else expect(profile.clock).toBe("host-per-submission");
      // Profiling again reuses its query set; a plain run after it is plain again.
      submit.mockClear();
      querySets.mockClear();
      await runner.run(data, { profile });
      await runner.run(data);
      expect(querySets).toHaveBeenCalledTimes(0);
      expect(submit.mock.calls.length).toBeGreaterThan(1);
    } finally {
      runner.destroy();
    }
  });

  test("on a device without timestamp-query each kernel is a submission of its own, timed on the host", async () => {
    const adapter = await gpu.context!.gpu.requestAdapter();
    const plain = await adapter!.requestDevice();
    expect(plain.features.has("timestamp-query")).toBe(false);
    const artifact = compileWebGpu(graph).artifact;
    const runner = await WebGpuArtifactRunner.create(plain, artifact);
    try {
      const data = namedInputs(artifact.inputs);
      const submit = vi.spyOn(plain.queue, "submit");
      const querySets = vi.spyOn(plain, "createQuerySet");
      const profile = newRunProfiler(artifact.kernels.length);
      const out = await runner.run(data, { profile });
      expect(profile.clock).toBe("host-per-submission");
      expect(profile.kernelCalls).toEqual(artifact.kernels.map(() => 1));
      expect(querySets).toHaveBeenCalledTimes(0);
      // The upload, one per kernel, the readback.
      expect(submit).toHaveBeenCalledTimes(artifact.kernels.length + 2);
      // Same results as a plain run.
      const again = await runner.run(data);
      for (const name of Object.keys(again)) expect(Array.from(out[name]!.data)).toEqual(Array.from(again[name]!.data));
    } finally {
      runner.destroy();
      plain.destroy();
    }
  });

  test("pipelines are created asynchronously; progress reports done/total up to the last", async () => {
    // A constant and shapes no other test uses: these kernels' pipelines are new to the device's
    // cache (which shares a pipeline between kernels equal but for names and comments).
    const fresh = traceFunction("fresh", (x: k.Tensor, w: k.Tensor) => k.softmax(k.matmul(x, w).mul(1.2345678), -1), [k.f32([4, 13]), k.f32([13, 7])]).graph;
    const artifact = compileWebGpu(fresh, { limits: gpu.context!.limits }).artifact;
    const sync = vi.spyOn(device(), "createComputePipeline");
    const before = webGpuPipelineCounts().async;
    const reports: PipelineProgress[] = [];
    const runner = await WebGpuArtifactRunner.create(device(), artifact, { progress: (p) => reports.push(p), progressAfterMs: 0 });
    runner.destroy();
    expect(sync).toHaveBeenCalledTimes(0);
    expect(webGpuPipelineCounts().async - before).toBe(new Set(artifact.kernels.map((kk) => pipelineKey(kk.source))).size);
    expect(reports.map((r) => r.done)).toEqual(artifact.kernels.map((_, i) => i + 1));
    for (const r of reports) expect(r.total).toBe(artifact.kernels.length);
    expect(formatPipelineProgress({ done: 3, total: 8, elapsedMs: 1450 })).toBe("webgpu pipelines 3/8, 1.4 s");
    expect(formatPipelineProgress({ done: 8, total: 8, elapsedMs: 2000 })).toBe("webgpu pipelines 8/8, 2.0 s (done)");
  });

  test("quietWait: pipelines are created on the calling thread and each warm-up is waited for through a probe of its own (no pending async call, so no polling loop); progress and results as without", async () => {
    // Shapes and a constant no other test uses: these pipelines are new to the device.
    const fresh = traceFunction("fresh_quiet", (x: k.Tensor, w: k.Tensor) => k.softmax(k.matmul(x, w).mul(2.3456789), -1), [
      k.f32([4, 11]),
      k.f32([11, 6]),
    ]).graph;
    const artifact = compileWebGpu(fresh, { limits: gpu.context!.limits }).artifact;
    const distinct = new Set(artifact.kernels.map((kk) => pipelineKey(kk.source))).size;
    const workDone = vi.spyOn(device().queue, "onSubmittedWorkDone");
    const reports: PipelineProgress[] = [];
    const before = webGpuPipelineCounts();
    const quiet = await WebGpuArtifactRunner.create(device(), artifact, { quietWait: true, progress: (p) => reports.push(p), progressAfterMs: 0 });
    expect(workDone).toHaveBeenCalledTimes(0);
    // Created on the calling thread, each warmed at once (a pending createComputePipelineAsync would keep Dawn polling).
    expect(webGpuPipelineCounts().sync - before.sync).toBe(distinct);
    expect(webGpuPipelineCounts().async - before.async).toBe(0);
    expect(quiet.warmUpStats.dispatches).toBe(distinct);
    expect(quiet.warmUpStats.quiet).toBe(true);
    expect(reports.map((r) => r.done)).toEqual(artifact.kernels.map((_, i) => i + 1));
    // The same kernels again: their pipelines are the device's already, nothing to warm up.
    const plain = await WebGpuArtifactRunner.create(device(), artifact);
    expect(plain.warmUpStats).toEqual({ dispatches: 0, quiet: false, cancelledMaps: 0 });
    try {
      const data = namedInputs(artifact.inputs);
      const got = (await quiet.run(data)) as Record<string, HostTensor>;
      const want = (await plain.run(data)) as Record<string, HostTensor>;
      // Bit for bit as the runner that waited the plain way, and softmax(2.3456789 · x·w) by hand in float64.
      const x = data["x"]!;
      const w = data["w"]!;
      const name = "out";
      expect(Array.from(got[name]!.data)).toEqual(Array.from(want[name]!.data));
      for (let r = 0; r < 4; r++) {
        const logits = Array.from(
          { length: 6 },
          (_, c) => 2.3456789 * Array.from({ length: 11 }, (_, j) => x.data[r * 11 + j]! * w.data[j * 6 + c]!).reduce((a, b) => a + b, 0),
        );
        const m = Math.max(...logits);
        const e = logits.map((v) => Math.exp(v - m));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let c = 0; c < 6; c++) expect(got[name]!.data[r * 6 + c]!).toBeCloseTo(e[c]! / sum, 5);
      }
    } finally {
      quiet.destroy();
      plain.destroy();
    }
    // A kernel that does not compile fails the creation, named, with the compiler's message, as on the async path.
    const kernels = artifact.kernels.map((kk, i) =>
      i === 0 ? { ...kk, source: kk.source.replace("fn main(", "fn kiln_broken() -> f32 { return 1u; }\nfn main(") } : kk,
    );
    await expect(WebGpuArtifactRunner.create(device(), { ...artifact, kernels }, { quietWait: true })).rejects.toThrow(
      new RegExp(`kernel ${artifact.kernels[0]!.name} does not compile: [^]*kiln_broken`),
    );
  });

  test("k.compile passes a progress reporter through; a quick creation under the threshold reports nothing", async () => {
    const reports: PipelineProgress[] = [];
    const fn = (x: k.Tensor) => k.exp(x.mul(2.7182)).sum();
    await k.compile(fn, [k.f32([64])], { target: "webgpu", progress: (p: PipelineProgress) => reports.push(p), progressAfterMs: 0 });
    expect(reports.length).toBeGreaterThan(0);
    expect(reports.at(-1)!.done).toBe(reports.at(-1)!.total);
    const none: PipelineProgress[] = [];
    await k.compile(fn, [k.f32([64])], { target: "webgpu", progress: (p: PipelineProgress) => none.push(p), progressAfterMs: 1e9 });
    expect(none).toEqual([]);
  });
});
