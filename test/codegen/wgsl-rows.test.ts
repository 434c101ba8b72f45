// Row kernels (one workgroup per row, strided loops, tree reductions in workgroup memory):
// chosen for long row-level reductions, and matching the float64 interpreter on softmax,
// logSoftmax, layerNorm, long sums and maxima (f32 and i32), and a NaN in a row.

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

const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("rows", fn as never, specs).graph;
const rowKernels = (g: Graph, opts: { rowKernels?: boolean } = {}): number =>
  compileWebGpu(g, opts).artifact.kernels.filter((kk) => kk.source.includes("one workgroup of 64 threads per row")).length;

function inputsOf(g: Graph, nanAt?: number): Record<string, HostTensor> {
  let n = 0;
  return graphInputs(g, ({ dtype, count }) =>
    dtype === "i32"
      ? Int32Array.from({ length: count }, (_, j) => ((j * 7919) % 1000) - 500)
      : Float64Array.from({ length: count }, (_, j) => (j === nanAt ? NaN : Math.fround(3 * Math.sin(++n * 0.37)))),
  );
}

describe("row kernel selection (no device)", () => {
  test("long rows get one workgroup per row; short ones, or 256 rows and more, keep one thread per row", () => {
    expect(rowKernels(trace((x) => x.softmax(-1), [f([7, 300])]))).toBe(1);
    expect(rowKernels(trace((x) => x.sum(), [f([5000])]))).toBe(1);
    expect(rowKernels(trace((x) => x.softmax(-1), [f([7, 33])]))).toBe(0);
    // Many rows fill the adapter with one thread per row.
    expect(rowKernels(trace((x) => x.sum(-1), [f([255, 128])]))).toBe(1);
    expect(rowKernels(trace((x) => x.sum(-1), [f([256, 128])]))).toBe(0);
  });

  test("the choice is the row-kernels pass's `form row` fact, dumped as its stage; rowKernels: false turns it off", () => {
    const g = trace((x) => x.softmax(-1), [f([7, 300])]);
    const dumped = (opts: { rowKernels?: boolean }): string =>
      compileWebGpu(g, { ...opts, dumpAfter: ["row-kernels"] }).dumps.find((d) => d.name.endsWith("-row-kernels.kir"))!.text;
    expect(dumped({})).toContain("\n    form row\n");
    expect(dumped({ rowKernels: false })).not.toContain("form row");
    expect(rowKernels(g, { rowKernels: false })).toBe(0);
  });
});

describe.skipIf(!env.available)("row kernels on the device", () => {
  const cases: [string, Fn, k.InputSpec[], number?][] = [
    ["softmax and logSoftmax over 300-wide rows", (x) => [x.softmax(-1), x.logSoftmax(-1)], [f([7, 300])]],
    ["layerNorm over 200 features with weight and bias", (x, w, b) => F.layerNorm(x, [200], w, b), [f([5, 200]), f([200]), f([200])]],
    // One output each: two independent reductions would share a kernel (horizontal fusion), which keeps one thread per output.
    ["a sum over 5000 elements", (x) => x.sum(), [f([5000])]],
    ["a max over columns of 100", (y) => y.amax(0), [f([100, 3])]],
    ["i32 sum over 129-long rows", (a) => a.sum(1), [k.i32([4, 129])]],
    ["i32 max over 129-long rows", (a) => a.amax(1), [k.i32([4, 129])]],
    ["a NaN in one row propagates through max and softmax", (x) => [x.amax(1), x.softmax(1)], [f([3, 70])], 75],
  ];
  test.each(cases)(
    "%s",
    async (_name, fn, specs, nanAt) => {
      const g = trace(fn, specs);
      const compiled = compileWebGpu(g, { verify: true, limits: env.context!.limits });
      expect(compiled.artifact.kernels.some((kk) => kk.source.includes("per row"))).toBe(true);
      await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g, nanAt), { nanMatches: true });
    },
    180_000,
  );

  test("row-level results written over the inputs they update (an AdamW-like step on a batch-summed gradient)", async () => {
    // g = Σ_batch dy (a row kernel: 10 rows of 128); m ← 0.9·m + 0.1·g; v ← 0.99·v + 0.01·g²;
    // p ← p − 0.1·m/(√|v| + 1e-3) (random v may be negative). m, v and p are state updated in
    // place and read after the reduction's barriers: with every thread of a row storing them,
    // one thread read another's new value and stored a doubled update (2.bias of the MNIST
    // MLP's AdamW step, once its dh matmul split the bias update into a row kernel).
    const traced = trace(
      (dy, p, m, v) => {
        const g = dy.sum(0);
        const m1 = m.mul(0.9).add(g.mul(0.1));
        const v1 = v.mul(0.99).add(g.mul(g).mul(0.01));
        return [p.sub(m1.mul(0.1).div(v1.abs().sqrt().add(1e-3))), m1, v1];
      },
      [f([128, 10]), f([10]), f([10]), f([10])],
    );
    const state = traced.inputs.slice(1).map((id) => (traced.nodes[id] as { name: string }).name);
    const g: Graph = { ...traced, outputs: traced.outputs.map((o, i) => ({ ...o, aliases: state[i]! })) };
    const compiled = compileWebGpu(g, { verify: true, limits: env.context!.limits });
    expect(compiled.artifact.kernels.filter((kk) => kk.source.includes("per row"))).toHaveLength(1);
    expect(compiled.memory.plan.inPlace).toHaveLength(3);
    await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g));
  }, 60_000);
});
