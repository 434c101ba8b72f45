// A symbolic batch (`k.f32(["batch", 6], { max: { batch: 16 } })`): one compiled program runs
// every batch 1..max. Each target is compared with the float64 interpreter running the graph at
// the actual size (compiler/ir/interpret.ts, an independent path: no padding, no masks): an SGD
// step of an MLP (loss and every updated parameter, batches 1, 7, 16 and 3 in sequence, so a
// later step sees the weights the earlier ones wrote), a forward with a mean over the batch, a
// CNN forward; CUDA through the C++ emulation of its kernels; a saved artifact through the
// standalone loader. Then the dump (the symbol printed,
// print → parse → print identical) and the one-line errors: a batch above the max, inputs that
// disagree, a symbolic dimension used where it is not supported.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { HyperStore } from "../../dsl/hyper.ts";
import { describe, expect, test } from "vitest";
import { createModel, loadArtifact } from "../../runtime/artifact/load.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import * as k from "kiln";
import { interpret } from "../../compiler/ir/interpret.ts";
import { parseGraph } from "../../compiler/ir/parser.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { maskSymbolic } from "../../compiler/passes/mask-symbolic.ts";
import { compileCuda } from "../../targets/cuda.ts";
import { compileJs } from "../../targets/js.ts";
import { compileWasm, createWasmExecutor } from "../../targets/wasm.ts";
import { createWebGpuExecutor } from "../../targets/webgpu.ts";
import { neededWorkgroups } from "../../runtime/artifact/symbolic-dispatch.ts";
import { shrunkWorkgroups } from "../../runtime/webgpu/run-artifact.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { emulateCuda, hasCxx } from "../util/nvcc.ts";
import { rejectedKilnError, thrownKilnError } from "../util/kiln-error.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = await webGpuTestEnv();
const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

const MAX = 16;
const BATCHES = [1, 7, MAX, 3];
const specs = () => ({ x: k.f32(["batch", 6], { max: { batch: MAX } }), y: k.i32(["batch"]) });

/** Test data from sin: a batch of `b` rows, labels in 0..2 (no Kiln code involved). */
const batchOf = (b: number, salt = 0) => ({
  x: Float32Array.from({ length: b * 6 }, (_, i) => Math.sin(i * 1.3 + b + salt)),
  y: Int32Array.from({ length: b }, (_, i) => (i * 7 + b) % 3),
});

function mlpStep() {
  k.manualSeed(1);
  const net = k.nn.sequential(k.nn.linear(6, 5), k.nn.relu(), k.nn.linear(5, 3));
  return k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
}

/** The MLP step's graph and its initial state (hyperparameters included), for the executors run directly. */
function mlpGraph(max = MAX) {
  const traced = k.traceFunction("mlp_sym", mlpStep() as never, { x: k.f32(["batch", 6], { max: { batch: max } }), y: k.i32(["batch"]) });
  const state: Record<string, HostTensor> = {};
  for (const [name, init] of traced.state) state[name] = init();
  Object.assign(state, new HyperStore(traced.hyper).inputs());
  return { g: traced.graph, state };
}

function closeTo(got: ArrayLike<number>, want: ArrayLike<number>, what: string, tol = 1e-4): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
}

