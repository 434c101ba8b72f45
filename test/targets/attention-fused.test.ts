// Fused attention (compiler/passes/attention-pattern.ts): scaledDotProductAttention's
// primitives become ONE kernel (an online-softmax `softmax_sum`, form attention) on every
// target, and its results match the float64 interpreter on the unfused graph — causal and not,
// bool masks with fully masked rows (NaN, as the unfused softmax gives), additive masks,
// sequence lengths that are no multiple of anything, queries ≠ keys, batch × heads, long rows.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { InputSpec } from "../../dsl/trace.ts";
import { compileJs } from "../../targets/js.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { randomF32 } from "../util/random-graph.ts";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { hostArrayFrom } from "../../compiler/ir/dtype.ts";
import { emulateCuda, findNvcc, hasCxx, nvccPtx } from "../util/nvcc.ts";
import { FULL } from "../util/full.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { boolMask } from "../util/attention-mask.ts";
import { numel } from "../../compiler/util/shape.ts";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";

const F = k.nn.functional;
type Fn = (...args: k.Tensor[]) => k.Tensor;

const targets = (await k.availableTargets()).filter((t) => t !== "reference" && t !== "cpu");

const random = randomF32;

interface Case {
  readonly name: string;
  readonly fn: Fn;
  readonly specs: InputSpec[];
  readonly data?: number[][];
}

/** Row 1 sees no key at all (NaN, as the unfused softmax's 0/0); row 2 only its last keys; others a pattern. */

const cases: Case[] = [
  {
    name: "causal, batch × heads, 9 queries (no multiple of a block)",
    fn: (q, kk, v) => F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }),
    specs: [k.f32([2, 3, 9, 8]), k.f32([2, 3, 9, 8]), k.f32([2, 3, 9, 8])],
  },
  {
    name: "not causal, 5 queries over 7 keys, value width 3, a given scale",
    fn: (q, kk, v) => F.scaledDotProductAttention(q!, kk!, v!, { scale: 0.7 }),
    specs: [k.f32([2, 5, 6]), k.f32([2, 7, 6]), k.f32([2, 7, 3])],
  },
  {
    name: "bool mask with a fully masked row and a row masked at its start",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q!, kk!, v!, { attnMask: m!.gt(0.5) }),
    specs: [k.f32([2, 6, 4]), k.f32([2, 5, 4]), k.f32([2, 5, 4]), k.f32([6, 5])],
    data: [random(48, 1), random(40, 2), random(40, 3), boolMask(6, 5)],
  },
  {
    name: "bool mask, 8 queries of value width 6 (blocks of 4 rows: a run of 4 columns and 2 single ones), a fully masked row",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q!, kk!, v!, { attnMask: m!.gt(0.5) }),
    specs: [k.f32([2, 8, 5]), k.f32([2, 7, 5]), k.f32([2, 7, 6]), k.f32([8, 7])],
    data: [random(80, 11), random(70, 12), random(84, 13), boolMask(8, 7)],
  },
  {
    name: "additive float mask, large scores",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q!, kk!, v!, { attnMask: m! }),
    specs: [k.f32([3, 4, 4]), k.f32([3, 4, 4]), k.f32([3, 4, 2]), k.f32([4, 4])],
    data: [random(48, 4, 6), random(48, 5, 6), random(24, 6), random(16, 7, 3)],
  },
];

const run = async (target: string, c: Case, seed = 10) => {
  const data = c.data ?? c.specs.map((s, i) => random(numel(s.shape), seed + i));
  const expected = runRef(c.fn, c.specs, data).values;
  const exe = await k.compile(c.fn, c.specs, { target, fuseAttention: true });
  const out = (await exe.run(data)) as { data: ArrayLike<number> };
  return { exe, got: Array.from(out.data), expected };
};

describe("the attention pattern fuses", () => {
  test("into one `attention` group and one kernel with form attention; the kernel IR round-trips", () => {
    const c = cases[0]!;
    const g = k.traceFunction("attn", c.fn, c.specs).graph;
    const compiled = compileJs(g, { verify: true, fuseAttention: true });
    expect(compiled.artifact.stats.kernels).toBe(1);
    expect(formatFusionPlan(compiled.graph, compiled.plan)).toMatch(/k0 g0 \[attention\] \[2,3,9,8\]/);
    const text = printKernelProgram(compiled.program);
    expect(text).toMatch(/softmax_sum f32 \[r\d+<9\] %\d+, %\d+/);
    expect(text).toMatch(/form attention/);
    // No buffer holds a score or a weight: the program's buffers are q, k, v and the output.
    expect(compiled.program.buffers.map((b) => b.shape.join("x"))).toEqual(["2x3x9x8", "2x3x9x8", "2x3x9x8", "2x3x9x8"]);
    expect(printKernelProgram(parseKernelProgram(text))).toBe(text);
  });

  test("a softmax without a following matmul, and a dropout between them, stay unfused", () => {
    const g = k.traceFunction("sm", (x: k.Tensor, v: k.Tensor) => x.softmax(-1).exp().matmul(v), [k.f32([4, 5]), k.f32([5, 3])]).graph;
    expect(formatFusionPlan(g, compileJs(g, { fuseAttention: true }).plan)).not.toMatch(/\[attention\]/);
  });

  test("by default only attention whose scores would take 64 MiB or more fuses (below, the tiled matmuls are faster)", () => {
    const sdpa = (q: k.Tensor, kk: k.Tensor, v: k.Tensor) => F.scaledDotProductAttention(q, kk, v, { isCausal: true });
    const planOf = (b: number, l: number): string => {
      const spec = k.f32([b, 4, l, 16]);
      const c = compileJs(k.traceFunction("a", sdpa, [spec, spec, spec]).graph);
      return formatFusionPlan(c.graph, c.plan);
    };
    expect(planOf(2, 64)).not.toMatch(/\[attention\]/); // 128 kB of scores
    expect(planOf(4, 1024)).toMatch(/\[attention\]/); // 64 MiB of scores
  });
});

