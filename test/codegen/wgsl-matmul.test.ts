// The matmul kernels (8x8 register blocks, the default; workgroup tiles in shared memory):
// taken for large contractions, and forced on odd shapes (edges of every tile), batches,
// transposed operands and fused epilogues, each against the float64 interpreter.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { FULL } from "../util/full.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const env = await webGpuTestEnv();
const f = k.f32;
const F = k.nn.functional;
type Fn = (...xs: k.Tensor[]) => unknown;

const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("mm", fn as never, specs).graph;
const MATMUL_HEADER = /tiled matmul|register-blocked matmul/;
const isTiled = (g: Graph, mode: "auto" | "always") => compileWebGpu(g, { tiledMatmul: mode }).artifact.kernels.some((kk) => MATMUL_HEADER.test(kk.source));

function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  return graphInputs(g, ({ count }) => Float64Array.from({ length: count }, () => Math.fround(Math.sin(++n * 0.731))));
}

describe("tiled matmul selection (no device)", () => {
  test("auto takes it for 64x64 outputs with 16 on each side and k ≥ 8, not for small ones or i32", () => {
    // A first conv's shape: many pixels, 32 out channels, a 3x3 window (k = 9).
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [f([512, 9]), f([9, 32])]),
        "auto",
      ),
    ).toBe(true);
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [f([4096, 9]), f([9, 8])]),
        "auto",
      ),
    ).toBe(false); // 8 columns
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [f([512, 7]), f([7, 32])]),
        "auto",
      ),
    ).toBe(false); // k = 7
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [f([128, 32]), f([32, 96])]),
        "auto",
      ),
    ).toBe(true);
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [f([5, 7]), f([7, 3])]),
        "auto",
      ),
    ).toBe(false);
    expect(
      isTiled(
        trace((a, b) => a.matmul(b), [k.i32([64, 64]), k.i32([64, 64])]),
        "always",
      ),
    ).toBe(false);
    expect(
      isTiled(
        trace((x) => x.sum(1), [f([64, 64])]),
        "always",
      ),
    ).toBe(false);
  });

  test("a matmul fused horizontally with other sections gets a dispatch of its own", () => {
    // x·w and the column sums of x share the input, so fusion puts them in one kernel.
    const g = trace((x, w) => [x.matmul(w), x.sum(0)], [f([128, 96]), f([96, 80])]);
    const kernels = compileWebGpu(g).artifact.kernels;
    expect(kernels.filter((kk) => kk.source.includes("register-blocked matmul"))).toHaveLength(1);
    expect(kernels).toHaveLength(2);
    const untiled = compileWebGpu(g, { tiledMatmul: "never" }).artifact.kernels;
    expect(untiled).toHaveLength(1);
    expect(MATMUL_HEADER.test(untiled[0]!.source)).toBe(false);
  });

  test("the choice is the matmul-form pass's `form matmul …` fact; the device-layout stage gives it its own dispatch", () => {
    const g = trace((x, w) => [x.matmul(w), x.sum(0)], [f([128, 96]), f([96, 80])]);
    const dumps = (opts: { matmulForm?: "registers" | "workgroup" }) => compileWebGpu(g, { ...opts, dumpAfter: ["matmul-form", "device-layout"] }).dumps;
    const text = (opts: { matmulForm?: "registers" | "workgroup" }, stage: string): string => dumps(opts).find((d) => d.name.endsWith(stage))!.text;
    expect(text({}, "-matmul-form.kir")).toContain("\n    form matmul registers\n");
    expect(text({ matmulForm: "workgroup" }, "-matmul-form.kir")).toContain("\n    form matmul workgroup\n");
    // Sizes given to the pass are part of the fact (the tune pass sets them too); render reads them.
    const sized = compileWebGpu(g, { matmulParams: { rows: 4, cols: 8, threads: 32, unroll: 2 }, dumpAfter: ["matmul-form"] });
    expect(sized.dumps.find((d) => d.name.endsWith("-matmul-form.kir"))!.text).toContain("\n    form matmul registers rows=4 cols=8 threads=32 unroll=2\n");
    expect(sized.artifact.kernels.some((kk) => kk.source.includes("4x8 outputs per thread") && kk.source.includes("@workgroup_size(32)"))).toBe(true);
    // Two dispatches out of the one fused kernel: the matmul alone, then the column sums, which
    // (96 rows of 128, alone in their dispatch) run as the row kernel row-kernels marked them.
    expect(text({}, "-device-layout.txt")).toMatch(/dispatch \S+_part0 matmul sections=1 .*\n {2}dispatch \S+_part1 row-kernel sections=1 /);
  });
});