describe.each(targets)("symbolic batch on %s against the interpreter", (target) => {
  test(`an MLP SGD step at batches ${BATCHES.join(", ")} (max ${MAX}) gives the interpreter's loss and weights`, async () => {
    const exe = await k.compile(mlpStep(), specs(), { target });
    const ref = await k.compile(mlpStep(), specs(), { target: "reference" });
    for (const b of BATCHES) {
      const data = batchOf(b);
      const got = await exe.run(data);
      const want = await ref.run(data);
      closeTo(got.loss.data, want.loss.data, `loss at batch ${b}`);
      const [gs, ws] = [await exe.fetchState(), await ref.fetchState()];
      for (const name of Object.keys(ws)) closeTo(gs[name]!.data, ws[name]!.data, `${name} after batch ${b}`);
    }
  });

  test("a forward with a mean over the batch divides by the actual batch; per-row outputs have the run's rows", async () => {
    const fn = ({ x }: { x: k.Tensor }) => ({ rows: x.relu().mul(2), mean: x.mean(0), all: x.mean(), max: x.max(0).values });
    const exe = await k.compile(fn, { x: k.f32(["batch", 6], { max: { batch: MAX } }) }, { target });
    for (const b of [1, 7, MAX]) {
      const { x } = batchOf(b, 5);
      const got = await exe.run({ x });
      const want = interpret(exe.graph, { x: { dtype: "f32", shape: [b, 6], data: Float64Array.from(x) } });
      expect(got.rows.shape).toEqual([b, 6]);
      closeTo(got.rows.data, want["rows"]!.data, `rows at ${b}`);
      closeTo(got.mean.data, want["mean"]!.data, `mean at ${b}`);
      closeTo(got.all.data, want["all"]!.data, `all at ${b}`);
      closeTo(got.max.data, want["max"]!.data, `max at ${b}`);
      // Independent of Kiln: the column means of the rows given.
      const col0 = Array.from({ length: b }, (_, i) => x[i * 6]!).reduce((a, v) => a + v, 0) / b;
      expect(got.mean.data[0]).toBeCloseTo(col0, 5);
    }
  });

  test("a CNN forward (NCHW, batch outermost; conv, relu, pool, flatten, linear) at batches 1, 7, max", async () => {
    k.manualSeed(2);
    const net = k.nn.sequential(k.nn.conv2d(1, 2, 3), k.nn.relu(), k.nn.maxPool2d(2), k.nn.flatten(), k.nn.linear(18, 4));
    const exe = await k.compile((x: k.Tensor) => net.call(x), [k.f32(["batch", 1, 8, 8], { max: { batch: 8 } })], { target });
    const ref = await k.compile((x: k.Tensor) => net.call(x), [k.f32(["batch", 1, 8, 8], { max: { batch: 8 } })], { target: "reference" });
    for (const b of [1, 7, 8]) {
      const x = Float32Array.from({ length: b * 64 }, (_, i) => Math.cos(i * 0.7));
      const got = (await exe.run([x])) as unknown as { shape: number[]; data: Float32Array };
      const want = (await ref.run([x])) as unknown as { shape: number[]; data: Float64Array };
      expect(got.shape).toEqual([b, 4]);
      closeTo(got.data, want.data, `cnn at ${b}`);
    }
  });
});

describe.runIf(hasCxx())("symbolic batch on cuda (kernels emulated on the CPU)", () => {
  test("the MLP step's loss and new weights at batches 1, 7, max match the interpreter", () => {
    const traced = k.traceFunction("mlp_sym", mlpStep() as never, specs());
    const g = traced.graph;
    const state: Record<string, HostTensor> = {};
    for (const [name, init] of traced.state) state[name] = init();
    Object.assign(state, new HyperStore(traced.hyper).inputs());
    const cases = [1, 7, MAX].map((b) => {
      const { x, y } = batchOf(b);
      const padded = {
        x: { dtype: "f32" as const, shape: [MAX, 6], data: Float32Array.from({ length: MAX * 6 }, (_, i) => (i < b * 6 ? x[i]! : 99)) },
        y: { dtype: "i32" as const, shape: [MAX], data: Int32Array.from({ length: MAX }, (_, i) => (i < b ? y[i]! : 2)) },
        batch: { dtype: "i32" as const, shape: [], data: Int32Array.of(b) },
      };
      const actual = { x: { dtype: "f32" as const, shape: [b, 6], data: x }, y: { dtype: "i32" as const, shape: [b], data: y }, batch: padded.batch };
      // One program, compiled once per case only because one C++ build holds every case (distinct symbol names).
      return { b, artifact: compileCuda(g, { symbolPrefix: `sym${b}_` }).artifact, padded: { ...padded, ...state }, actual: { ...actual, ...state } };
    });
    // Row-wise kernels stop their grid-stride loops at the run's rows and launch only their blocks.
    const kernels = cases[0]!.artifact.kernels;
    expect(kernels.some((kk) => /p < \(\(\d+ \* b\d+\[0\] \+ 15\) \/ 16\)/.test(kk.source))).toBe(true);
    expect(kernels.some((kk) => kk.launch.symbolic !== undefined)).toBe(true);
    const results = emulateCuda(cases.map((c) => ({ artifact: c.artifact, inputs: c.padded })));
    cases.forEach((c, i) => {
      const want = interpret(g, c.actual);
      for (const o of g.outputs) closeTo(results[i]![o.name]!.data, want[o.name]!.data, `${o.name} at batch ${c.b}`);
    });
  });
});

