// Whole-word stores of packed 16-bit tensors on webgpu (codegen/wgsl/pair.ts): where a
// section's 16-bit store runs contiguously along its innermost thread variable, a thread takes
// an even-aligned pair of outputs and stores their u32 word with a plain store, and a binding
// with no atomic store left is a plain array<u32>; elsewhere (odd offsets, strided stores, a
// word shared with another store) the atomicAnd/atomicOr path stays. The shaders' bindings are
// checked without a device; the runs, bit for bit against the float64 interpreter (or values
// derived by hand), where an adapter exists (test/util/webgpu-env.ts).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { assembleArtifact } from "../../compiler/compile.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { planProgramMemory } from "../../compiler/kernel/program-memory.ts";
import { webGpuDefaultLimits } from "../../codegen/wgsl/layout.ts";
import { bfloat16BitsToNumber, numberToBfloat16Bits } from "../../runtime/artifact/half.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { compileWebGpu, webGpuBackend, type WebGpuOptions } from "../../targets/webgpu.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { HALF_TOLERANCE, runCaseOnTarget, type OpCase } from "./op-cases.ts";
import { webGpuTestTarget } from "./test-targets.ts";

const env = await webGpuTestEnv();
const TIMEOUT_MS = 120_000;
const ATOMIC = "array<atomic<u32>>";

const h = (dtype: "f16" | "bf16", shape: (number | string)[], max?: number): k.InputSpec =>
  (dtype === "f16" ? k.f16 : k.bf16)(shape as never, max === undefined ? undefined : ({ max: { batch: max } } as never));

/** The WGSL of `fn` compiled for webgpu (no device: WebGPU's default limits). */
function sources(fn: (...x: k.Tensor[]) => unknown, specs: k.InputSpec[], opts: WebGpuOptions = {}): string[] {
  const { graph } = k.traceFunction("words", fn as never, specs);
  return compileWebGpu(graph, { limits: webGpuDefaultLimits, ...opts }).artifact.kernels.map((kk) => kk.source);
}

/** A kernel program given as kernel IR, through webgpu's memory plan, layout and render (as compileWith runs them). */
function artifactOfKernelIr(text: string) {
  const program = parseKernelProgram(text);
  const memory = planProgramMemory(program, webGpuBackend.memory);
  const opts = { limits: webGpuDefaultLimits };
  const layout = webGpuBackend.layout!.run(program, memory, opts);
  return assembleArtifact("webgpu", program, memory, webGpuBackend.render(program, memory, opts, layout));
}

/** y = -x on [0, split), 2x on [split, 7): two sections storing into one bf16 tensor, the second from element `split`. */
const splitProgram = (split: number): string => `program @split${split}
  buffer b0 input bf16[7] "x"
  buffer b1 output bf16[7] "y"
  input "x" = b0
  output "y" = b1
kernel k0 reads(b0) writes(b1)
  section 0 domain [o0<${split}]
    %0 = load bf16 b0[o0]
    %1 = neg bf16 %0
    store b1[o0] = %1
  section 1 domain [o0<${7 - split}]
    %0 = load bf16 b0[o0 + ${split}]
    %1 = const bf16 2
    %2 = mul bf16 %0, %1
    store b1[o0 + ${split}] = %2
`;

/** The same values from two kernels: k0 stores [3, 7) (an odd offset: atomic halves), then k1 [0, 3) in whole words, its lone last element beside k0's first. */
const twoKernels = `program @two
  buffer b0 input bf16[7] "x"
  buffer b1 output bf16[7] "y"
  input "x" = b0
  output "y" = b1
kernel k0 reads(b0) writes(b1)
  section 0 domain [o0<4]
    %0 = load bf16 b0[o0 + 3]
    %1 = const bf16 2
    %2 = mul bf16 %0, %1
    store b1[o0 + 3] = %2
kernel k1 reads(b0) writes(b1)
  section 0 domain [o0<3]
    %0 = load bf16 b0[o0]
    %1 = neg bf16 %0
    store b1[o0] = %1
`;

const chain = (x: k.Tensor, y: k.Tensor): k.Tensor => x.mul(y).add(x);

