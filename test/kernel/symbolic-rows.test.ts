// A symbolic batch on js and wasm costs what the program fixed at the run's batch costs: loops
// that step the batch's rows stop at the run's rows (reductions over the batch included) and
// the symbolic-rows kernel pass drops the row masks (compiler/kernel/symbolic-rows.ts). Checked
// against the float64 interpreter at the actual size (compiler/ir/interpret.ts: no padding, no
// masks) with NaN in every padding row, so a loop that read one would show; the work counted
// from the kernel IR (kernel-cost's sectionOps with the row bounds at a size) against the
// program compiled for that fixed batch; and the programs that must keep their masks.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { sectionOps } from "../../compiler/kernel/kernel-cost.ts";
import { rowBounds, rowRuns } from "../../compiler/kernel/symbolic-bound.ts";
import { unmaskRows } from "../../compiler/kernel/symbolic-rows.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { HyperStore } from "../../dsl/hyper.ts";
import { compileJs, createJsExecutor } from "../../targets/js.ts";
import { compileWasm, createWasmExecutor } from "../../targets/wasm.ts";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { emulateCuda, findNvcc, hasCxx, nvccPtx } from "../util/nvcc.ts";
import { FULL } from "../util/full.ts";
import { rowMasks } from "../util/row-masks.ts";

const MAX = 64;
const IN = 64;

function mlpStep() {
  k.manualSeed(3);
  const net = k.nn.sequential(k.nn.linear(IN, 32), k.nn.relu(), k.nn.linear(32, 10));
  return k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
}

/** The step's graph and initial state (hyperparameters included), symbolic up to `max` or fixed at `fixed`. */
function traced(specs: Record<string, ReturnType<typeof k.f32>>) {
  const t = k.traceFunction("mlp_rows", mlpStep() as never, specs);
  const state: Record<string, HostTensor> = {};
  for (const [name, init] of t.state) state[name] = init();
  Object.assign(state, new HyperStore(t.hyper).inputs());
  return { g: t.graph, state };
}
const symbolicSpecs = () => ({ x: k.f32(["batch", IN], { max: { batch: MAX } }), y: k.i32(["batch"]) });

/** Rows from sin and labels 0..9 (no Kiln code involved). */
const batchOf = (b: number) => ({
  x: Float32Array.from({ length: b * IN }, (_, i) => Math.sin(i * 0.37 + b)),
  y: Int32Array.from({ length: b }, (_, i) => (i * 7 + b) % 10),
});

function closeTo(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
}

type Run = (inputs: Record<string, HostTensor>) => Promise<Record<string, HostTensor>> | Record<string, HostTensor>;

/** At batch `b`: the inputs at the maximum with NaN (labels -1) in the padding rows, and the interpreter's outputs at the actual size. */
function caseAt(g: Graph, state: Record<string, HostTensor>, b: number, width = IN, rowShape: readonly number[] = [width]) {
  const x = Float32Array.from({ length: b * width }, (_, i) => Math.sin(i * 0.37 + b));
  const { y } = batchOf(b);
  const padded = {
    x: { dtype: "f32" as const, shape: [MAX, ...rowShape], data: Float32Array.from({ length: MAX * width }, (_, i) => (i < b * width ? x[i]! : Number.NaN)) },
    y: { dtype: "i32" as const, shape: [MAX], data: Int32Array.from({ length: MAX }, (_, i) => (i < b ? y[i]! : -1)) },
    batch: { dtype: "i32" as const, shape: [], data: Int32Array.of(b) },
  };
  const inputs: Record<string, HostTensor> = g.inputs.length > 3 ? { ...padded, ...state } : { x: padded.x, batch: padded.batch };
  const actual = { ...inputs, x: { dtype: "f32" as const, shape: [b, ...rowShape], data: x }, y: { ...padded.y, shape: [b], data: y } };
  const want = interpret(g, g.inputs.length > 3 ? actual : { x: actual.x, batch: padded.batch });
  const check = (got: Record<string, HostTensor>): void => {
    for (const o of g.outputs) closeTo(got[o.name]!.data.subarray(0, want[o.name]!.data.length), want[o.name]!.data, `${o.name} at batch ${b}`);
  };
  return { inputs, check };
}