describe("a transformer step: [batch,T,C] ↔ [T*batch,C] reshapes, heads, causal attention, SGD with clipping", () => {
  const [V, T, C, H] = [11, 5, 8, 2];
  class Attention extends k.nn.Module {
    qkv = k.nn.linear(C, 3 * C);
    proj = k.nn.linear(C, C);
    forward(x: k.Tensor): k.Tensor {
      const [b, t] = [x.shape[0]!, x.shape[1]!];
      const heads = (u: k.Tensor): k.Tensor => u.reshape([b, t, H, C / H]).transpose(1, 2);
      const [q, key, v] = this.qkv.call(x).chunk(3, -1) as [k.Tensor, k.Tensor, k.Tensor];
      const y = k.nn.functional.scaledDotProductAttention(heads(q), heads(key), heads(v), { isCausal: true });
      return this.proj.call(y.transpose(1, 2).reshape([b, t, C]));
    }
  }
  class TinyGpt extends k.nn.Module {
    wte = k.nn.embedding(V, C);
    ln = k.nn.layerNorm(C);
    attn = new Attention();
    head = k.nn.linear(C, V);
    forward(ids: k.Tensor): k.Tensor {
      const x = this.wte.call(ids);
      return this.head.call(this.ln.call(x.add(this.attn.call(x))));
    }
  }
  const step = () => {
    k.manualSeed(4);
    const net = new TinyGpt();
    const loss = (logits: k.Tensor, y: k.Tensor) => k.nn.functional.crossEntropy(logits.reshape([-1, V]), y.reshape([-1]));
    // SGD, not Adam: the key bias has an exactly-zero gradient (softmax ignores it) that Adam would blow up from f32 noise.
    return k.trainStep(net, loss, k.optim.sgd({ lr: 0.1, momentum: 0.9 }), { clipGradNorm: 1 });
  };
  const gptSpecs = () => ({ x: k.i32(["batch", T], { max: { batch: 4 } }), y: k.i32(["batch", T]) });
  test("js and wasm match the interpreter at batches 1, 3, 4", async () => {
    const ref = await k.compile(step(), gptSpecs(), { target: "reference" });
    const exes = await Promise.all(["js", "wasm"].map((target) => k.compile(step(), gptSpecs(), { target })));
    for (const b of [1, 3, 4]) {
      const data = { x: Int32Array.from({ length: b * T }, (_, i) => (i * 5 + b) % V), y: Int32Array.from({ length: b * T }, (_, i) => (i * 3 + 1) % V) };
      const want = await ref.run(data);
      for (const exe of exes) closeTo((await exe.run(data)).loss.data, want.loss.data, `${exe.target} loss at ${b}`);
    }
    const ws = await ref.fetchState();
    for (const exe of exes) {
      const gs = await exe.fetchState();
      for (const name of Object.keys(ws)) closeTo(gs[name]!.data, ws[name]!.data, `${exe.target} ${name}`, 1e-3);
    }
  });
});

describe("a saved artifact", () => {
  test("the manifest records the symbol; the standalone loader runs batches 1, 7, max like exe.run and refuses one above max", async () => {
    const exe = await k.compile(mlpStep(), specs(), { target: "js" });
    const dir = mkdtempSync(path.join(tmpdir(), "kiln-sym-"));
    await exe.save(dir);
    const loaded = await loadArtifact(dir);
    expect(loaded.manifest.inputs.find((i) => i.name === "batch")).toMatchObject({ role: "size", max: MAX });
    expect(loaded.manifest.inputs.find((i) => i.name === "x")!.symbolic).toEqual({ name: "batch", scale: 1 });
    const model = createModel(loaded, new JsArtifactRunner(loaded.artifact));
    for (const b of [1, 7, MAX]) {
      const data = batchOf(b);
      const want = await exe.run(data);
      const got = await model.run(data);
      closeTo(got["loss"]!.data, want.loss.data, `loss at ${b}`);
      const ws = exe.state();
      const gs = model.state();
      for (const name of Object.keys(ws)) closeTo(gs[name]!.data, ws[name]!.data, `${name} at ${b}`);
    }
    await expect(model.run(batchOf(MAX + 1))).rejects.toThrow(/symbolic dimension 'batch' is 17, above its maximum 16/);
    await expect(model.run({ x: batchOf(3).x, y: batchOf(4).y })).rejects.toThrow(/disagree on symbolic dimension 'batch': 'x' has 3, 'y' has 4/);
  });
});