describe("webgpu 16-bit stores: whole words where one thread owns both halves (codegen)", () => {
  test("an elementwise chain over a contiguous output binds no atomics; 2 outputs a thread", () => {
    for (const dtype of ["f16", "bf16"] as const)
      for (const n of [2, 7, 1001]) {
        const src = sources(chain, [h(dtype, [n]), h(dtype, [n])])[0]!;
        expect(src, `${dtype}[${n}]`).not.toContain(ATOMIC);
        expect(src, `${dtype}[${n}]`).toMatch(/read_write> g\d+: array<u32>; \/\/ out\n/);
        expect(src, `${dtype}[${n}]`).toContain(`if (tid < ${Math.ceil(n / 2)}) { // section 0, 2 elements per thread (whole 16-bit words: out)`);
        // An odd length: the last pair is one element, stored into the low half with the high half kept.
        expect(src.includes("& 0xffff0000u) | kiln_w"), `${dtype}[${n}]`).toBe(n % 2 === 1);
      }
    // The same without pairing: every 16-bit store an atomicAnd/atomicOr on its half.
    expect(sources(chain, [k.bf16([8]), k.bf16([8])], { pairHalves: false })[0]).toContain(ATOMIC);
  });

  test("stores that cannot pair keep the atomic binding", () => {
    // A transposed store: the two halves of a word come from threads a row apart.
    expect(sources((x: k.Tensor) => x.transpose(0, 1).add(0), [k.bf16([5, 3])])[0]).toContain(ATOMIC);
    // Rows of odd length under an outer variable: rows share words at their ends.
    expect(sources((x: k.Tensor, c: k.Tensor) => x.mul(c), [k.bf16([5, 7]), k.bf16([5, 1])])[0]).toContain(ATOMIC);
    // Even rows pair, a broadcast operand or not.
    expect(sources((x: k.Tensor, b: k.Tensor) => x.add(b), [k.bf16([4, 6]), k.bf16([6])])[0]).not.toContain(ATOMIC);
    expect(sources((x: k.Tensor, c: k.Tensor) => x.mul(c), [k.f16([5, 6]), k.f16([5, 1])])[0]).not.toContain(ATOMIC);
  });

  test("two sections storing into one tensor: split at an even element both pair, at an odd one neither", () => {
    const odd = artifactOfKernelIr(splitProgram(3)).kernels;
    const even = artifactOfKernelIr(splitProgram(4)).kernels;
    expect(odd.length).toBe(1);
    expect(odd[0]!.source).toContain(ATOMIC);
    expect(odd[0]!.source).not.toContain("elements per thread");
    expect(even[0]!.source).not.toContain(ATOMIC);
    expect(even[0]!.source.match(/2 elements per thread/g)?.length).toBe(2);
    const [first, second] = artifactOfKernelIr(twoKernels).kernels;
    expect(first!.source).toContain(ATOMIC);
    expect(second!.source).not.toContain(ATOMIC);
    expect(second!.source).toContain("& 0xffff0000u) | kiln_w");
  });

  test("register and subgroup matmuls store 16-bit outputs in whole words from pairs of neighbouring columns; the workgroup form and odd N stay atomic", () => {
    const linear = (x: k.Tensor, w: k.Tensor, b: k.Tensor): k.Tensor => x.matmul(w).add(b).relu();
    const specs = (n: number): k.InputSpec[] => [k.bf16([5, 8]), k.bf16([8, n]), k.bf16([n])];
    const mm = (n: number, opts: WebGpuOptions): string => sources(linear, specs(n), { tiledMatmul: "always", ...opts })[0]!;
    for (const opts of [{ matmulForm: "registers" }, { matmulForm: "subgroup", subgroupSize: 8 }] as const) {
      expect(mm(10, opts), opts.matmulForm).not.toContain(ATOMIC);
      expect(mm(10, opts), opts.matmulForm).toContain("column pairs: whole 16-bit words");
      expect(mm(9, opts), opts.matmulForm).toContain(ATOMIC);
      expect(mm(10, { ...opts, pairHalves: false }), opts.matmulForm).toContain(ATOMIC);
    }
    expect(mm(10, { matmulForm: "workgroup" })).toContain(ATOMIC);
  });

  test("a thread storing whole rows from a serial loop (softmax) writes its own words plainly: even rows, or one row; odd rows stay atomic", () => {
    const softmax = (x: k.Tensor): k.Tensor => x.softmax(1);
    const rows = (shape: number[]): string => sources(softmax, [k.bf16(shape)], { rowKernels: false }).join("\n");
    expect(rows([6, 10])).not.toContain(ATOMIC);
    expect(rows([6, 10])).toMatch(/\] = \(g\d+\[[^\n]*\] & ~\(0xffffu << kiln_sh\)\) \| \(kiln_f2b/); // a plain read-modify-write
    expect(rows([1, 7])).not.toContain(ATOMIC);
    expect(rows([5, 7])).toContain(ATOMIC);
  });

  test("a symbolic batch pairs along its rows (even rows), never along the batch itself", () => {
    const rows = (w: number): string => sources(chain, [h("bf16", ["batch", w], 8), h("bf16", ["batch", w], 8)])[0]!;
    expect(rows(6)).not.toContain(ATOMIC);
    expect(rows(5)).toContain(ATOMIC);
    expect(sources(chain, [h("bf16", ["batch"], 8), h("bf16", ["batch"], 8)])[0]).toContain(ATOMIC);
  });
});