/** Runs `run` at batches 1, 7 and the max with NaN (labels -1) in the padding rows, against the interpreter at the actual size. */
async function matchesInterpreter(g: Graph, state: Record<string, HostTensor>, run: Run, width = IN, rowShape: readonly number[] = [width]): Promise<void> {
  for (const b of [1, 7, MAX]) {
    const { inputs, check } = caseAt(g, state, b, width, rowShape);
    check(await run(inputs));
  }
}

/** Arithmetic of one run at size `n`: every bounded loop at its run's iterations. */
const opsAt = (p: KernelProgram, n: number): number =>
  p.kernels.flatMap((kk) => kk.sections).reduce((sum, s) => sum + sectionOps(s, rowRuns(s, p.buffers, n)), 0);

const targets = [
  { name: "js", compile: compileJs, make: async (g: Graph) => (await createJsExecutor(g)).run },
  { name: "wasm", compile: compileWasm, make: async (g: Graph) => (await createWasmExecutor(g, { threads: 2, minParallelWork: 0 })).run },
] as const;

describe.each(targets)("symbolic batch rows on $name", ({ compile, make }) => {
  test("an MLP step drops every mask and matches the interpreter at batches 1, 7, max with NaN padding", async () => {
    const { g, state } = traced(symbolicSpecs());
    expect(rowMasks(compile(g).program)).toBe(0);
    await matchesInterpreter(g, state, await make(g));
  });

  test("its counted work at a batch is the work of the program fixed at that batch", () => {
    const sym = compile(traced(symbolicSpecs()).g).program;
    for (const b of [MAX, MAX / 2, 8]) {
      const fixed = compile(traced({ x: k.f32([b, IN]), y: k.i32([b]) }).g).program;
      const want = opsAt(fixed, b);
      // Row blocks of 4 (wasm) or the tile (js) round a batch up; nothing else runs past it.
      expect(opsAt(sym, b), `batch ${b}`).toBeGreaterThanOrEqual(want);
      expect(opsAt(sym, b) / want, `batch ${b}`).toBeLessThan(1.01);
    }
    expect(opsAt(sym, MAX / 2) / opsAt(sym, MAX)).toBeLessThan(0.52);
  });

  test("a wide MLP step (panel-packed xᵀ for the weight gradient, cache-blocked matmuls) drops every mask and matches the interpreter at batch 7 with NaN padding", async () => {
    k.manualSeed(5);
    const net = k.nn.sequential(k.nn.linear(784, 512), k.nn.relu(), k.nn.linear(512, 10));
    const step = k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
    const t = k.traceFunction("wide_rows", step as never, { x: k.f32(["batch", 784], { max: { batch: MAX } }), y: k.i32(["batch"]) });
    const state: Record<string, HostTensor> = {};
    for (const [name, init] of t.state) state[name] = init();
    Object.assign(state, new HyperStore(t.hyper).inputs());
    expect(rowMasks(compile(t.graph).program)).toBe(0);
    const run = await make(t.graph);
    const { inputs, check } = caseAt(t.graph, state, 7, 784);
    check(await run(inputs));
  }, 60_000);

  test("a CNN SGD step (conv, relu, max-pool, linear) matches the interpreter at batches 1, 7, max with NaN padding", async () => {
    k.manualSeed(4);
    const net = k.nn.sequential(k.nn.conv2d(1, 4, 3), k.nn.relu(), k.nn.maxPool2d(2), k.nn.flatten(), k.nn.linear(36, 10));
    const step = k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
    const t = k.traceFunction("cnn_rows", step as never, { x: k.f32(["batch", 1, 8, 8], { max: { batch: MAX } }), y: k.i32(["batch"]) });
    const state: Record<string, HostTensor> = {};
    for (const [name, init] of t.state) state[name] = init();
    Object.assign(state, new HyperStore(t.hyper).inputs());
    // The pooling window's rows stay within one image: every mask goes.
    expect(rowMasks(compile(t.graph).program)).toBe(0);
    await matchesInterpreter(t.graph, state, await make(t.graph), 64, [1, 8, 8]);
  });

  test("fused attention over each entry's 4 positions, then a mean over the batch, drops its masks and matches the interpreter", async () => {
    // x: [batch, 4, 8] as query, key and value; the key loop (softmax_sum) stays within an entry
    const f = ({ x }: { x: k.Tensor }) => {
      const q = x.reshape([MAX, 4, 8]);
      return { out: k.nn.functional.scaledDotProductAttention(q, q, q, { isCausal: true }).mean(0) };
    };
    const g = k.traceFunction("attn", f as never, { x: k.f32(["batch", 32], { max: { batch: MAX } }) }).graph;
    expect(rowMasks(compile(g).program)).toBe(0);
    await matchesInterpreter(g, {}, await make(g), 32);
  });

  test("a value with two symbolic axes keeps its masks and still matches the interpreter", async () => {
    // x·xᵀ is [batch, batch]: its padding columns are not rows the bounds know of.
    const f = ({ x }: { x: k.Tensor }) => ({ out: x.matmul(x.transpose(0, 1)).sum(1).mul(0.5) });
    const g = k.traceFunction("gram", f as never, { x: k.f32(["batch", 8], { max: { batch: MAX } }) }).graph;
    expect(rowMasks(compile(g).program)).toBeGreaterThan(0);
    await matchesInterpreter(g, {}, await make(g), 8);
  });

  test("a sum over pairs of rows of a reshape, then over the batch, matches the interpreter", async () => {
    // [batch, 8] → [2·batch, 4] summed over pairs of rows of the reshaped buffer, then over the batch.
    const f = ({ x }: { x: k.Tensor }) => ({
      out: x
        .reshape([MAX * 2, 4])
        .reshape([MAX, 2, 4])
        .sum(1)
        .sum(0),
    });
    const g = k.traceFunction("pairs", f as never, { x: k.f32(["batch", 8], { max: { batch: MAX } }) }).graph;
    await matchesInterpreter(g, {}, await make(g), 8);
  });
});