describe("cost", () => {
  test.each(["js", "wasm"])("on %s, exe.run copies a run's rows of each input once, straight into the runtime's memory", async (target) => {
    // Per row: 6 f32 of x, one i32 of y; plus the 4-byte size. No max-size array is padded on the host.
    const exe = await k.compile(({ x, y }: { x: k.Tensor; y: k.Tensor }) => ({ s: x.sum(1).add(y.float()) }), specs(), { target });
    for (const b of [1, 7, MAX, 3]) {
      const { x, y } = batchOf(b);
      const out = (await exe.run({ x, y })) as { s: { data: Float32Array } };
      expect(exe.ioStats?.bytesIn, `batch ${b}`).toBe(b * (6 * 4 + 4) + 4);
      for (let r = 0; r < b; r++) expect(out.s.data[r]).toBeCloseTo(x.slice(r * 6, r * 6 + 6).reduce((a, v) => a + v, 0) + y[r]!, 5);
    }
    await exe.close();
  });

  test("js bounds row loops and reductions over the batch by the run's batch; no mask is left", async () => {
    const exe = await k.compile(mlpStep(), specs(), { target: "js" });
    const sources = exe.artifact!.kernels.map((kk) => kk.source).join("\n");
    expect(sources).toMatch(/const lim_(\w+) = Math\.min\(\d+, Math\.ceil\(\d+ \* b\d+\[0\] \/ 16\)\);/);
    expect(sources).toMatch(/for \(let r\d+ = 0; r\d+ < lim_r\d+; r\d+\+\+\)/); // a reduction over the batch
    // The size is read only by the bounds: the masks (`row < batch`) are gone.
    const size = exe.artifact!.buffers.findIndex((b) => b.name === "batch");
    const reads = sources.split("\n").filter((l) => l.includes(`b${size}[0]`));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((l) => /const lim_\w+ = /.test(l))).toBe(true);
  });

  // A max of 256 rows: enough workgroups per dispatch for a batch of 7 to need fewer.
  const BIG = 256;
  // A deterministic measure of work per run: wasm's split-loop iterations, webgpu's dispatched workgroups.
  type Measured = { run: (i: Record<string, HostTensor>) => Promise<Record<string, HostTensor>>; work: () => number; close: () => Promise<void> };
  const shrinking: [string, () => Promise<Measured>][] = [
    [
      "wasm splits only the run's rows across its threads",
      async () => {
        // Two threads that split even the smallest section: the pool divides the shrunk range.
        const exe = await createWasmExecutor(mlpGraph(BIG).g, { threads: 2, minParallelWork: 0 });
        await exe.runner.whenThreadsReady(); // the pool's split, not the caller's lone run before the workers are up
        return { run: exe.run, work: () => exe.runner.launchStats.iterations, close: exe.close };
      },
    ],
    ...(gpu.available
      ? [
          [
            "webgpu dispatches only the workgroups of the run's rows",
            async () => {
              const exe = await createWebGpuExecutor(mlpGraph(BIG).g);
              return { run: exe.run, work: () => exe.runner.dispatchStats.workgroups, close: async () => {} };
            },
          ] as [string, () => Promise<Measured>],
        ]
      : []),
  ];
  test.each(shrinking)("%s: less work at batch 7 than at the max, results still the interpreter's", async (_, make) => {
    const { g, state } = mlpGraph(BIG);
    const exe = await make();
    const work: Record<number, number> = {};
    for (const b of [BIG, 7, 1]) {
      const { x, y } = batchOf(b);
      // The padded rows hold garbage that must not reach any result.
      const padded = {
        x: { dtype: "f32" as const, shape: [BIG, 6], data: Float32Array.from({ length: BIG * 6 }, (_, i) => (i < b * 6 ? x[i]! : 99)) },
        y: { dtype: "i32" as const, shape: [BIG], data: Int32Array.from({ length: BIG }, (_, i) => (i < b ? y[i]! : 2)) },
        batch: { dtype: "i32" as const, shape: [], data: Int32Array.of(b) },
      };
      const before = exe.work();
      const got = await exe.run({ ...padded, ...state });
      work[b] = exe.work() - before;
      const want = interpret(g, { x: { dtype: "f32", shape: [b, 6], data: x }, y: { dtype: "i32", shape: [b], data: y }, batch: padded.batch, ...state });
      for (const o of g.outputs) closeTo(got[o.name]!.data.subarray(0, want[o.name]!.data.length), want[o.name]!.data, `${o.name} at batch ${b}`);
    }
    // Same launches at every size; the row-wise ones run only the rows the batch needs.
    expect(work[7]).toBeLessThan(work[BIG]!);
    expect(work[1]).toBeLessThanOrEqual(work[7]!);
    await exe.close();
  });

  test("the dispatch of a run's rows, by hand: 256 rows of 5 threads, 64 to a workgroup", () => {
    const sym = { size: 0, max: 256, sections: [[256, 5]] as [number, number][], perWorkgroup: 64 };
    expect(neededWorkgroups(sym, 256)).toBe(20); // 1280 threads
    expect(neededWorkgroups(sym, 7)).toBe(1); // 35 threads
    expect(neededWorkgroups(sym, 13)).toBe(2); // 65 threads
    // Blocks of 4 rows (extent 64): a run of 7 rows needs 2 blocks; the x count of the max is kept.
    const blocked = { ...sym, sections: [[64, 100]] as [number, number][] };
    expect(shrunkWorkgroups([100, 1, 1], blocked, 7)).toEqual([4, 1, 1]); // 200 threads
    expect(shrunkWorkgroups([10, 10, 1], blocked, 130)).toEqual([10, 6, 1]); // 33 × 100 threads = 52 workgroups
    expect(shrunkWorkgroups([10, 10, 1], blocked, 256)).toEqual([10, 10, 1]);
  });

  test("the symbolic MLP step launches as many kernels on wasm as the fixed one (masks ride along as extra roots)", async () => {
    const fixed = await k.compile(mlpStep(), { x: k.f32([MAX, 6]), y: k.i32([MAX]) }, { target: "wasm" });
    const symbolic = await k.compile(mlpStep(), specs(), { target: "wasm" });
    expect(symbolic.artifact!.kernels.length).toBe(fixed.artifact!.kernels.length);
  });
});