describe("operands along k (no device)", () => {
  test("x·Wᵀ reads both operands as vec4s along k on a CPU adapter (the default kind here) from k = 1024; one k at a time below, with kVectors never, or k not a multiple of 4", () => {
    const source = (specs: k.InputSpec[], opts: { kVectors?: "auto" | "always" | "never" } = {}) =>
      compileWebGpu(
        trace((x, w) => F.linear(x, w), specs),
        { tiledMatmul: "always", ...opts },
      ).artifact.kernels[0]!.source;
    const K_VEC = "k in vec4 steps on both operands";
    expect(source([f([64, 1024]), f([48, 1024])])).toContain(K_VEC);
    expect(source([f([64, 1024]), f([48, 1024])], { kVectors: "never" })).toContain("k unrolled by 1");
    expect(source([f([64, 1020]), f([48, 1020])])).toContain("k unrolled by 1");
    expect(source([f([64, 32]), f([48, 32])])).toContain("k unrolled by 1");
    expect(source([f([64, 32]), f([48, 32])], { kVectors: "always" })).toContain(K_VEC);
    expect(source([f([64, 30]), f([48, 30])], { kVectors: "always" })).toContain("k unrolled by 1");
    // x·W reads W along its columns: the rhs vec4s stay
    expect(
      compileWebGpu(
        trace((x, w) => x.matmul(w), [f([64, 1024]), f([1024, 48])]),
        { tiledMatmul: "always", kVectors: "always" },
      ).artifact.kernels[0]!.source,
    ).toContain("vec4 rhs");
    // a hardware adapter's default: never
    expect(
      compileWebGpu(
        trace((x, w) => F.linear(x, w), [f([64, 1024]), f([48, 1024])]),
        { tiledMatmul: "always", matmulForm: "registers", tuning: { kind: "discrete" } },
      ).artifact.kernels[0]!.source,
    ).not.toContain(K_VEC);
  });
});

describe("convolutions as implicit GEMMs (no device)", () => {
  // conv 8→64 3x3 pad 1 over 2x8x8: forward [128 pixels, k=72] x [72, 64]; filter gradient
  // rows (in channel, kh, kw) = 72 flattened, columns the 64 out channels, k = 128 pixels.
  const convGrad = k.grad((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, { padding: 1 }).relu().sum(), { argnums: [0, 1] });
  test("the filter gradient's rows are three domain loops, flattened: a matmul kernel of its own", () => {
    const g = trace(convGrad as Fn, [f([2, 8, 8, 8]), f([64, 8, 3, 3])]);
    const kir = compileWebGpu(g, { dumpAfter: ["matmul-form"] }).dumps.find((d) => d.name.endsWith("-matmul-form.kir"))!.text;
    // The section writing the [64, 8, 3, 3] gradient: domain [o0<64, o1<8, o2<3, o3<3].
    const section = kir.split("  section ").find((sec) => sec.includes("domain [o0<64, o1<8, o2<3, o3<3]"))!;
    expect(section).toContain("form matmul registers");
    const kernels = compileWebGpu(g).artifact.kernels.filter((kk) => kk.source.includes("register-blocked matmul"));
    expect(kernels.length).toBeGreaterThanOrEqual(2); // the forward and the filter gradient
  });
});

const VEC4_CASE = [
  "registers, rows=2 cols=4 unroll=4: vec4 lhs and rhs loads, a relu epilogue",
  "registers",
  "2x4 outputs per thread (columns in 4s, 40 apart), k unrolled by 4, vec4 lhs, vec4 rhs",
  ((a, b) => a.matmul(b).relu()) as Fn,
  [f([24, 36]), f([36, 40])] as k.InputSpec[],
  { rows: 2, cols: 4, threads: 16, unroll: 4 },
] as const;

describe.skipIf(!env.available)("vec4 matmul operands, validated by Dawn (no dispatch: lavapipe compiles at the first one)", () => {
  test("lhs read 4 k steps at a time, rhs 4 columns at a time", async () => {
    const [, , header, fn, specs, matmulParams] = VEC4_CASE;
    const kernel = compileWebGpu(trace(fn, specs), { tiledMatmul: "always", matmulParams }).artifact.kernels[0]!;
    expect(kernel.source).toContain(header);
    const device = env.context!.device;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code: kernel.source });
    await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } });
    expect(await device.popErrorScope()).toBeNull();
    expect((await module.getCompilationInfo()).messages.filter((m) => m.type === "error")).toEqual([]);
  });
});

