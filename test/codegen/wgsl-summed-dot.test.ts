// A linear layer's weight gradient over batch and time (a batched dot summed over its batch,
// lowered as a sum over the batch around a dot over time) takes a matmul form on webgpu with
// one k over both sums (compiler/kernel/summed-dot.ts), instead of a thread per weight
// summing 8×128 products; checked in the kernel IR and against the float64 interpreter.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const env = await webGpuTestEnv();
const f = k.f32;
const F = k.nn.functional;
type Fn = (...xs: k.Tensor[]) => unknown;
const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("wgrad", fn as never, specs).graph;

/** dL/dw of sum(linear(x, w)²) for x [batch, time, in], w [out, in], then an update-like epilogue. */
const weightStep = ((x: k.Tensor, w: k.Tensor) => {
  const gw = k.grad((xx: k.Tensor, ww: k.Tensor) => F.linear(xx, ww).square().sum(), { argnums: 1 })(x, w) as k.Tensor;
  return w.sub(gw.mul(0.125));
}) as Fn;

/** The matmul-form dump's section that writes a [rows, cols] domain. */
function sectionOf(g: Graph, domain: string): string {
  const kir = compileWebGpu(g, { dumpAfter: ["matmul-form"] }).dumps.find((d) => d.name.endsWith("-matmul-form.kir"))!.text;
  return kir.split("  section ").find((sec) => sec.startsWith(`0 domain ${domain}`) || sec.includes(`domain ${domain}`))!;
}

describe("weight gradient over batch and time (no device)", () => {
  test("one sum over batch × time, in a matmul form", () => {
    const g = trace(weightStep, [f([4, 16, 64]), f([64, 64])]);
    const section = sectionOf(g, "[o0<64, o1<64]");
    expect(section).toContain("form matmul registers");
    // k spans both summed variables: one reduce_sum of 4 × 16 = 64 steps, no nested sum left
    expect(section.match(/reduce_sum f32 \[[^\]]*\]/g)).toEqual([expect.stringMatching(/^reduce_sum f32 \[r\d+<64\]$/)]);
  });

  test("a symbolic batch: the batched dot stays a matmul through symbolic-rows (its dot fact kept)", () => {
    // symbolic-rows used to drop the reduction a row mask wrapped and point the dot fact at a dead constant
    const g = k.traceFunction("wgrad", weightStep as never, [f(["n", 16, 64], { max: { n: 4 } }), f([64, 64])] as never).graph;
    const compiled = compileWebGpu(g, { dumpAfter: ["symbolic-rows"] });
    const kir = compiled.dumps.find((d) => d.name.endsWith("-symbolic-rows.kir"))!.text;
    const section = kir.split("  section ").find((sec) => sec.includes("domain [o0<4, o1<64, o2<64]"))!;
    expect(section).toContain("form matmul registers");
    const dot = /dot %(\d+) lhs=/.exec(section)![1];
    expect(section).toMatch(new RegExp(`%${dot} = reduce_sum f32 `));
    expect(compiled.artifact.kernels.some((kk) => kk.source.includes("register-blocked matmul"))).toBe(true);
  });
});

describe.skipIf(!env.available)("weight gradient over batch and time on the device", () => {
  test("matches the interpreter (odd sizes: block edges on every side)", async () => {
    const g = trace(weightStep, [f([3, 7, 20]), f([18, 20])]);
    const compiled = compileWebGpu(g, {
      verify: true,
      tiledMatmul: "always",
      limits: env.context!.limits,
      matmulParams: { rows: 2, cols: 4, threads: 16, unroll: 1 },
      dumpAfter: ["matmul-form"],
    });
    const kir = compiled.dumps.find((d) => d.name.endsWith("-matmul-form.kir"))!.text;
    expect(kir).toMatch(/reduce_sum f32 \[r\d+<21\]/);
    expect(compiled.artifact.kernels.some((kk) => kk.source.includes("register-blocked matmul"))).toBe(true);
    let n = 0;
    const inputs: Record<string, HostTensor> = graphInputs(g, ({ count }) => Float64Array.from({ length: count }, () => Math.fround(Math.sin(++n * 0.731))));
    await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputs);
  }, 300_000);
});
