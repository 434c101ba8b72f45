// The subgroup matmul form (codegen/wgsl/matmul.ts renderSubgroupMatmul): chosen by default
// for a CPU adapter with fixed-size subgroups, never for a GPU; on the device, each case
// against the float64 interpreter: ragged rows and columns (loads past the end give zeros,
// stores are skipped, every lane stays in the broadcasts), vec4 and scalar rhs, transposed
// operands, a batch loop, k unrolled with a remainder, and a convolution's forward and both
// gradients as implicit GEMMs (rows and columns of several domain loops).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { MatmulParams } from "../../compiler/kernel/kernel-ir.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { candidatesFor, checkTunedForm, defaultWorkgroupLimits, parseFormText } from "../../targets/webgpu-tune.ts";
import { printForm } from "../../compiler/kernel/print.ts";

const env = await webGpuTestEnv();
const subgroupSize = env.context?.subgroupSize;
const f = k.f32;
const F = k.nn.functional;
type Fn = (...xs: k.Tensor[]) => unknown;

const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("mm", fn as never, specs).graph;

function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  return graphInputs(g, ({ count }) => Float64Array.from({ length: count }, () => Math.fround(Math.sin(++n * 0.731))));
}

const formFact = (g: Graph, opts: Parameters<typeof compileWebGpu>[1]): string =>
  compileWebGpu(g, { ...opts, dumpAfter: ["tune"] })
    .dumps.find((d) => d.name.endsWith("-tune.kir"))!
    .text.split("\n")
    .find((l) => l.includes("form matmul"))!
    .trim();