describe("the dump and the parser", () => {
  test("types name the symbol; the size input prints its max; print → parse → print is the identity", () => {
    const g = k.traceFunction("mlp", mlpStep() as never, specs()).graph;
    const text = printGraph(g);
    expect(text).toContain("%x: f32[batch,6]");
    expect(text).toContain("%y: i32[batch]");
    expect(text).toContain("%batch: i32[] max(16)");
    expect(text).toMatch(/= dot %x, %\d+ : f32\[batch,5\]/);
    expect(printGraph(parseGraph(text))).toBe(text);
    const masked = printGraph(maskSymbolic.run(g, undefined as never));
    expect(masked).toMatch(/= where %\d+, %\d+, %\d+ : f32\[batch,5\]/);
    expect(printGraph(parseGraph(masked))).toBe(masked);
  });

  test("the kernel IR names the symbol on buffers and the size buffer's max; it parses back to the same text", () => {
    const g = k.traceFunction("mlp", mlpStep() as never, specs()).graph;
    for (const compiled of [compileJs(g), compileWasm(g)]) {
      const text = printKernelProgram(compiled.program);
      expect(text).toMatch(/buffer b\d+ input f32\[batch,6\] "x"/);
      expect(text).toMatch(/buffer b\d+ input i32\[\] max\(16\) "batch"/);
      expect(text).toMatch(/buffer b\d+ temp f32\[batch,5\]/);
      expect(printKernelProgram(parseKernelProgram(text))).toBe(text);
    }
    expect(() => parseKernelProgram('program @p\n  buffer b0 input f32[n,2] "x"\n')).toThrow(/unknown symbolic dimension 'n'/);
  });

  test("a reshape to [T*batch, C] prints the scale and parses back", () => {
    const fn = (x: k.Tensor) => x.reshape([-1, 3]).relu().sum(1);
    const g = k.traceFunction("r", fn as never, [k.f32(["batch", 4, 3], { max: { batch: 8 } })]).graph;
    const text = printGraph(g, { locs: false });
    expect(text).toContain("reshape %x : f32[4*batch,3]");
    expect(printGraph(parseGraph(text), { locs: false })).toBe(text);
  });

  test("the parser refuses a symbol it was not given and a type that contradicts the analysis", () => {
    expect(() => parseGraph("graph @g(%x: f32[n,2]) {\n  %0 = neg %x : f32[n,2]\n  return %0 as out\n}\n")).toThrow(/unknown symbolic dimension 'n'/);
    const wrong = "graph @g(%x: f32[b,2], %b: i32[] max(4)) {\n  %0 = neg %x : f32[4,2]\n  return %0 as out\n}\n";
    expect(() => parseGraph(wrong)).toThrow(/does not match the symbolic dimensions .*\[b,2\]/);
  });
});

