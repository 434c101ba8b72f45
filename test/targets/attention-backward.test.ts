// Fused attention backward (compiler/passes/attention-backward.ts): the gradient that autodiff
// makes of scaledDotProductAttention's primitives becomes TWO kernels on every target (a point
// per query row: dQ and the row statistics; a point per key row: dK and dV), the forward one
// more; the gradients match the float64 interpreter on the unfused graph and finite
// differences of the loss — causal and not, bool masks with a fully masked row (NaN, as the
// unfused gradient), queries ≠ keys, value width ≠ key width, heads split from a projection
// (dK comes out transposed), a long causal row.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { InputSpec } from "../../dsl/trace.ts";
import { compileJs } from "../../targets/js.ts";
import { compileCuda } from "../../targets/cuda.ts";
import { compileWasm } from "../../targets/wasm.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { hostArrayFrom } from "../../compiler/ir/dtype.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { mulberry32, randomF32 } from "../util/random-graph.ts";
import { emulateCuda, findNvcc, hasCxx, nvccPtx } from "../util/nvcc.ts";
import { FULL } from "../util/full.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { boolMask } from "../util/attention-mask.ts";
import { numel } from "../../compiler/util/shape.ts";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";

const F = k.nn.functional;
type Loss = (...args: k.Tensor[]) => k.Tensor;

const targets = (await k.availableTargets()).filter((t) => t !== "reference" && t !== "cpu");

const random = randomF32;

interface Case {
  readonly name: string;
  /** A scalar loss of the inputs; the gradient is taken wrt the first `wrt` of them. */
  readonly loss: Loss;
  readonly wrt: number;
  readonly specs: InputSpec[];
  /** Kernels of the gradient program: the two attention kernels and whatever else it computes. */
  readonly kernels: number;
  readonly data?: number[][];
}

/** Row 1 sees no key at all (NaN gradients, as the unfused softmax's 0/0 gives); row 2 only its last keys. */

const weighted = (o: k.Tensor, w: k.Tensor): k.Tensor => o.mul(w).sum();
const [B, T, W, HEADS] = [2, 6, 8, 2];
const heads = (u: k.Tensor): k.Tensor => u.reshape([B, T, HEADS, W / HEADS]).transpose(1, 2);

const cases: Case[] = [
  {
    name: "causal, batch × heads, 9 queries",
    loss: (q, kk, v, w) => weighted(F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }), w!),
    wrt: 3,
    specs: [k.f32([2, 3, 9, 8]), k.f32([2, 3, 9, 8]), k.f32([2, 3, 9, 8]), k.f32([2, 3, 9, 8])],
    kernels: 2,
  },
  {
    name: "not causal, 5 queries over 7 keys, value width 3, a given scale",
    loss: (q, kk, v, w) => weighted(F.scaledDotProductAttention(q!, kk!, v!, { scale: 0.7 }), w!),
    wrt: 3,
    specs: [k.f32([2, 5, 6]), k.f32([2, 7, 6]), k.f32([2, 7, 3]), k.f32([2, 5, 3])],
    kernels: 2,
  },
  {
    name: "bool mask with a fully masked row and a row masked at its start",
    loss: (q, kk, v, w, m) => weighted(F.scaledDotProductAttention(q!, kk!, v!, { attnMask: m!.gt(0.5) }), w!),
    wrt: 3,
    specs: [k.f32([2, 6, 4]), k.f32([2, 5, 4]), k.f32([2, 5, 3]), k.f32([2, 6, 3]), k.f32([6, 5])],
    data: [random(48, 1), random(40, 2), random(30, 3), random(36, 4), boolMask(6, 5)],
    kernels: 3, // + the mask's compare, [6, 5]
  },
  {
    name: "heads split from one projection, gradient wrt its weight (dK comes out transposed)",
    loss: (x, wqkv) => {
      const [q, kk, v] = x!.matmul(wqkv!).chunk(3, -1) as [k.Tensor, k.Tensor, k.Tensor];
      return F.scaledDotProductAttention(heads(q), heads(kk), heads(v), { isCausal: true }).sin().sum();
    },
    wrt: 2,
    specs: [k.f32([B, T, W]), k.f32([W, 3 * W])],
    kernels: 6, // + the projection, the forward's attention, sin's derivative, the gradients of x and the weight
  },
];

const gradOf =
  (c: Case) =>
  (...args: k.Tensor[]) => {
    const argnums = Array.from({ length: c.wrt }, (_, i) => i);
    return k.grad((...xs: k.Tensor[]) => c.loss(...xs, ...args.slice(c.wrt)), { argnums })(...args.slice(0, c.wrt));
  };