describe.skipIf(targets.length === 0).each(targets)("%s target", (target) => {
  test.each(cases)("$name: one kernel, matches the interpreter", async (c) => {
    const { exe, got, expected } = await run(target, c);
    expect(exe.artifact!.stats.kernels).toBe(1);
    expectClose(got, expected, 2e-6, 2e-5);
  });

  test.each(FULL ? [512, 1024] : [512])("a long causal row (%i keys) is one kernel and matches", async (length) => {
    const c: Case = {
      name: "long",
      fn: (q, kk, v) => F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }),
      specs: [k.f32([1, length, 16]), k.f32([1, length, 16]), k.f32([1, length, 16])],
    };
    const { exe, got, expected } = await run(target, c, 3);
    expect(exe.artifact!.stats.kernels).toBe(1);
    expectClose(got, expected, 2e-6, 2e-5);
  });
});

const nvcc = findNvcc();

describe("cuda: one kernel per case; emulated on the CPU against the interpreter; nvcc -ptx", () => {
  const compiled = cases.map((c, i) => {
    const graph = k.traceFunction(`attn${i}`, c.fn, c.specs).graph;
    const data = c.data ?? c.specs.map((s, j) => random(numel(s.shape), 10 + j));
    const inputs = graphInputs(graph, (slot) => hostArrayFrom(slot.dtype, data[slot.index]!));
    return { graph, inputs, artifact: compileCuda(graph, { symbolPrefix: `a${i}_`, verify: true, fuseAttention: true }).artifact };
  });

  test("each case is one kernel", () => {
    for (const c of compiled) expect(c.artifact.kernels.length).toBe(1);
  });

  test.runIf(hasCxx())(
    "the kernels emulated on the CPU match the interpreter",
    () => {
      const outs = emulateCuda(compiled.map((c) => ({ artifact: c.artifact, inputs: c.inputs })));
      compiled.forEach((c, i) => {
        const want = interpret(c.graph, c.inputs)["out"]!.data;
        expectClose(Array.from(outs[i]!["out"]!.data), Array.from(want), 2e-6, 2e-5);
      });
    },
    120_000,
  );

  test.runIf(nvcc !== undefined)(
    "nvcc -ptx -arch=sm_80 compiles them",
    () => {
      const source = [CUDA_PRELUDE, ...compiled.flatMap((c) => c.artifact.kernels.map((kk) => kk.source))].join("\n");
      const r = nvccPtx(nvcc!, source, "sm_80");
      if (!r.ok) throw new Error(`nvcc failed:\n${r.log.slice(0, 4000)}`);
      expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(compiled.length);
    },
    120_000,
  );
});

describe("examples/gpt.ts", () => {
  test("its eval loss compiles each layer's attention into one fused kernel", async () => {
    const { net, evalLoss, LAYERS } = await import("../../examples/gpt.ts");
    const model = await k.compileModel(net, { evalLoss }, undefined, { target: "js", fuseAttention: true });
    expect(model.programs.evalLoss.artifact!.kernels.filter((kk) => kk.name.includes("attention")).length).toBe(LAYERS);
    await model.close();
  });

  test.runIf(FULL)(
    "its eval loss on wasm (fused attention) matches the reference target",
    async () => {
      const { net, evalLoss, training } = await import("../../examples/gpt.ts");
      const batch = training.batch(0);
      const losses: number[] = [];
      for (const target of ["reference", "wasm"] as const) {
        const model = await k.compileModel(net, { evalLoss }, undefined, target === "wasm" ? { target, fuseAttention: true } : { target });
        losses.push(((await model.programs.evalLoss.run(batch)) as k.HostOutput).data[0]!);
        await model.close();
      }
      expect(Math.abs(losses[1]! - losses[0]!)).toBeLessThan(1e-4);
    },
    120_000,
  );
});

describe("kiln dump", () => {
  const dump = async (...flags: string[]) => {
    const io = bufferIO("", process.cwd());
    const code = await main(["dump", "test/cli/fixtures/attention.ts", "-e", "attend", "--target", "js", ...flags], io);
    return { code, out: io.stdout, err: io.stderr };
  };

  test("--fuse-attention shows the attention group and its form; without it (small scores) the kernels stay unfused", async () => {
    const fused = await dump("--fuse-attention", "--all");
    expect(fused.code, fused.err).toBe(0);
    expect(fused.out).toMatch(/k0 g0 \[attention\] \[2,4,8\]/);
    expect(fused.out).toMatch(/softmax_sum f32 \[r\d+<4\]/);
    expect(fused.out).toContain("form attention");
    const plain = await dump();
    expect(plain.code, plain.err).toBe(0);
    expect(plain.out).not.toContain("form attention");
  });
});
