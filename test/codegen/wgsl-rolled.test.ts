// Rolled loops (codegen/wgsl/dialect.ts's OPAQUE_ZERO): for a CPU adapter every loop with a
// constant trip count gets the bound `extent + kiln_zero`, which lavapipe's compiler cannot
// unroll (its JIT time grows with every unrolled storage access: issue 15 item 4). Checked
// without a device on the generated WGSL (no constant-trip loop left; a hardware adapter
// keeps them), and on the device: the rolled and the unrolled shaders give the same bits.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu, type WebGpuCompileOptions } from "../../targets/webgpu.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { trainStep } from "../../examples/mlp.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const env = await webGpuTestEnv();

/** Loop headers that start at a constant and stop at a constant: the ones a driver can fully unroll. */
const CONSTANT_TRIP = /for \(var (\w+): i32 = -?\d+; \1 < \d+; /g;
const HALVING = /for \(var half: i32 = \d+; half > 0; /g;

const sourcesOf = (g: Graph, opts: WebGpuCompileOptions): string[] => compileWebGpu(g, opts).artifact.kernels.map((kk) => kk.source);
const count = (sources: readonly string[], pattern: RegExp): number => sources.reduce((n, s) => n + (s.match(pattern)?.length ?? 0), 0);

describe("rolled loops in the generated WGSL (no device)", () => {
  const mlp = k.traceFunction("mlp", trainStep.fn as never, trainStep.specs).graph;

  test("the MLP train step for a CPU adapter has no constant-trip loop; each shader using kiln_zero declares it", () => {
    const sources = sourcesOf(mlp, { tuning: { kind: "cpu" } });
    expect(count(sources, CONSTANT_TRIP)).toBe(0);
    expect(count(sources, HALVING)).toBe(0);
    const rolled = sources.filter((s) => s.includes("+ kiln_zero;"));
    // the reductions over 10 classes, the matmuls' epilogues, the row kernels' trees
    expect(rolled.length).toBeGreaterThanOrEqual(4);
    for (const s of sources.filter((src) => src.includes("kiln_zero"))) expect(s).toMatch(/\n {2}let kiln_zero: i32 = i32\(arrayLength\(&g\d+\) == 0u\);\n/);
  });

  test("a hardware adapter's shaders keep constant trip counts (its compiler unrolls them cheaply)", () => {
    const sources = sourcesOf(mlp, { tuning: { kind: "discrete" } });
    expect(count(sources, CONSTANT_TRIP)).toBeGreaterThan(0);
    expect(sources.some((s) => s.includes("kiln_zero"))).toBe(false);
  });
});

describe.skipIf(!env.available)("rolled loops on the device", () => {
  test("rolled and unrolled shaders of a linear + cross-entropy + row softmax give the same bits, both matching the interpreter", async () => {
    const fn = (x: k.Tensor, w: k.Tensor, b: k.Tensor, y: k.Tensor, z: k.Tensor) => {
      const logits = k.nn.functional.linear(x, w, b);
      return [k.nn.functional.crossEntropy(logits, y), logits.relu(), z.logSoftmax(-1)];
    };
    const g = k.traceFunction("rolled", fn as never, [k.f32([8, 12]), k.f32([6, 12]), k.f32([6]), k.i32([8]), k.f32([4, 200])]).graph;
    let n = 0;
    const inputs = graphInputs(g, ({ dtype, count: c }) =>
      dtype === "i32" ? Int32Array.from({ length: c }, (_, i) => (i * 5) % 6) : Float64Array.from({ length: c }, () => Math.fround(Math.sin(++n * 0.731))),
    );
    // The same forms both ways (a 2x2 register matmul keeps the unrolled epilogue's JIT short), only the loops differ.
    const forms: WebGpuCompileOptions = { tiledMatmul: "always", matmulForm: "registers", matmulParams: { rows: 2, cols: 2, threads: 64, unroll: 1 } };
    const run = async (opts: WebGpuCompileOptions): Promise<{ sources: string[]; out: Record<string, HostTensor> }> => {
      const artifact = compileWebGpu(g, { ...forms, ...opts, verify: true, limits: env.context!.limits }).artifact;
      const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact);
      const out = (await runner.run(inputs)) as Record<string, HostTensor>;
      runner.destroy();
      return { sources: artifact.kernels.map((kk) => kk.source), out };
    };
    const rolled = await run({ tuning: { kind: "cpu" } });
    // an integrated GPU's defaults: 64 threads per row, as a CPU adapter's
    const unrolled = await run({ tuning: { kind: "integrated" } });
    expect(rolled.sources.some((s) => /register-blocked matmul/.test(s))).toBe(true);
    expect(rolled.sources.some((s) => /one workgroup of \d+ threads per row/.test(s))).toBe(true);
    expect(count(rolled.sources, CONSTANT_TRIP)).toBe(0);
    expect(count(unrolled.sources, CONSTANT_TRIP)).toBeGreaterThan(0);
    // Only the loop bounds differ (and the matmul's accumulator array, a var where indexed in a rolled loop).
    const unroll = (src: string): string =>
      src
        .replace(/\n {2}let kiln_zero: i32 = [^\n]*/, "")
        .replaceAll(" + kiln_zero;", ";")
        .replaceAll("half > kiln_zero;", "half > 0;")
        .replace("  var acc = array<", "  let acc = array<");
    expect(rolled.sources.map(unroll)).toEqual(unrolled.sources);
    const want = interpret(g, inputs);
    for (const o of g.outputs) {
      const a = rolled.out[o.name]!.data;
      expect(Array.from(a)).toEqual(Array.from(unrolled.out[o.name]!.data));
      const e = want[o.name]!.data;
      for (let j = 0; j < e.length; j++) expect(Math.abs(a[j]! - e[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(e[j]!));
    }
  });
});