describe.runIf(hasCxx())("symbolic batch rows on cuda (kernels emulated on the CPU)", () => {
  /** The MLP and CNN SGD steps and the attention-then-mean forward, with the widths and row shapes of their x. */
  function programs() {
    const mlp = traced(symbolicSpecs());
    k.manualSeed(4);
    const net = k.nn.sequential(k.nn.conv2d(1, 4, 3), k.nn.relu(), k.nn.maxPool2d(2), k.nn.flatten(), k.nn.linear(36, 10));
    const step = k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
    const t = k.traceFunction("cnn_rows", step as never, { x: k.f32(["batch", 1, 8, 8], { max: { batch: MAX } }), y: k.i32(["batch"]) });
    const cnnState: Record<string, HostTensor> = {};
    for (const [name, init] of t.state) cnnState[name] = init();
    Object.assign(cnnState, new HyperStore(t.hyper).inputs());
    const attn = ({ x }: { x: k.Tensor }) => ({
      out: k.nn.functional.scaledDotProductAttention(x.reshape([MAX, 4, 8]), x.reshape([MAX, 4, 8]), x.reshape([MAX, 4, 8]), { isCausal: true }).mean(0),
    });
    const ga = k.traceFunction("attn", attn as never, { x: k.f32(["batch", 32], { max: { batch: MAX } }) }).graph;
    // xᵀ·x over the batch, 128×128: large enough for shared-memory tiles, whose k loop is the batch.
    const gram = ({ x }: { x: k.Tensor }) => ({ out: x.transpose(0, 1).matmul(x).mul(0.5) });
    const gg = k.traceFunction("gram_t", gram as never, { x: k.f32(["batch", 128], { max: { batch: MAX } }) }).graph;
    return [
      { name: "mlp", g: mlp.g, state: mlp.state, width: IN, rowShape: [IN] },
      { name: "gram", g: gg, state: {}, width: 128, rowShape: [128], opts: { reduction: "shared" as const } },
      { name: "cnn", g: t.graph, state: cnnState, width: 64, rowShape: [1, 8, 8] },
      { name: "attn", g: ga, state: {}, width: 32, rowShape: [32] },
    ];
  }
  const compiled = programs().map((p) => ({ ...p, artifact: compileCuda(p.g, { ...p.opts, symbolPrefix: `${p.name}_` }).artifact }));
  // The emulation runs every thread on the CPU: the MLP at 1, 7 and the max and the shared tiles at 7 in the quick suite, all of them at all three under KILN_FULL=1.
  const batchesOf = (name: string): number[] => (FULL || name === "mlp" ? [1, 7, MAX] : name === "gram" ? [7] : []);

  test("every mask goes: the batch's loops (the shared tile's k loop included) stop at the run's rows", () => {
    for (const p of compiled) expect(rowMasks(compileCuda(p.g).program), p.name).toBe(0);
    const sources = (name: string) =>
      compiled
        .find((p) => p.name === name)!
        .artifact.kernels.map((kk) => kk.source)
        .join("\n");
    // The MLP's reductions over the batch (weight and bias gradients, the mean loss): warps whose lanes stop at the run's rows.
    expect(sources("mlp")).toMatch(/const int lim_(\w+) = \(int\)\(\(\(long long\)64 \* b\d+\[0\] \+ 63\) \/ 64\);/);
    expect(sources("mlp")).toMatch(/for \(int q\d+ = lane; q\d+ < lim_\w+ \* \d+; q\d+ \+= 32\)/);
    // xᵀ·x in shared-memory tiles: its k loop (the batch) stops at the run's rows.
    expect(sources("gram")).toMatch(/for \(int k0 = 0; k0 < lim_\w+; k0 \+= 16\)/);
  });

  test("the MLP step's counted work at a batch is the work of the program fixed at that batch", () => {
    const sym = compileCuda(traced(symbolicSpecs()).g).program;
    for (const b of [MAX, MAX / 2, 8]) {
      const want = opsAt(compileCuda(traced({ x: k.f32([b, IN]), y: k.i32([b]) }).g).program, b);
      expect(opsAt(sym, b) / want, `batch ${b}`).toBeGreaterThanOrEqual(1);
      expect(opsAt(sym, b) / want, `batch ${b}`).toBeLessThan(1.01);
    }
  });

  test("the MLP and CNN steps, attention-then-mean and xᵀ·x in shared tiles match the interpreter at batches 1, 7, max with NaN padding", () => {
    // One program per batch only because one C++ build holds every case (distinct symbol names).
    const cases = compiled.flatMap((p) =>
      batchesOf(p.name).map((b) => ({
        ...caseAt(p.g, p.state, b, p.width, p.rowShape),
        artifact: compileCuda(p.g, { ...p.opts, symbolPrefix: `${p.name}${b}_` }).artifact,
      })),
    );
    const results = emulateCuda(cases.map((c) => ({ artifact: c.artifact, inputs: c.inputs })));
    cases.forEach((c, i) => c.check(results[i]!));
  }, 120_000);

  const nvcc = findNvcc();
  test.runIf(FULL && nvcc !== undefined)(
    "the bounded kernels compile with nvcc -ptx (sm_80)",
    () => {
      const source = [CUDA_PRELUDE, ...compiled.flatMap((p) => p.artifact.kernels.map((kk) => kk.source))].join("\n");
      const r = nvccPtx(nvcc!, source, "sm_80");
      if (!r.ok) throw new Error(`nvcc failed:\n${r.log.slice(0, 3000)}`);
      expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(compiled.reduce((n, p) => n + p.artifact.kernels.length, 0));
    },
    120_000,
  );
});