const dataOf = (c: Case, seed = 10): number[][] => c.data ?? c.specs.map((s, i) => random(numel(s.shape), seed + i));
const inputsOf = (graph: Graph, data: readonly (readonly number[])[]): Record<string, HostTensor> =>
  graphInputs(graph, (slot) => hostArrayFrom(slot.dtype, data[slot.index]!));

/** The group labels of each kernel (horizontal fusion names a kernel `k3_attention_dq__mul_sum`). */
const labelsOf = (names: readonly string[]): string[][] => names.map((n) => n.replace(/^.*?k\d+_/, "").split("__"));

const run = async (target: string, c: Case, seed = 10) => {
  const data = dataOf(c, seed);
  const fn = gradOf(c);
  const expected = runRef(fn, c.specs, data).outputs.map((o) => Array.from(o.data));
  const exe = await k.compile(fn, c.specs, { target, fuseAttention: true });
  const out = (await exe.run(data)) as { data: ArrayLike<number> }[];
  return { exe, got: out.map((o) => Array.from(o.data)), expected };
};

describe("the attention backward fuses", () => {
  test("into an attention_dq and an attention_dkv group, two kernels of form attention; the kernel IR round-trips", () => {
    const c = cases[0]!;
    const g = k.traceFunction("attnGrad", gradOf(c), c.specs).graph;
    const compiled = compileJs(g, { verify: true, fuseAttention: true });
    expect(compiled.artifact.stats.kernels).toBe(2);
    const plan = formatFusionPlan(compiled.graph, compiled.plan);
    // dQ and three row statistics: the max, the sum, Σ dP·P (the softmax's max carries no gradient: compiler/passes/autodiff/softmax-shift.ts)
    expect(plan).toMatch(/k0 g0 \[attention_dq\] \[2,3,9,8\] roots=(%\d+,){3}%\d+ /);
    expect(plan).toMatch(/k1 g1 \[attention_dkv\] \[2,3,9,8\] roots=%\d+,%\d+ /);
    const text = printKernelProgram(compiled.program);
    expect(text.match(/form attention/g)?.length).toBe(2);
    // The dQ kernel's passes over the 9 keys (its distinct row-level loop variables): the max and
    // the sum in one online pass (softmax_max, softmax_norm); Σ dP·P; dQ.
    const dq = text.slice(text.indexOf("kernel k0_attention_dq"), text.indexOf("kernel k1_"));
    expect(new Set([...dq.matchAll(/(?:reduce|softmax)_\w+ f32 \[(r\d+)<9\]/g)].map((m) => m[1])).size).toBe(3);
    const online = [...dq.matchAll(/(softmax_max|softmax_norm) f32 \[(r\d+)<9\]/g)];
    expect(online.map((m) => m[1])).toEqual(["softmax_max", "softmax_norm"]);
    expect(online[0]![2]).toBe(online[1]![2]);
    // No buffer holds a score, a weight or their gradients: only q, k, v, w, [2,3,9] row statistics and the three gradients.
    expect(compiled.program.buffers.every((b) => b.shape.join("x") !== "2x3x9x9")).toBe(true);
    expect(printKernelProgram(parseKernelProgram(text))).toBe(text);
  });

  test("with the forward in the same program: the forward's online softmax writes the row max and sum, dQ (one pass fewer) reads them, then dK and dV", () => {
    const c = cases[0]!;
    const fn = (q: k.Tensor, kk: k.Tensor, v: k.Tensor, w: k.Tensor) =>
      k.valueAndGrad((a: k.Tensor, b: k.Tensor, d: k.Tensor) => c.loss(a, b, d, w), { argnums: [0, 1, 2] })(q, kk, v);
    const compiled = compileJs(k.traceFunction("step", fn, c.specs).graph, { verify: true, fuseAttention: true });
    const labels = labelsOf(compiled.artifact.kernels.map((kk) => kk.name)).filter((l) => l.some((x) => x.startsWith("attention")));
    expect(labels.map((l) => l.filter((x) => x.startsWith("attention")))).toEqual([["attention"], ["attention_dq"], ["attention_dkv"]]);
    const text = printKernelProgram(compiled.program);
    const kernelText = (label: string): string => text.split("\nkernel ").find((chunk) => labelsOf([chunk.split(" ")[0]!])[0]!.includes(label)) ?? "";
    // The forward: one key loop holding the weighted sums and the statistics, stored for the backward.
    const forward = kernelText("attention");
    const keyVars = new Set([...forward.matchAll(/softmax_\w+ f32 \[(r\d+)<9\]/g)].map((m) => m[1]));
    expect(keyVars.size).toBe(1);
    expect(forward).toMatch(/softmax_max f32/);
    expect(forward).toMatch(/softmax_norm f32/);
    expect(compiled.program.buffers.filter((b) => b.kind === "temp" && b.shape.join("x") === "2x3x9x1").length).toBeGreaterThanOrEqual(2);
    // dQ: no statistics of its own, two passes over the keys (Σ dP·P; dQ).
    const dq = kernelText("attention_dq");
    expect(dq).not.toMatch(/softmax_(max|norm)/);
    expect(new Set([...dq.matchAll(/(?:reduce|softmax)_\w+ f32 \[(r\d+)<9\]/g)].map((m) => m[1])).size).toBe(2);
  });

  test("on wasm the query kernel writes q·k and dO·v out as sums of products (no loop over the 8 features); the key kernel keeps its loops", () => {
    const c = cases[0]!;
    const g = k.traceFunction("attnGrad", gradOf(c), c.specs).graph;
    const text = printKernelProgram(compileWasm(g, { verify: true, fuseAttention: true }).program);
    const dq = text.slice(text.indexOf("kernel k0_attention_dq"), text.indexOf("kernel k1_"));
    const dkv = text.slice(text.indexOf("kernel k1_attention_dkv"));
    expect(dq).not.toMatch(/reduce_sum f32 \[r\d+<8\]/);
    expect(dq).toMatch(/reduce_sum f32 \[r\d+<9\]/);
    expect(dkv).toMatch(/reduce_sum f32 \[r\d+<8\]/);
  });

  test("a gradient wrt q alone is one kernel (dQ), wrt k alone two; both match the interpreter", async () => {
    const c = cases[0]!;
    const data = dataOf(c);
    for (const [argnums, kernels] of [
      [0, ["attention_dq"]],
      [1, ["attention_dq", "attention_dkv"]],
    ] as const) {
      const fn = (q: k.Tensor, kk: k.Tensor, v: k.Tensor, w: k.Tensor) =>
        k.grad((a: k.Tensor, b: k.Tensor, d: k.Tensor) => c.loss(a, b, d, w), { argnums })(q, kk, v);
      const exe = await k.compile(fn, c.specs, { target: "js", fuseAttention: true });
      expect(labelsOf(exe.artifact!.kernels.map((kk) => kk.name))).toEqual(kernels.map((l) => [l]));
      expectClose(Array.from(((await exe.run(data)) as { data: ArrayLike<number> }).data), runRef(fn, c.specs, data).values, 3e-6, 3e-5);
    }
  });

  test("by default (scores under 64 MiB) and with fuseAttention: false the backward stays unfused", () => {
    const c = cases[0]!;
    const g = k.traceFunction("attnGrad", gradOf(c), c.specs).graph;
    for (const opts of [{}, { fuseAttention: false }]) expect(formatFusionPlan(g, compileJs(g, opts).plan)).not.toMatch(/attention_d/);
  });

  test("the fused gradients match central finite differences of the float64 loss", async () => {
    const c = cases[0]!;
    const data = dataOf(c);
    const exe = await k.compile(gradOf(c), c.specs, { target: "js", fuseAttention: true });
    const grads = ((await exe.run(data)) as { data: ArrayLike<number> }[]).map((o) => Array.from(o.data));
    const lossGraph = k.traceFunction("loss", c.loss, c.specs).graph;
    const lossAt = (d: number[][]): number => interpret(lossGraph, inputsOf(lossGraph, d))[lossGraph.outputs[0]!.name]!.data[0]!;
    const r = mulberry32(5);
    for (let arg = 0; arg < c.wrt; arg++)
      for (let t = 0; t < 6; t++) {
        const i = Math.floor(r() * data[arg]!.length);
        const plus = data.map((d) => [...d]);
        const minus = data.map((d) => [...d]);
        plus[arg]![i] = Math.fround(data[arg]![i]! + 1 / 512);
        minus[arg]![i] = Math.fround(data[arg]![i]! - 1 / 512);
        const fd = (lossAt(plus) - lossAt(minus)) / (plus[arg]![i]! - minus[arg]![i]!);
        expect(Math.abs(grads[arg]![i]! - fd), `d loss / d input ${arg} [${i}]`).toBeLessThan(2e-4 + 1e-3 * Math.abs(fd));
      }
  });
});