describe("the subgroup form's choice (no device)", () => {
  const g = trace((a, b) => a.matmul(b), [f([128, 64]), f([64, 96])]);
  test("a CPU adapter with a fixed subgroup size gets it; without one, register blocks; a GPU, workgroup tiles", () => {
    // 96 columns: 16 threads of 8 columns cover them (64 would leave most lanes idle)
    expect(formFact(g, { tuning: { kind: "cpu" }, subgroupSize: 8 })).toBe("form matmul subgroup rows=16 cols=8 threads=16 unroll=1");
    const wide = trace((a, b) => a.matmul(b), [f([128, 64]), f([64, 1024])]);
    expect(formFact(wide, { tuning: { kind: "cpu" }, subgroupSize: 8 })).toBe("form matmul subgroup rows=16 cols=8 threads=64 unroll=1");
    // 288 columns (a conv's filter gradient): 40 threads of 8 columns, not 64 with 224 idle
    const conv = trace((a, b) => a.matmul(b), [f([64, 256]), f([256, 288])]);
    expect(formFact(conv, { tuning: { kind: "cpu" }, subgroupSize: 8 })).toBe("form matmul subgroup rows=16 cols=8 threads=40 unroll=1");
    // 16 columns over subgroups of 16: 16 threads of one column each
    const narrow = trace((a, b) => a.matmul(b), [f([128, 64]), f([64, 16])]);
    expect(formFact(narrow, { tuning: { kind: "cpu" }, subgroupSize: 16, tiledMatmul: "always" })).toBe(
      "form matmul subgroup rows=16 cols=1 threads=16 unroll=1",
    );
    expect(formFact(g, { tuning: { kind: "cpu" } })).toBe("form matmul registers");
    expect(formFact(g, { tuning: { kind: "discrete" }, subgroupSize: 32 })).toBe("form matmul workgroup rows=4 cols=4 threads=256 unroll=16");
  });

  test("few outputs over a long k (a first conv's filter gradient) take it too, with threads and columns fitted; not register blocks", () => {
    const longK = trace((a, b) => a.matmul(b), [f([20, 1100]), f([1100, 9])]);
    expect(formFact(longK, { tuning: { kind: "cpu" }, subgroupSize: 8 })).toBe("form matmul subgroup rows=16 cols=2 threads=8 unroll=1");
    expect(compileWebGpu(longK, { tuning: { kind: "cpu" } }).artifact.kernels[0]!.source).not.toMatch(/register-blocked matmul/);
  });

  test("the shader enables subgroups, says the size it assumes, and shares lhs rows by broadcast", () => {
    const src = compileWebGpu(g, { tuning: { kind: "cpu" }, subgroupSize: 8 }).artifact.kernels[0]!.source;
    expect(src).toContain("enable subgroups;");
    expect(src).toContain("// requires subgroups of size 8\n");
    // 16 rows per thread over 8 lanes: two lhs loads per k step, 16 broadcasts.
    expect(src.match(/subgroupBroadcast\(/g)).toHaveLength(16);
    expect(src).toContain("16x8 outputs per thread");
    expect(src).not.toContain("diagnostic(off"); // a constant k bound: uniform as WGSL sees it
  });

  test("the tuner's candidates: the subgroup default first where the device has a fixed size, only sizes it divides; none without", () => {
    const forms = (size?: number) => candidatesFor("cpu", { kind: "matmul", form: "registers" }, defaultWorkgroupLimits, undefined, size).map(printForm);
    expect(forms(8)[0]).toBe("form matmul subgroup");
    expect(forms(8)).toContain("form matmul subgroup rows=8 cols=8 threads=64 unroll=1");
    expect(forms(16).filter((c) => c.includes("subgroup"))).toEqual([
      "form matmul subgroup",
      "form matmul subgroup rows=16 cols=8 threads=64 unroll=1",
      "form matmul subgroup rows=32 cols=4 threads=64 unroll=1",
      "form matmul subgroup rows=16 cols=8 threads=32 unroll=1",
      "form matmul subgroup rows=16 cols=4 threads=32 unroll=1",
    ]);
    expect(forms(undefined).some((c) => c.includes("subgroup"))).toBe(false);
    expect(forms(undefined)[0]).toBe("form matmul registers");
  });

  test("a tuning cache's text of the form parses back to it", () => {
    const text = "form matmul subgroup rows=16 cols=8 threads=64 unroll=1";
    expect(printForm(parseFormText(text)!)).toBe(text);
    expect(checkTunedForm(parseFormText(text)!)).toBeUndefined();
  });

  test("the form's rows and threads must be multiples of the subgroup size", () => {
    expect(() => compileWebGpu(g, { tuning: { kind: "cpu" }, subgroupSize: 8, matmulParams: { rows: 12, cols: 4, threads: 64, unroll: 1 } })).toThrow(
      /multiples of the subgroup size 8/,
    );
  });
});

describe.skipIf(!env.available || subgroupSize === undefined)("subgroup matmuls on the device", () => {
  const S = subgroupSize ?? 8;
  const cases: [string, Fn, k.InputSpec[], MatmulParams | undefined][] = [
    // 70 rows: the last block's lanes load zeros; 90 columns: scalar rhs, guarded.
    ["odd sizes, bias and relu epilogue (default 16x8 blocks)", (a, b, c) => a.matmul(b).add(c).relu(), [f([70, 50]), f([50, 90]), f([90])], undefined],
    // 20 x 9 outputs over k = 1100: the long-k choice, 8 threads of 2 columns, the second row block ragged.
    ["few outputs, long k: 8 threads of 2 columns", (a, b) => a.matmul(b).relu(), [f([20, 1100]), f([1100, 9])], undefined],
    // 96 columns in 4s: vec4 rhs, guarded against the 512-column tile.
    ["vec4 rhs, columns short of the tile", (a, b, c) => a.matmul(b).add(c), [f([40, 33]), f([33, 96]), f([96])], undefined],
    // x·Wᵀ: both operands contiguous along k, read 4 k steps at a time, a row's vec4 broadcast whole.
    ["x·Wᵀ, both operands vec4 along k, ragged rows and columns", (x, w, c) => x.matmul(w.t()).add(c), [f([70, 48]), f([36, 48]), f([36])], undefined],
    ["transposed operands", (a, b) => a.t().matmul(b.t()), [f([40, 66]), f([17, 40])], { rows: 2 * S, cols: 4, threads: 2 * S, unroll: 1 }],
    [
      "batched with a broadcast rhs, 3 subgroups of threads (not a power of two), k unrolled by 3 (remainder 2)",
      (a, b) => a.matmul(b),
      [f([3, 33, 20]), f([20, 68])],
      { rows: S, cols: 8, threads: 3 * S, unroll: 3 },
    ],
    [
      "conv2d 3→5 3x3 pad 1, forward and both gradients",
      k.grad((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, { padding: 1 }).square().sum(), { argnums: [0, 1] }) as Fn,
      [f([2, 3, 6, 6]), f([5, 3, 3, 3])],
      { rows: S, cols: 4, threads: S, unroll: 1 },
    ],
  ];
  test.each(cases)(
    "%s",
    async (_name, fn, specs, matmulParams) => {
      const g = trace(fn, specs);
      const compiled = compileWebGpu(g, {
        verify: true,
        tiledMatmul: "always",
        tuning: { kind: "cpu" },
        subgroupSize: S,
        limits: env.context!.limits,
        ...(matmulParams ? { matmulParams } : {}),
      });
      expect(compiled.artifact.kernels.some((kk) => kk.source.includes("subgroup matmul"))).toBe(true);
      if (_name.startsWith("x·Wᵀ")) expect(compiled.artifact.kernels.some((kk) => kk.source.includes("k in vec4 steps on both operands"))).toBe(true);
      await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g));
    },
    120_000,
  );
});

