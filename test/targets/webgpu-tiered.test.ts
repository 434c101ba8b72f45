// Tiered start on a CPU adapter (WebGpuArtifactKernel.quick, issue 15 item 4): register
// matmuls carry a 2x4-block variant that lavapipe compiles in about half the time; the runner
// starts with it and swaps the tuned 8x8 kernel in between runs once that has compiled. Each
// output is the same fma chain over k either way, so a training run gives the same bits
// whichever kernels ran: checked step by step against a runner without quick variants, and
// against the float64 interpreter.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { HyperStore } from "../../dsl/hyper.ts";
import { parseManifest } from "../../runtime/artifact/manifest.ts";
import { WebGpuArtifactRunner, webGpuPipelineCounts } from "../../runtime/webgpu/run-artifact.ts";
import { rememberHyper } from "./op-cases.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const env = await webGpuTestEnv();
const F = k.nn.functional;

function smallTrainStep(hidden = 48): { graph: Graph; state: Record<string, HostTensor> } {
  const net = k.nn.sequential(k.nn.linear(40, hidden), k.nn.relu(), k.nn.linear(hidden, 24));
  const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
  const traced = k.traceFunction("tiered_step", step as never, { x: k.f32([32, 40]), y: k.i32([32]) });
  rememberHyper(traced);
  const state = { ...Object.fromEntries([...traced.state].map(([n, init]) => [n, init()])), ...new HyperStore(traced.hyper).inputs() };
  return { graph: traced.graph, state };
}

// Every contraction as a register matmul (8x8 blocks, the CPU adapter's default), so each has a quick variant.
const FORMS = { tiledMatmul: "always", tuning: { kind: "cpu" }, quickStart: true } as const;

describe("quick variants (no device)", () => {
  const { graph } = smallTrainStep();

  test("a CPU adapter's register matmuls carry a 2x4 variant over the same bindings (by default); a hardware adapter's and quickStart: false none", () => {
    const kernels = compileWebGpu(graph, FORMS).artifact.kernels;
    const quick = kernels.filter((kk) => kk.quick);
    expect(quick.length).toBe(kernels.filter((kk) => /register-blocked matmul, 8x8/.test(kk.source)).length);
    expect(quick.length).toBeGreaterThanOrEqual(3); // forward, and the backward's two products
    for (const kk of quick) expect(kk.quick!.source).toMatch(/register-blocked matmul, 2x4 outputs per thread/);
    // A tuned matmul stepping k by vec4s (kVectors; a CPU adapter's default for x·Wᵀ from k = 1024) has a quick
    // variant stepping k one at a time: vec4 loads cost lavapipe's compile about three scalar loads each (docs/webgpu.md).
    const vectorK = compileWebGpu(graph, { ...FORMS, kVectors: "always" }).artifact.kernels.filter((kk) => kk.quick);
    expect(vectorK.some((kk) => /k in vec4 steps/.test(kk.source))).toBe(true);
    for (const kk of vectorK) expect(kk.quick!.source).toMatch(/k unrolled by 1/);
    expect(compileWebGpu(graph, { ...FORMS, quickStart: false }).artifact.kernels.some((kk) => kk.quick)).toBe(false);
    expect(compileWebGpu(graph, { tiledMatmul: "always", tuning: { kind: "cpu" } }).artifact.kernels.filter((kk) => kk.quick).length).toBe(quick.length);
    expect(compileWebGpu(graph, { tiledMatmul: "always", matmulForm: "registers", tuning: { kind: "discrete" } }).artifact.kernels.some((kk) => kk.quick)).toBe(
      false,
    );
  });

  test("a manifest's kernel entry carries its quick variant; a malformed one is refused naming the field", () => {
    const entry = { file: "kernels/k0.wgsl" };
    const manifest = (quick: unknown) =>
      JSON.stringify({
        schemaVersion: 1,
        format: "kiln-artifact",
        name: "m",
        target: "webgpu",
        graphHash: "h",
        inputs: [],
        outputs: [],
        buffers: [],
        kernels: [{ ...entry, quick }],
        files: { "kernels/k0.wgsl": "0".repeat(64) },
      });
    expect(parseManifest(manifest({ source: "// quick", workgroups: [2, 1, 1] })).kernels[0]).toMatchObject({ quick: { workgroups: [2, 1, 1] } });
    expect(() => parseManifest(manifest({ source: "// quick", workgroups: [2, 1] }))).toThrow(/kernels\[0\]\.quick is not/);
  });
});