// WebGPU's pipelines for these kernels take seconds each on lavapipe with an empty shader
// cache: the fast suite runs two cases there (causal; masked with a fully masked row), KILN_FULL all.
const casesFor = (target: string): Case[] => (target === "webgpu" && !FULL ? [cases[0]!, cases[2]!] : cases);

describe.skipIf(targets.length === 0).each(targets)("%s target", (target) => {
  test.each(casesFor(target))("$name: two kernels, matches the interpreter", async (c) => {
    const { exe, got, expected } = await run(target, c);
    expect(exe.artifact!.stats.kernels).toBe(c.kernels);
    const labels = labelsOf(exe.artifact!.kernels.map((kk) => kk.name)).flat();
    expect(labels.filter((l) => l.startsWith("attention_d"))).toEqual(["attention_dq", "attention_dkv"]);
    expect(got.length).toBe(expected.length);
    got.forEach((g, i) => expectClose(g, expected[i]!, 3e-6, 3e-5));
  });

  test.skipIf(target === "webgpu" && !FULL).each(FULL ? [320, 1024] : [320])("a long causal row (%i keys): two kernels, matches", async (length) => {
    const c: Case = {
      name: "long",
      loss: (q, kk, v, w) => weighted(F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }), w!),
      wrt: 3,
      specs: [k.f32([1, length, 8]), k.f32([1, length, 8]), k.f32([1, length, 8]), k.f32([1, length, 8])],
      kernels: 2,
    };
    const { exe, got, expected } = await run(target, c, 3);
    expect(exe.artifact!.stats.kernels).toBe(2);
    got.forEach((g, i) => expectClose(g, expected[i]!, 1e-5, 1e-4));
  });
});