describe.skipIf(!env.available || subgroupSize === undefined)("subgroup matmuls under a symbolic batch", () => {
  test("rows over the batch (x·w) and k over the batch (xᵀ·x) stop at the run's rows: NaN padding never read, at batches 3 and 64", async () => {
    const MAX = 64;
    const fn = ({ x, w }: { x: k.Tensor; w: k.Tensor }) => ({ y: x.matmul(w).relu(), gram: x.t().matmul(x) });
    const g = k.traceFunction("sym", fn as never, { x: k.f32(["batch", 40], { max: { batch: MAX } }), w: k.f32([40, 72]) }).graph;
    const compiled = compileWebGpu(g, { tuning: { kind: "cpu" }, subgroupSize, limits: env.context!.limits, tiledMatmul: "always" });
    const sources = compiled.artifact.kernels.map((kk) => kk.source);
    expect(sources.filter((src) => src.includes("subgroup matmul"))).toHaveLength(2);
    // the k loop over the batch reads its bound from storage: WGSL cannot prove it uniform
    expect(sources.some((src) => src.includes("diagnostic(off, subgroup_uniformity);"))).toBe(true);
    const w: HostTensor = { dtype: "f32", shape: [40, 72], data: Float32Array.from({ length: 40 * 72 }, (_, i) => Math.cos(i * 0.3)) };
    const { WebGpuArtifactRunner } = await import("../../runtime/webgpu/run-artifact.ts");
    const { interpret } = await import("../../compiler/ir/interpret.ts");
    const runner = await WebGpuArtifactRunner.create(env.context!.device, compiled.artifact);
    try {
      for (const b of [3, MAX]) {
        const x = Float32Array.from({ length: b * 40 }, (_, i) => Math.sin(i * 0.37 + b));
        const padded = Float32Array.from({ length: MAX * 40 }, (_, i) => (i < b * 40 ? x[i]! : Number.NaN));
        const got = await runner.run({ x: { dtype: "f32", shape: [MAX, 40], data: padded }, w, batch: { dtype: "i32", shape: [], data: Int32Array.of(b) } });
        const want = interpret(g, { x: { dtype: "f32", shape: [b, 40], data: x }, w, batch: { dtype: "i32", shape: [], data: Int32Array.of(b) } });
        for (const o of g.outputs) {
          const e = want[o.name]!.data;
          const a = got[o.name]!.data;
          for (let i = 0; i < e.length; i++)
            if (!(Math.abs(a[i]! - e[i]!) <= 1e-5 + 1e-4 * Math.abs(e[i]!))) expect.fail(`${o.name}[${i}] at batch ${b}: webgpu ${a[i]}, interpreter ${e[i]}`);
        }
      }
    } finally {
      runner.destroy();
    }
  }, 120_000);
});

describe.skipIf(!env.available || subgroupSize === undefined)("a subgroup matmul's quick variant (tiered start)", () => {
  test("is a 2x4 register matmul over the same bindings: the first run (quick) and the second (tuned) give the same bits", async () => {
    const g = trace((a, b, c) => a.matmul(b).add(c).relu(), [f([72, 40]), f([40, 96]), f([96])]);
    const artifact = compileWebGpu(g, { tuning: { kind: "cpu" }, subgroupSize, quickStart: true, limits: env.context!.limits }).artifact;
    const [kernel] = artifact.kernels;
    expect(kernel!.source).toContain("subgroup matmul");
    expect(kernel!.quick?.source).toContain("register-blocked matmul, 2x4 outputs per thread");
    const { WebGpuArtifactRunner } = await import("../../runtime/webgpu/run-artifact.ts");
    const runner = await WebGpuArtifactRunner.create(env.context!.device, artifact);
    try {
      const inputs = inputsOf(g);
      const quick = await runner.run(inputs);
      expect(runner.dispatchStats.quickDispatches).toBe(1);
      const tuned = await runner.run(inputs);
      expect(runner.dispatchStats.quickDispatches).toBe(1);
      const out = g.outputs[0]!.name;
      expect(Array.from(tuned[out]!.data)).toEqual(Array.from(quick[out]!.data));
    } finally {
      runner.destroy();
    }
    await expectArtifactMatchesInterpreter(env.context!, g, artifact, inputsOf(g));
  }, 120_000);
});