describe.skipIf(!env.available)("tiered start on the device", () => {
  test("three SGD steps: the first runs the quick kernels, every later one the tuned kernels only — the same bits as a runner without quick variants, and the interpreter's values", async () => {
    const { graph, state } = smallTrainStep();
    const device = env.context!.device;
    const tiered = compileWebGpu(graph, FORMS).artifact;
    const plain = compileWebGpu(graph, { ...FORMS, quickStart: false }).artifact;
    const quickCount = tiered.kernels.filter((kk) => kk.quick).length;
    // The tiered runner first: the plain one's pipelines are the tuned ones (one cache per device).
    const a = await WebGpuArtifactRunner.create(device, tiered);
    expect(a.quickKernels).toBe(quickCount);
    const b = await WebGpuArtifactRunner.create(device, plain);
    expect(b.quickKernels).toBe(0);

    let n = 0;
    const batch = (): Record<string, HostTensor> => ({
      x: { dtype: "f32", shape: [32, 40], data: Float64Array.from({ length: 32 * 40 }, () => Math.fround(Math.sin(++n * 0.37))) },
      y: { dtype: "i32", shape: [32], data: Int32Array.from({ length: 32 }, (_, i) => (i * 5 + n) % 24) },
    });
    // Each step's state inputs are the previous step's outputs that update them.
    const next = (inputs: Record<string, HostTensor>, out: Record<string, HostTensor>): Record<string, HostTensor> => {
      const updated = { ...inputs };
      for (const o of graph.outputs) if (o.aliases !== undefined) updated[o.aliases] = out[o.name]!;
      return updated;
    };
    let stateA: Record<string, HostTensor> = { ...state };
    let stateB: Record<string, HostTensor> = { ...state };
    let stateRef: Record<string, HostTensor> = { ...state };
    // Per step: the dispatches that ran a quick variant (the runner counts what each launch ran).
    const quickRan: number[] = [];
    for (let step = 0; step < 3; step++) {
      const inputs = batch();
      const before = a.dispatchStats.quickDispatches;
      const gotA = (await a.run({ ...stateA, ...inputs })) as Record<string, HostTensor>;
      quickRan.push(a.dispatchStats.quickDispatches - before);
      const gotB = (await b.run({ ...stateB, ...inputs })) as Record<string, HostTensor>;
      const want = interpret(graph, { ...stateRef, ...inputs });
      for (const o of graph.outputs) {
        expect(Array.from(gotA[o.name]!.data), `${o.name} at step ${step}`).toEqual(Array.from(gotB[o.name]!.data));
        const e = want[o.name]!.data;
        const got = gotA[o.name]!.data;
        for (let j = 0; j < e.length; j++)
          expect(Math.abs(got[j]! - e[j]!), `${o.name}[${j}] at step ${step}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(e[j]!));
      }
      stateA = next({ ...stateA, ...inputs }, gotA);
      stateB = next({ ...stateB, ...inputs }, gotB);
      stateRef = next({ ...stateRef, ...inputs }, want);
    }
    // No waiting for the swap (no whenTuned): the second run already runs no quick kernel.
    expect(quickRan).toEqual([quickCount, 0, 0]);
    expect(a.quickKernels).toBe(0);
    expect(b.dispatchStats.quickDispatches).toBe(0);
    a.destroy();
    b.destroy();
  }, 120_000);

  test("a CPU adapter's runner (quietWait) starts no pipeline creation as the first run ends: the tuned ones are made on the calling thread when the second run starts", async () => {
    // Another width than the other tests': no tuned pipeline of these kernels is cached on the device yet.
    const { graph, state } = smallTrainStep(56);
    const device = env.context!.device;
    const tiered = compileWebGpu(graph, FORMS).artifact;
    const quickCount = tiered.kernels.filter((kk) => kk.quick).length;
    const runner = await WebGpuArtifactRunner.create(device, tiered, { quietWait: true });
    expect(runner.quickKernels).toBe(quickCount);
    const inputs = {
      ...state,
      x: { dtype: "f32" as const, shape: [32, 40], data: new Float32Array(32 * 40).fill(0.25) },
      y: { dtype: "i32" as const, shape: [32], data: new Int32Array(32).fill(3) },
    };
    const atStart = webGpuPipelineCounts();
    await runner.run(inputs);
    // Nothing left in Dawn's threads for a process that exits now (it could print a broken SPIR-V dump as it did).
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(webGpuPipelineCounts()).toEqual(atStart);
    const before = runner.dispatchStats.quickDispatches;
    await runner.run(inputs);
    expect(runner.dispatchStats.quickDispatches - before).toBe(0);
    const after = webGpuPipelineCounts();
    expect(after.async).toBe(atStart.async);
    expect(after.sync - atStart.sync).toBeGreaterThan(0);
    expect(after.sync - atStart.sync).toBeLessThanOrEqual(quickCount);
    runner.destroy();
  }, 120_000);

  test("a tuned source that does not compile fails the second run, naming the kernel; later runs keep its quick variant", async () => {
    const { graph, state } = smallTrainStep();
    const device = env.context!.device;
    const tiered = compileWebGpu(graph, FORMS).artifact;
    const broken = tiered.kernels.findIndex((kk) => kk.quick);
    // A tuned source no other kernel has (so no cached pipeline stands in for it), with a type error.
    const kernels = tiered.kernels.map((kk, i) =>
      i === broken ? { ...kk, source: kk.source.replace("fn main(", "fn kiln_broken() -> f32 { return 1u; }\nfn main(") } : kk,
    );
    const runner = await WebGpuArtifactRunner.create(device, { ...tiered, kernels });
    const inputs = {
      ...state,
      x: { dtype: "f32" as const, shape: [32, 40], data: new Float32Array(32 * 40).fill(0.5) },
      y: { dtype: "i32" as const, shape: [32], data: new Int32Array(32) },
    };
    await runner.run(inputs);
    await expect(runner.run(inputs)).rejects.toThrow(new RegExp(`kernel ${tiered.kernels[broken]!.name} does not compile`));
    const before = runner.dispatchStats.quickDispatches;
    await runner.run(inputs);
    expect(runner.dispatchStats.quickDispatches - before).toBe(1);
    expect(runner.quickKernels).toBe(1);
    runner.destroy();
  }, 120_000);
});