const nvcc = findNvcc();

describe("cuda: two attention kernels per case; emulated on the CPU against the interpreter; nvcc -ptx", () => {
  const compiled = cases.map((c, i) => {
    const graph = k.traceFunction(`attnGrad${i}`, gradOf(c), c.specs).graph;
    const inputs = inputsOf(graph, dataOf(c));
    return { graph, inputs, artifact: compileCuda(graph, { symbolPrefix: `g${i}_`, verify: true, fuseAttention: true }).artifact };
  });

  test("each case is its count of kernels, two of them the attention backward", () => {
    compiled.forEach((c, i) => {
      expect(c.artifact.kernels.length).toBe(cases[i]!.kernels);
      expect(labelsOf(c.artifact.kernels.map((kk) => kk.name)).filter((l) => l.some((x) => x.startsWith("attention_d"))).length).toBe(2);
    });
  });

  test.runIf(hasCxx())(
    "the kernels emulated on the CPU match the interpreter",
    () => {
      // Fast runs emulate the masked case and the projected heads (dKᵀ); KILN_FULL all four.
      const chosen = FULL ? compiled : [compiled[2]!, compiled[3]!];
      const outs = emulateCuda(chosen.map((c) => ({ artifact: c.artifact, inputs: c.inputs })));
      chosen.forEach((c, i) => {
        const want = interpret(c.graph, c.inputs);
        for (const o of c.graph.outputs) expectClose(Array.from(outs[i]![o.name]!.data), Array.from(want[o.name]!.data), 3e-6, 3e-5);
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
      expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(cases.reduce((n, c) => n + c.kernels, 0));
    },
    120_000,
  );
});

describe("examples/gpt.ts", () => {
  // Seconds of compiling: the projected-heads case above is its attention in the fast suite.
  test.runIf(FULL)("its train step compiles each layer's attention into three kernels: the forward, dQ, dK and dV", async () => {
    const { net, trainStep, LAYERS } = await import("../../examples/gpt.ts");
    const model = await k.compileModel(net, { trainStep }, undefined, { target: "js", fuseAttention: true });
    const labels = labelsOf(model.programs.trainStep.artifact!.kernels.map((kk) => kk.name));
    for (const label of ["attention", "attention_dq", "attention_dkv"]) expect(labels.filter((l) => l.includes(label)).length, label).toBe(LAYERS);
    await model.close();
  });

  test.runIf(FULL)(
    "two AdamW steps on js with the attention fused give the losses of the unfused steps",
    async () => {
      const { net, trainStep, training } = await import("../../examples/gpt.ts");
      const losses: number[][] = [];
      for (const fuseAttention of [false, true]) {
        const model = await k.compileModel(net, { train: trainStep }, undefined, { target: "js", fuseAttention });
        const run: number[] = [];
        for (let step = 0; step < 2; step++) run.push(((await model.train(training.batch(step), { seed: step })) as { loss: k.HostOutput }).loss.data[0]!);
        losses.push(run);
        await model.close();
      }
      expectClose(losses[1]!, losses[0]!, 1e-5, 1e-5);
    },
    600_000,
  );
});

describe("kiln dump", () => {
  test("--fuse-attention shows the backward's attention_dq and attention_dkv groups", async () => {
    const io = bufferIO("", process.cwd());
    const code = await main(["dump", "test/cli/fixtures/attention.ts", "-e", "attendGrad", "--target", "js", "--fuse-attention", "--after", "fuse"], io);
    expect(code, io.stderr).toBe(0);
    expect(io.stdout).toMatch(/k0 g0 \[attention_dq\] \[2,4,8\]/);
    expect(io.stdout).toMatch(/k1 g1 \[attention_dkv\] \[2,4,8\]/);
  });
});
