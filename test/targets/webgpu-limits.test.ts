// Adapter limits on the webgpu target, forced small through the `limits` option: a kernel
// binding more buffers than maxStorageBuffersPerShaderStage is split or packs buffers (and
// still matches the interpreter), a dispatch over maxComputeWorkgroupsPerDimension is folded
// into y/z, and a tensor over maxStorageBufferBindingSize is refused at compile time by name.

import { HyperStore } from "../../dsl/hyper.ts";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu, effectiveLimits } from "../../targets/webgpu.ts";
import { webGpuDefaultLimits, type WebGpuLimits } from "../../codegen/wgsl/layout.ts";
import { foldWorkgroups } from "../../codegen/wgsl/dispatch.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { rejectedKilnError, thisLine } from "../util/kiln-error.ts";

const env = await webGpuTestEnv();
const f = k.f32;

const limits = (over: Partial<WebGpuLimits>): WebGpuLimits => ({ ...webGpuDefaultLimits, ...over });

function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  // Non-negative (Adam's second moment is an input); i32 inputs are step counts.
  return graphInputs(g, ({ dtype, count }) =>
    dtype === "f32"
      ? Float64Array.from({ length: count }, (_, j) => Math.fround(Math.abs(Math.sin(++n + j * 0.37))))
      : dtype === "i32"
        ? new Int32Array(count).fill(1) /* an optimizer step count */
        : new Uint8Array(count),
  );
}

async function expectMatches(g: Graph, lim: WebGpuLimits, given: Record<string, HostTensor> = {}): Promise<void> {
  const compiled = compileWebGpu(g, { verify: true, limits: lim });
  await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, { ...inputsOf(g), ...given });
}

// Ten inputs summed into one output: a single section binding 11 buffers.
const manyInputs = (...xs: k.Tensor[]) => xs.reduce((acc, x, j) => acc.add(x.mul(j + 1)));
const manyGraph = () =>
  k.traceFunction(
    "many",
    manyInputs as never,
    Array.from({ length: 10 }, () => f([3, 5])),
  ).graph;