describe.skipIf(!env.available)("webgpu whole-word 16-bit stores, bit for bit against the interpreter", () => {
  const exact = { atol: 0, rtol: 0, group: "elementwise" as const };
  const target = webGpuTestTarget(() => env.context!);
  const cases: OpCase[] = [
    // Odd lengths: the last thread's lone element keeps its word's high half.
    ...[3, 5, 258].map((n) => ({
      ...exact,
      name: `x * y + x, length ${n} [bf16]`,
      fn: chain,
      specs: [k.bf16([n]), k.bf16([n])],
      range: [-8, 8] as [number, number],
    })),
    { ...exact, name: "x * y + x, length 9 [f16]", fn: chain, specs: [k.f16([9]), k.f16([9])], range: [-8, 8] },
    // Broadcasts: a row vector over even rows (paired), a column over odd rows (atomic), over even rows (paired).
    { ...exact, name: "x + b, [4, 6] + [6] [bf16]", fn: (x: k.Tensor, b: k.Tensor) => x.add(b), specs: [k.bf16([4, 6]), k.bf16([6])] },
    { ...exact, name: "x * c, [5, 7] * [5, 1] [bf16]", fn: (x: k.Tensor, c: k.Tensor) => x.mul(c), specs: [k.bf16([5, 7]), k.bf16([5, 1])] },
    { ...exact, name: "x * c, [5, 6] * [5, 1] [f16]", fn: (x: k.Tensor, c: k.Tensor) => x.mul(c), specs: [k.f16([5, 6]), k.f16([5, 1])] },
    // A slice read from an odd offset, stored whole; a row maximum per lane (a reduction in each of the pair).
    { ...exact, name: "x[1:6] * 2 [bf16]", fn: (x: k.Tensor) => x.slice([1, 6]).mul(2), specs: [k.bf16([7])] },
    { ...exact, name: "max over rows of a [7, 33] [bf16]", fn: (x: k.Tensor) => x.max(1).values, specs: [k.bf16([7, 33])] },
  ];
  test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, target), TIMEOUT_MS);

  // Register and subgroup matmuls with an epilogue, a row guard (M = 5) and a column guard (N = 10) or none (N = 16):
  // f32 accumulation against the interpreter's float64 sums, so within the format's tolerance (a lost half would be far off).
  const matmuls: OpCase[] = [10, 16].flatMap((n) =>
    (["bf16", "f16"] as const).map((dtype) => ({
      ...HALF_TOLERANCE[dtype],
      group: "linear algebra" as const,
      name: `relu(x·w + b), [5, 8]·[8, ${n}] [${dtype}]`,
      fn: (x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w).add(b).relu(),
      specs: [h(dtype, [5, 8]), h(dtype, [8, n]), h(dtype, [n])],
    })),
  );
  const forms = [
    [
      "registers",
      webGpuTestTarget(
        () => env.context!,
        () => ({ tiledMatmul: "always", matmulForm: "registers", shaderF16: false }),
      ),
    ],
    ...(env.context?.subgroupSize !== undefined
      ? [
          [
            "subgroup",
            webGpuTestTarget(
              () => env.context!,
              (c) => ({ tiledMatmul: "always", matmulForm: "subgroup", subgroupSize: c.subgroupSize!, shaderF16: false }),
            ),
          ] as const,
        ]
      : []),
  ] as const;
  test.each(forms.flatMap(([form, t]) => matmuls.map((c) => [`${c.name}, ${form} form`, c, t] as const)))(
    "%s",
    (_name, c, t) => runCaseOnTarget(c, t),
    TIMEOUT_MS,
  );

  // A thread per row storing it from a serial loop: its words plain read-modify-writes (even rows, one row) or atomic (odd rows).
  const softmaxes: OpCase[] = [
    [6, 10],
    [1, 7],
    [5, 7],
  ].map((shape) => ({
    ...HALF_TOLERANCE.bf16,
    group: "reductions" as const,
    name: `softmax over rows of a [${shape.join(", ")}] [bf16]`,
    fn: (x: k.Tensor) => x.softmax(1),
    specs: [k.bf16(shape)],
    range: [-4, 4] as [number, number],
  }));
  const plainRows = webGpuTestTarget(
    () => env.context!,
    () => ({ rowKernels: false }),
  );
  test.each(softmaxes.map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, plainRows), TIMEOUT_MS);

  // Under a 4-binding limit the output shares one buffer with inputs (a pack, at a 256-byte offset).
  const packed = webGpuTestTarget(
    () => env.context!,
    ({ limits }) => ({
      limits: {
        maxStorageBuffersPerShaderStage: 4,
        maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
      },
    }),
    undefined,
    (compiled) => expect(compiled.artifact.kernels[0]!.source).toMatch(/read_write> g\d+: array<u32>; \/\/ arg\d+, arg\d+, arg\d+, 0\n/),
  );
  test(
    "a 16-bit output of odd length written beside other tensors in one buffer",
    () =>
      runCaseOnTarget(
        {
          ...exact,
          name: "sums of six [bf16]",
          fn: (...xs: k.Tensor[]) => [xs.reduce((a, b) => a.add(b)).max(1).values, xs[0]!.mul(xs[1]!).max(1).values, xs[2]!.neg()],
          specs: Array.from({ length: 6 }, () => k.bf16([3, 4])),
          range: [-4, 4],
        },
        packed,
      ),
    TIMEOUT_MS,
  );

  test(
    "two sections storing into one tensor, split at an odd and at an even element, and two kernels (hand-derived values)",
    async () => {
      const x = [1.5, -3.25, 0.375, 7, -0.5, 96, -1.125];
      const bits = Uint16Array.from(x, numberToBfloat16Bits);
      for (const split of [3, 4, 3.5]) {
        // 3.5: the two-kernel program (split at 3), whose second kernel's lone element must keep the first's neighbour
        const text = split === 3.5 ? twoKernels : splitProgram(split);
        const runner = await WebGpuArtifactRunner.create(env.context!.device, artifactOfKernelIr(text));
        try {
          const got = (await runner.run({ x: { dtype: "bf16", shape: [7], data: bits } }))["y"]!.data;
          // every value is exact in bf16: -x and 2x round to themselves
          expect(
            Array.from(got, (b) => bfloat16BitsToNumber(b)),
            `split ${split}`,
          ).toEqual(x.map((v, i) => (i < Math.floor(split) ? -v : 2 * v)));
        } finally {
          runner.destroy();
        }
      }
    },
    TIMEOUT_MS,
  );

  test(
    "a symbolic batch: rows of 6 (whole words) and of 5 (atomic halves) at batches 1, 3 and the maximum, as the reference target",
    async () => {
      for (const w of [6, 5]) {
        const specs = [h("bf16", ["batch", w], 8), h("bf16", ["batch", w], 8)];
        const exe = await k.compile(chain as never, specs, { target: "webgpu" });
        const ref = await k.compile(chain as never, specs, { target: "reference" });
        for (const b of [1, 3, 8]) {
          const x = Float32Array.from({ length: b * w }, (_, i) => Math.sin(i * 0.7 + b) * 4);
          const y = Float32Array.from({ length: b * w }, (_, i) => Math.cos(i * 1.3) * 4);
          const got = (await exe.run([x, y] as never)) as unknown as { shape: number[]; data: ArrayLike<number> };
          const want = (await ref.run([x, y] as never)) as unknown as { data: ArrayLike<number> };
          expect(got.shape).toEqual([b, w]);
          expect(Array.from(got.data), `rows of ${w}, batch ${b}`).toEqual(Array.from(want.data));
        }
      }
    },
    TIMEOUT_MS,
  );
});
