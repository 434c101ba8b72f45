// The vector form of elementwise sections (`form vector width=4`, webgpu's `vector-form` pass):
// which sections take it and which fall back to one element per thread, and on the device a
// match with the float64 interpreter for chains with broadcasts (row vectors loaded as vec4,
// columns splatted), NaN-propagating max, log/sqrt of negatives, comparisons, where and casts,
// and a vector section beside a scalar one reading the same vec4-bound buffer.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const env = await webGpuTestEnv();
const f = k.f32;
type Fn = (...xs: k.Tensor[]) => unknown;

const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("vec", fn as never, specs).graph;
/** Vector sections in the rendered kernels (each says so in its guard's comment). */
const vectorSections = (g: Graph, opts: { vectorize?: boolean } = {}): number =>
  compileWebGpu(g, opts)
    .artifact.kernels.map((kk) => kk.source.match(/\/\/ section \d+, 4 elements per thread/g)?.length ?? 0)
    .reduce((a, b) => a + b, 0);

function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  // Every 11th element NaN, the rest in [-3, 3]: negatives for log/sqrt, NaN for max.
  return graphInputs(g, ({ count }) => Float64Array.from({ length: count }, (_, j) => (j % 11 === 5 ? NaN : Math.fround(3 * Math.sin(++n * 0.37)))));
}

describe("vector form selection (no device)", () => {
  const chain: Fn = (x, y) => x.mul(2).add(1).relu().mul(y).sigmoid();
  test("an elementwise chain runs 4 elements per thread; vectorize: false turns it off", () => {
    const g = trace(chain, [f([64]), f([64])]);
    expect(vectorSections(g)).toBe(1);
    expect(vectorSections(g, { vectorize: false })).toBe(0);
    const source = compileWebGpu(g).artifact.kernels[0]!.source;
    expect(source).toContain("array<vec4<f32>>");
    expect(source).toContain("if (tid < 16)"); // 64 elements, 16 threads
  });

  test("the choice is the vector-form pass's fact, dumped as its stage", () => {
    const g = trace(chain, [f([64]), f([64])]);
    const text = compileWebGpu(g, { dumpAfter: ["vector-form"] }).dumps.find((d) => d.name.endsWith("-vector-form.kir"))!.text;
    expect(text).toContain("\n    form vector width=4\n");
  });

  test("falls back to one element per thread: an innermost extent not a multiple of 4, a transposed read, a reduction", () => {
    expect(vectorSections(trace(chain, [f([6, 6]), f([6, 6])]))).toBe(0);
    expect(vectorSections(trace((x, y) => x.transpose(0, 1).add(y), [f([8, 8]), f([8, 8])]))).toBe(0);
    expect(vectorSections(trace((x) => x.sum(-1), [f([8, 8])]))).toBe(0);
  });
});

describe.skipIf(!env.available)("vector form on the device", () => {
  const cases: [string, Fn, k.InputSpec[]][] = [
    ["the bench's chain over 2 rows of 12", (x, y) => x.mul(2).add(1).relu().mul(y).sigmoid(), [f([2, 12]), f([2, 12])]],
    ["a row-vector bias (vec4 loads) and a column (splatted scalar)", (x, b, c) => x.add(b).mul(c).maximum(x.neg()), [f([3, 8]), f([8]), f([3, 1])]],
    ["log, sqrt and exp of negatives and NaN", (x) => [x.log(), x.sqrt(), x.exp().sin(), x.reciprocal()], [f([16])]],
    ["comparisons, where and bool casts", (x, y) => [k.where(x.lt(y), x, y.mul(3)), x.eq(x).cast("f32").add(x.lt(0).cast("f32"))], [f([4, 4]), f([4, 4])]],
    ["a vector section beside a row sum reading the same input", (x) => [x.mul(x).add(1), x.sum(-1)], [f([5, 8])]],
  ];
  test.each(cases)("%s", async (_what, fn, specs) => {
    const g = trace(fn, specs);
    const compiled = compileWebGpu(g, { verify: true, limits: env.context!.limits });
    expect(compiled.artifact.kernels.some((kk) => kk.source.includes(", 4 elements per thread (vec4)"))).toBe(true);
    await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g), { nanMatches: true });
  });
});