describe("webgpu limits: codegen (no device needed)", () => {
  test("a section binding 11 buffers under a limit of 4 packs the smallest into one shared u32 buffer", () => {
    const { artifact } = compileWebGpu(manyGraph(), { limits: limits({ maxStorageBuffersPerShaderStage: 4 }) });
    for (const kk of artifact.kernels) expect(kk.bindings!.length).toBeLessThanOrEqual(4);
    const source = artifact.kernels.map((kk) => kk.source).join("\n");
    expect(source).toMatch(/array<u32>/);
    expect(source).toMatch(/bitcast<f32>\(g\d+\[\d+ \+ /);
  });

  test("independent sections over the binding limit are split into separate dispatches", () => {
    // Two outputs from disjoint inputs: horizontal fusion puts them in one kernel with two sections.
    const fn = (a: k.Tensor, b: k.Tensor, c: k.Tensor, d: k.Tensor) => [a.add(b), c.mul(d)];
    const g = k.traceFunction("pair", fn as never, [f([4]), f([4]), f([4]), f([4])]).graph;
    const wide = compileWebGpu(g, { limits: limits({ maxStorageBuffersPerShaderStage: 8 }) }).artifact;
    const narrow = compileWebGpu(g, { limits: limits({ maxStorageBuffersPerShaderStage: 3 }) }).artifact;
    expect(wide.kernels.length).toBe(1);
    expect(narrow.kernels.map((kk) => kk.name)).toEqual([`${wide.kernels[0]!.name}_part0`, `${wide.kernels[0]!.name}_part1`]);
    for (const kk of narrow.kernels) expect(kk.bindings!.length).toBe(3);
  });

  test("workgroup counts fold over y and z under maxComputeWorkgroupsPerDimension", () => {
    expect(foldWorkgroups(10, "k", 16)).toEqual([10, 1, 1]);
    expect(foldWorkgroups(100, "k", 16)).toEqual([16, 7, 1]);
    expect(foldWorkgroups(300, "k", 16)).toEqual([16, 16, 2]);
    expect(() => foldWorkgroups(16 ** 3 + 1, "k9", 16)).toThrow(/kernel k9 needs 4097 workgroups, more than 16³/);
    // 40 workgroups of 64 threads, each thread taking 4 elements (the vector form).
    const g = k.traceFunction("big", ((x: k.Tensor) => x.exp()) as never, [f([64 * 40 * 4])]).graph;
    const kernel = compileWebGpu(g, { limits: limits({ maxComputeWorkgroupsPerDimension: 16 }) }).artifact.kernels[0]!;
    expect(kernel.workgroups).toEqual([16, 3, 1]);
  });

  test("a tensor over maxStorageBufferBindingSize is refused at compile time, naming it", () => {
    const g = k.traceFunction("wide", ((weights: k.Tensor) => weights.relu()) as never, [f([300])]).graph;
    expect(() => compileWebGpu(g, { limits: limits({ maxStorageBufferBindingSize: 1024 }) })).toThrow(
      /tensor '.*' \(f32\[300\], 1200 bytes on the device\) exceeds this device's maxStorageBufferBindingSize \(1024 bytes\)/,
    );
  });

  test("caller limits lower the device's, never raise them", () => {
    const device = { ...webGpuDefaultLimits, maxStorageBuffersPerShaderStage: 10 } as unknown as GPUSupportedLimits;
    expect(effectiveLimits(device, { maxStorageBuffersPerShaderStage: 4, maxBufferSize: 1e12 })).toMatchObject({
      maxStorageBuffersPerShaderStage: 4,
      maxBufferSize: webGpuDefaultLimits.maxBufferSize,
    });
  });
});

describe.skipIf(!env.available)("webgpu limits option at k.compile", () => {
  test("a misspelt limit is refused by name at the caller's line (it was dropped), and a limit must be a whole number ≥ 1", async () => {
    const line = thisLine() + 1;
    const e = await rejectedKilnError(k.compile((x: k.Tensor) => x.mul(2), [k.f32([4])], { target: "webgpu", limits: { maxBufferSise: 64 } as never }));
    expect(e.message).toContain("webgpu option limits: unknown option 'maxBufferSise'");
    expect(e.message).toContain("did you mean 'maxBufferSize'?");
    expect(e.diag.loc?.line).toBe(line);
    const device = webGpuDefaultLimits as unknown as GPUSupportedLimits;
    for (const v of [0, 1.5, Number.NaN])
      expect(() => effectiveLimits(device, { maxBufferSize: v })).toThrow(`webgpu option limits.maxBufferSize: must be a whole number ≥ 1, got ${v}`);
  });
});

describe.skipIf(!env.available)("webgpu limits: on the device", () => {
  test("packed buffers (limit 4, then 2) still match the interpreter", async () => {
    await expectMatches(manyGraph(), limits({ maxStorageBuffersPerShaderStage: 4 }));
    await expectMatches(manyGraph(), limits({ maxStorageBuffersPerShaderStage: 2 }));
  });

  test("a folded dispatch (16 workgroups per dimension) covers every element", async () => {
    const g = k.traceFunction("fold", ((x: k.Tensor) => x.mul(2).add(1).softmax(-1)) as never, [f([300, 11])]).graph;
    await expectMatches(g, limits({ maxComputeWorkgroupsPerDimension: 16 }));
  });

  test("an MLP Adam step under 4 storage buffers and 16 workgroups per dimension", async () => {
    const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.mseLoss(logits, y!), k.optim.adam({ lr: 1e-2 }));
    const traced = k.traceFunction("step", step as never, [f([8, 12]), f([8, 4])]);
    // The hyperparameters at their defaults (arbitrary values would make β > 1 and the step NaN).
    await expectMatches(
      traced.graph,
      limits({ maxStorageBuffersPerShaderStage: 4, maxComputeWorkgroupsPerDimension: 16 }),
      new HyperStore(traced.hyper).inputs(),
    );
  });
});