describe("the symbolic-rows pass on kernel IR", () => {
  /** A masking kernel (x's rows past 2·batch become 0) and a consumer `k1` given as text. */
  const program = (consumer: string, out = "f32[4]", compared = "o0") =>
    parseKernelProgram(`program @p
  buffer b0 input f32[2*batch,4] "x"
  buffer b1 input i32[] max(8) "batch"
  buffer b2 temp f32[2*batch,4] "m"
  buffer b3 output ${out} "out"
  input "x" = b0
  input "batch" = b1
  output "out" = b3
kernel k0 reads(b0, b1) writes(b2)
  section 0 domain [o0<16, o1<4]
    %0 = index i32 ${compared}
    %1 = load i32 b1[0]
    %2 = const i32 2
    %3 = mul i32 %1, %2
    %4 = cmplt bool %0, %3
    %5 = load f32 b0[4*o0 + o1]
    %6 = const f32 0
    %7 = where f32 %4, %5, %6
    store b2[4*o0 + o1] = %7
kernel k1 reads(b2) writes(b3)
${consumer}
`);

  test("a sum over every row stops at the run's rows, so the mask goes and its section shrinks", () => {
    const p = program(`  section 0 domain [o0<4]
    %0 = load f32 b2[o0 + 4*r0]
    %1 = reduce_sum f32 [r0<16] %0
    store b3[o0] = %1`);
    const out = unmaskRows(p);
    expect(rowMasks(p)).toBe(1);
    expect(rowMasks(out)).toBe(0);
    expect(out.kernels[0]!.reads).toEqual([0]);
    // ceil(16 × n / 8) = 2n rows of x copied, 2n rows summed.
    expect([...rowBounds(out.kernels[0]!.sections[0]!, out.buffers).vars]).toEqual([["o0", 16]]);
    expect([...rowBounds(out.kernels[1]!.sections[0]!, out.buffers).vars]).toEqual([["r0", 16]]);
    expect(opsAt(out, 3) / opsAt(out, 8)).toBeCloseTo(3 / 8, 10);
  });

  test("a comparison of the size with an index that is not a row is no mask: it stays", () => {
    const p = program(
      `  section 0 domain [o0<4]
    %0 = load f32 b2[o0 + 4*r0]
    %1 = reduce_sum f32 [r0<16] %0
    store b3[o0] = %1`,
      "f32[4]",
      "o1",
    );
    expect(rowMasks(unmaskRows(p))).toBe(1);
  });

  test("a sum within each batch entry does not touch the batch: the mask goes", () => {
    // rows 2·o0 + r0 of the [2·batch, 4] buffer: entry o0's two rows
    const p = program(
      `  section 0 domain [o0<8, o1<4]
    %0 = load f32 b2[8*o0 + o1 + 4*r0]
    %1 = reduce_sum f32 [r0<2] %0
    store b3[4*o0 + o1] = %1`,
      "f32[batch,4]",
    );
    expect(rowBounds(p.kernels[1]!.sections[0]!, p.buffers).unbounded).toBe(0);
    expect(rowMasks(unmaskRows(p))).toBe(0);
  });

  test("a sum whose steps span two batch entries cannot stop at the run's rows: the mask stays", () => {
    // rows 4·r0 + o0: a step of r0 is 4 rows, two entries, valid and padding mixed at the run's end
    const p = program(
      `  section 0 domain [o0<4, o1<4]
    %0 = load f32 b2[4*o0 + o1 + 16*r0]
    %1 = reduce_sum f32 [r0<4] %0
    store b3[4*o0 + o1] = %1`,
      "f32[4,4]",
    );
    expect(rowBounds(p.kernels[1]!.sections[0]!, p.buffers).unbounded).toBe(1);
    expect(unmaskRows(p)).toBe(p);
  });

  test("rows copied into a buffer without a symbolic axis keep the mask (its padding would escape the bounds)", () => {
    const p = program(
      `  section 0 domain [o0<16, o1<4]
    %0 = load f32 b2[4*o0 + o1]
    store b3[4*o0 + o1] = %0`,
      "f32[16,4]",
    );
    expect(unmaskRows(p)).toBe(p);
  });
});