describe.skipIf(!env.available)("tiled matmul on the device", () => {
  const cases: [string, Fn, k.InputSpec[]][] = [
    ["odd sizes with bias and relu epilogue", (a, b, c) => a.matmul(b).add(c).relu(), [f([70, 50]), f([50, 90]), f([90])]],
    ["transposed operands", (a, b) => a.t().matmul(b.t()), [f([40, 66]), f([17, 40])]],
    // lavapipe JIT-compiles a barrier kernel in 15-60 s on 2 busy cores: these two run in CI's required run.
    ...(process.env["KILN_REQUIRE_WEBGPU"] === "1"
      ? ([
          ["batched with a broadcast rhs", (a, b) => a.matmul(b), [f([3, 33, 20]), f([20, 65])]],
          ["linear + gelu (weight [out, in])", (x, w, b) => F.linear(x, w, b).gelu(), [f([65, 24]), f([31, 24]), f([31])]],
        ] as [string, Fn, k.InputSpec[]][])
      : []),
  ];
  const forms = [
    ["registers", "register-blocked matmul"],
    ["workgroup", "tiled matmul"],
  ] as const;
  // Sizes that are multiples of the 8x8 register block: operand loads without bounds checks.
  const blockMultiples: [string, Fn, k.InputSpec[]][] = [
    ["block multiples, transposed lhs, bias epilogue", (a, b, c) => a.t().matmul(b).add(c), [f([24, 64]), f([24, 72]), f([72])]],
  ];
  const all = [
    ...forms.flatMap(([form, header]) => cases.map(([name, fn, specs]) => [`${form}: ${name}`, form, header, fn, specs, undefined] as const)),
    ...blockMultiples.map(([name, fn, specs]) => [`registers: ${name}`, "registers", "register-blocked matmul", fn, specs, undefined] as const),
    // Sizes from the fact: 4x2 blocks, 32 threads, k unrolled by 3 (k = 50: 48 unrolled, 2 left).
    [
      "registers, rows=4 cols=2 threads=32 unroll=3: odd sizes with a bias",
      "registers",
      "4x2 outputs per thread (columns 45 apart), k unrolled by 3",
      ((a, b, c) => a.matmul(b).add(c)) as Fn,
      [f([70, 50]), f([50, 90]), f([90])] as k.InputSpec[],
      { rows: 4, cols: 2, threads: 32, unroll: 3 },
    ] as const,
    // vec4 operands: rhs rows read 4 columns at a time, lhs rows 4 k steps at a time (the
    // remainder loop after unrolled steps is the unroll=3 case's, above). lavapipe's JIT takes
    // 13-26 s for any kernel unrolled by 4 (against 1 s by 3): on the device under KILN_FULL only;
    // the suite below has Dawn validate the shader without running it.
    ...(FULL ? [VEC4_CASE] : []),
    // A linear's x·Wᵀ with k = 1024: both operands contiguous along k, read as vec4s 4 k steps at
    // a time (a CPU adapter's default from k = 1024); odd rows and columns (guarded vec4 loads at the block edges).
    [
      "registers, rows=2 cols=4: linear x·Wᵀ + bias, relu, k = 1024 (k in vec4 steps on both operands)",
      "registers",
      "2x4 outputs per thread (columns 4 apart), k in vec4 steps on both operands",
      ((x, w, b) => F.linear(x, w, b).relu()) as Fn,
      [f([9, 1024]), f([13, 1024]), f([13])] as k.InputSpec[],
      { rows: 2, cols: 4, threads: 16, unroll: 1 },
    ] as const,
    // A convolution's forward, input gradient and filter gradient (rows: in channel, kh, kw),
    // in 2x4 blocks: each block row/column copies the im2col operand, and lavapipe's JIT time grows with it.
    [
      "registers, rows=2 cols=4: conv2d 3→5 3x3 pad 1, forward and both gradients as implicit GEMMs",
      "registers",
      "register-blocked matmul, 2x4 outputs per thread",
      k.grad((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, { padding: 1 }).square().sum(), { argnums: [0, 1] }) as Fn,
      [f([2, 3, 6, 6]), f([5, 3, 3, 3])] as k.InputSpec[],
      { rows: 2, cols: 4, threads: 16, unroll: 1 },
    ] as const,
  ];
  test.each(all)(
    "%s",
    async (_name, form, header, fn, specs, matmulParams) => {
      const g = trace(fn, specs);
      const compiled = compileWebGpu(g, {
        verify: true,
        tiledMatmul: "always",
        matmulForm: form,
        limits: env.context!.limits,
        ...(matmulParams ? { matmulParams } : {}),
      });
      expect(compiled.artifact.kernels.some((kk) => kk.source.includes(header))).toBe(true);
      await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g));
    },
    300_000,
  );
});
