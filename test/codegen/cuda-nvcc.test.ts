// Every kernel generated for the op, gradient, model and fuzz graphs (and the f16/bf16 subset) compiles with
// `nvcc -ptx` for sm_80 and sm_90, warnings as errors (one module per architecture holds all
// of them, each distinct kernel once: nvcc costs seconds per call). Without nvcc the suite skips with a notice, unless
// KILN_REQUIRE_NVCC=1 (CI), where a missing nvcc fails.

import { describe, test } from "vitest";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { traceProgram } from "../../dsl/program.ts";
import * as mlp from "../../examples/mlp.ts";
import { findNvcc, nvccPtxAsync } from "../util/nvcc.ts";
import { fuzzCases, halfOpCases, mmaCases, modelCases, opCases } from "../targets/cuda-cases.ts";

const nvcc = findNvcc();
if (!nvcc) console.log("cuda-nvcc.test: nvcc not found, skipping PTX compilation (set KILN_REQUIRE_NVCC=1 to fail instead)");

function moduleSource(): { source: string; kernels: number } {
  const graphs = [
    ...opCases().map((c) => c.graph),
    ...halfOpCases().map((c) => c.graph),
    ...mmaCases().map((c) => c.graph),
    ...modelCases().map((c) => c.graph),
    traceProgram(mlp.trainStep, "trainStep").graph,
    traceProgram(mlp.forward, "forward").graph,
  ];
  // Fuzz graphs in the default strategy only: the op graphs already cover every strategy.
  const fuzz = fuzzCases(Array.from({ length: 120 }, (_, s) => s)).map((c) => c.graph);
  const parts = [CUDA_PRELUDE];
  // A kernel whose text equals one already in the module but for its symbol prefix (a strategy
  // that renders a section as another does, the same section in two graphs) would compile to
  // the same PTX under another name: it goes in once (a fifth of the kernels; cicc's time
  // follows the source's size).
  const seen = new Set<string>();
  [...graphs, ...fuzz].forEach((g, gi) => {
    for (const reduction of gi < graphs.length ? (["auto", "serial", "warp"] as const) : (["auto"] as const)) {
      const symbolPrefix = `g${gi}_${reduction}_`;
      for (const k of compileCuda(g, { reduction, symbolPrefix }).artifact.kernels) {
        const text = k.source.replaceAll(symbolPrefix, "");
        if (seen.has(text)) continue;
        seen.add(text);
        parts.push(k.source);
      }
    }
  });
  return { source: parts.join("\n"), kernels: seen.size };
}

// The three nvcc runs go side by side (describe.concurrent): each is one single-threaded process.
describe.runIf(nvcc !== undefined).concurrent("generated CUDA compiles with nvcc", () => {
  const { source, kernels } = nvcc ? moduleSource() : { source: "", kernels: 0 };
  test.for(["sm_80", "sm_90"])("%s: every kernel of the op, gradient, model and fuzz graphs", { timeout: 300_000 }, async (arch, { expect }) => {
    expect(kernels).toBeGreaterThan(300);
    const r = await nvccPtxAsync(nvcc!, source, arch);
    if (!r.ok) throw new Error(`nvcc -ptx -arch=${arch} failed:\n${r.log.slice(0, 4000)}`);
    // One .entry per kernel: nothing was dropped.
    expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(kernels);
    // 16-bit tensors go through cuda_fp16.h / cuda_bf16.h: their conversions are single PTX instructions.
    for (const cvt of ["cvt.rn.f16.f32", "cvt.f32.f16", "cvt.rn.bf16.f32"]) expect(r.ptx).toContain(cvt);
    // The tensor-core form of mmaCases' 16-bit matmuls (codegen/cuda/mma-tile.ts).
    for (const format of ["f16", "bf16"]) expect(r.ptx).toContain(`mma.sync.aligned.m16n8k16.row.col.f32.${format}.${format}.f32`);
  });
  // Where NVRTC finds no cuda_fp16.h, the prelude's stand-ins (integer conversions) must compile too.
  test("sm_80: the f16/bf16 kernels with the prelude's header-free stand-ins", async ({ expect }) => {
    const parts = ["#define KILN_FP16_STANDIN", CUDA_PRELUDE];
    // Two cases per dtype (elementwise, matmul): the conversions are the same in every kernel.
    const cases = halfOpCases().filter((c) => /add\/sub\/mul\/div|matmul 2-d/.test(c.name));
    expect(cases.length).toBe(4);
    cases.forEach((c, i) => {
      for (const k of compileCuda(c.graph, { symbolPrefix: `h${i}_` }).artifact.kernels) parts.push(k.source);
    });
    const kernels = parts.length - 2;
    const r = await nvccPtxAsync(nvcc!, parts.join("\n"), "sm_80");
    if (!r.ok) throw new Error(`nvcc -ptx with KILN_FP16_STANDIN failed:\n${r.log.slice(0, 4000)}`);
    expect(r.ptx).not.toContain("cvt.rn.f16.f32");
    expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(kernels);
  }, 300_000);
});
