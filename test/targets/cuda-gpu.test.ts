// The cuda target on a device, against the float64 interpreter: op, composite and gradient
// graphs, a training step and a fuzz subset, through runtime/cuda and the addon. Skips where
// CUDA cannot run. bench/gpu-check.sh runs it on a GPU; test/targets/cuda-runtime.test.ts runs
// it here over a fake libcuda.so.1 that emulates the kernels on the CPU (KILN_FAKE_CUDA=1).

import { beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { compileToPtx, cudaAvailable, CudaArtifactRunner, openCuda } from "../../runtime/cuda/index.ts";
import { buildEmulatedKernelLibrary } from "../util/nvcc.ts";
import { FULL } from "../util/full.ts";
import { fuzzCases, modelCases, opCases, representativeOpCases, type CudaCase } from "./cuda-cases.ts";
import { asStored, firstMismatch } from "./op-cases.ts";

const fake = process.env["KILN_FAKE_CUDA"] === "1";
const FUZZ_SEEDS = Number(process.env["KILN_CUDA_FUZZ_SEEDS"] ?? 40);

function mismatches(c: CudaCase, got: Readonly<Record<string, HostTensor>>): string[] {
  const want = interpret(c.graph, c.inputs);
  const problems: string[] = [];
  for (const o of c.graph.outputs) {
    const bad = firstMismatch(got[o.name]!.data, asStored(want[o.name]!), c.atol, c.rtol, "cuda");
    if (bad) problems.push(`${c.name}: ${o.name}: ${bad}`);
  }
  return problems;
}

const groups: { readonly label: string; readonly cases: () => CudaCase[] }[] = [
  // Over the fake driver (CPU emulation) `npm test` runs the representative subset; a GPU runs all.
  { label: "ops, composites and gradients", cases: fake && !FULL ? representativeOpCases : opCases },
  { label: "an Adam step of an MLP", cases: modelCases },
  { label: `fuzz graphs, seeds 0-${FUZZ_SEEDS - 1}`, cases: () => fuzzCases(Array.from({ length: FUZZ_SEEDS }, (_, s) => s)) },
];

// k.compile through the target registry: traced here so the fake driver's library can hold its kernels.
const viaCompile = { fn: (x: k.Tensor, w: k.Tensor) => x.matmul(w).relu().softmax(-1), specs: [k.f32([4, 6]), k.f32([6, 70])] };

describe.runIf(cudaAvailable())(`cuda target on ${fake ? "a fake driver (CPU emulation)" : "the GPU"} matches the interpreter`, () => {
  const problems = new Map<string, string[]>();

  beforeAll(() => {
    const device = openCuda();
    const all = groups.flatMap((g) => g.cases().map((c) => ({ group: g.label, c })));
    const artifacts = all.map(({ c }, i) => compileCuda(c.graph, { symbolPrefix: `c${i}_` }).artifact);
    if (fake) {
      const compileGraph = k.traceFunction("via_compile", viaCompile.fn as never, viaCompile.specs).graph;
      process.env["KILN_FAKE_CUDA_KERNELS"] = buildEmulatedKernelLibrary([...artifacts, compileCuda(compileGraph, { symbolPrefix: "viacompile_" }).artifact]);
    }
    // One module for every case: one PTX compile and one JIT load instead of one per case.
    const ptx = compileToPtx(device, [CUDA_PRELUDE, ...artifacts.flatMap((a) => a.kernels.map((kk) => kk.source))].join("\n"), "cuda_gpu_test");
    for (const g of groups) problems.set(g.label, []);
    all.forEach(({ group, c }, i) => {
      try {
        const got = new CudaArtifactRunner(device, artifacts[i]!, ptx).run(c.inputs);
        problems.get(group)!.push(...mismatches(c, got as Record<string, HostTensor>));
      } catch (e) {
        problems.get(group)!.push(`${c.name}: threw ${(e as Error).message}`);
      }
    });
  }, 600_000);

  test.each(groups.map((g) => [g.label] as const))("%s", (label) => {
    expect(problems.get(label)).toEqual([]);
  });

  test("k.compile(..., { target: 'cuda' }) runs through the registry, nvcc and the addon", async () => {
    const exe = await k.compile(viaCompile.fn, viaCompile.specs, { target: "cuda", name: "via_compile", symbolPrefix: "viacompile_" });
    expect(exe.target).toBe("cuda");
    const x = Array.from({ length: 24 }, (_, i) => Math.sin(i));
    const w = Array.from({ length: 420 }, (_, i) => Math.cos(i * 0.37));
    const got = (await exe.run([x, w])) as { data: ArrayLike<number> };
    const ref = await k.compile(viaCompile.fn, viaCompile.specs, { target: "reference" });
    const want = (await ref.run([x, w])) as { data: ArrayLike<number> };
    for (let j = 0; j < want.data.length; j++) expect(Math.abs(got.data[j]! - want.data[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want.data[j]!));
    // exe.profile: CUDA events around every kernel, one call per step, the matmul's 2·M·K·N among the operations.
    const p = await exe.profile([x, w], { steps: 2, peaks: false });
    expect(p.clock).toBe("cuda-events");
    expect(p.kernels.map((kp) => kp.name)).toEqual(exe.artifact!.kernels.map((kk) => kk.name));
    for (const kp of p.kernels) {
      expect(kp.calls, kp.name).toBe(2);
      expect(kp.totalMs, kp.name).toBeGreaterThanOrEqual(0);
    }
    expect(p.kernels.reduce((a, kp) => a + kp.flops, 0)).toBeGreaterThanOrEqual(2 * 4 * 6 * 70);
  }, 120_000);
});