describe("checkNumerics", () => {
  test("looks at the run's rows only: log of the zero padding is not reported, a -inf in a real row is", async () => {
    const fn = (x: k.Tensor) => x.log().sum(0);
    const exe = await k.compile(fn, [k.f32(["batch", 2], { max: { batch: 4 } })], { target: "js", checkNumerics: true });
    const out = (await exe.run([new Float32Array([1, 2, 3, 4])])) as unknown as { data: Float32Array };
    closeTo(out.data, [Math.log(3), Math.log(8)], "sum of logs");
    await expect(exe.run([new Float32Array([1, 2, 0, 4])])).rejects.toThrow(/log2 produced -Inf/);
  });
});

describe("errors", () => {
  test("a batch above the declared max names the input, the dim and both sizes", async () => {
    const exe = await k.compile(({ x }: { x: k.Tensor }) => x.sum(), { x: k.f32(["batch", 2], { max: { batch: 4 } }) }, { target: "js" });
    const e = await rejectedKilnError(exe.run({ x: new Float32Array(10) }));
    expect(e.message).toMatch(/input 'x': symbolic dimension 'batch' is 5, above its maximum 4/);
    expect(e.message.split("\n")).toHaveLength(1);
  });

  test("two inputs that disagree on the batch", async () => {
    const exe = await k.compile(mlpStep(), specs(), { target: "js" });
    const e = await rejectedKilnError(exe.run({ x: new Float32Array(7 * 6), y: new Int32Array(8) }));
    expect(e.message).toMatch(/inputs disagree on symbolic dimension 'batch': 'x' has 7, 'y' has 8/);
  });

  test("specs: one symbol, leading only, maxima that agree", () => {
    expect(thrownKilnError(() => k.f32([4, "batch"])).message).toMatch(/only the leading dimension may be symbolic/);
    expect(thrownKilnError(() => k.f32(["batch", 2], { max: { n: 3 } })).message).toMatch(/'max' names 'n', but the symbolic dimension is 'batch'/);
    const two = { x: k.f32(["batch", 2], { max: { batch: 4 } }), y: k.f32(["batch"], { max: { batch: 8 } }) };
    expect(thrownKilnError(() => k.traceFunction("t", (({ x }: { x: k.Tensor }) => x) as never, two)).message).toMatch(/different maxima: 4 and 8/);
  });

  test("a symbolic dim where it is not supported is refused at the user's line", () => {
    const flip = (x: k.Tensor) => x.flip(0).sum(0);
    expect(
      thrownKilnError(
        () =>
          printGraph(k.traceFunction("f", flip as never, [k.f32(["batch", 2])]).graph, { locs: false }) &&
          maskSymbolic.run(k.traceFunction("f", flip as never, [k.f32(["batch", 2])]).graph, undefined as never),
      ).message,
    ).toMatch(/flip along the symbolic axis 0 \('batch'\) is not supported/);
    const mixed = (x: k.Tensor) => x.add(k.zeros([256, 2]).add(1).cumsum(0)).mean();
    const e = thrownKilnError(() => k.traceFunction("m", mixed as never, [k.f32(["batch", 2])]));
    expect(e.message).toMatch(/symbolic dimension 'batch' \(at most 256\) meets a fixed dimension of size 256/);
    expect(e.diag.loc?.file).toMatch(/symbolic-batch\.test\.ts$/);
  });
});
