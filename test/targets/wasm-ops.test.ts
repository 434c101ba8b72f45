// The wasm target on the DSL's op surface, composites, gradients and a model, each compared
// with the float64 interpreter at f32 tolerances (atol 1e-5, rtol 1e-4 unless a case says
// otherwise), in three configurations: scalar lowering, SIMD on one thread, and SIMD split
// across two threads (every section split, however small). The cases mirror
// test/targets/js-ops.test.ts; wasm computes in f32 throughout, so a few tolerances are wider.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm, type WasmCompileOptions } from "../../codegen/wasm/target.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { WasmArtifactRunner, type WasmRunOptions } from "../../runtime/wasm/run-artifact.ts";
import { mulberry32 } from "../util/random-graph.ts";

type Fn = (...args: k.Tensor[]) => unknown;
interface Case {
  readonly name: string;
  readonly fn: Fn;
  readonly specs: readonly k.InputSpec[];
  /** Exclusive upper bound of i32 inputs (indices); default 4. */
  readonly intRange?: number;
  /** f32 inputs are drawn from [lo, hi); default [-1, 1). */
  readonly range?: readonly [number, number];
  readonly atol?: number;
  readonly rtol?: number;
}

interface Config {
  readonly name: string;
  readonly compile: WasmCompileOptions;
  readonly run: WasmRunOptions;
}

const CONFIGS: readonly Config[] = [
  { name: "scalar", compile: { simd: false }, run: { threads: 1 } },
  { name: "simd, 1 thread", compile: {}, run: { threads: 1 } },
  { name: "simd, 2 threads", compile: {}, run: { threads: 2, minParallelWork: 0 } },
];

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

function inputsFor(g: Graph, c: Case): Record<string, HostTensor> {
  const rand = mulberry32(1234);
  const [lo, hi] = c.range ?? [-1, 1];
  const out: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const count = numel(n.type.shape);
    const data =
      n.type.dtype === "f32"
        ? Float64Array.from(Float32Array.from({ length: count }, () => lo + rand() * (hi - lo)))
        : n.type.dtype === "i32"
          ? Int32Array.from({ length: count }, () => (n.name === "seed" ? 42 : Math.floor(rand() * (c.intRange ?? 4))))
          : Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 1 : 0));
    out[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data };
  }
  return out;
}

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

async function check(c: Case, config: Config): Promise<void> {
  const g = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs).graph;
  const compiled = compileWasm(g, { verify: true, ...config.compile });
  const inputs = inputsFor(g, c);
  const want = interpret(g, inputs);
  const runner = await WasmArtifactRunner.create(compiled.artifact, config.run);
  runners.push(runner);
  const got = runner.run(inputs);
  const atol = c.atol ?? 1e-5;
  const rtol = c.rtol ?? 1e-4;
  for (const o of g.outputs) {
    const a = got[o.name]!.data;
    // The interpreter's f32 values rounded to f32, as a device stores them (an f64 result past f32's range is inf).
    const e = want[o.name]!.dtype === "f32" ? Float32Array.from(want[o.name]!.data) : want[o.name]!.data;
    expect(a.length).toBe(e.length);
    for (let j = 0; j < e.length; j++) {
      const ok = Number.isNaN(e[j]!) ? Number.isNaN(a[j]!) : a[j] === e[j] || Math.abs(a[j]! - e[j]!) <= atol + rtol * Math.abs(e[j]!);
      if (!ok) throw new Error(`${c.name} (${config.name}): output ${o.name}[${j}] wasm ${a[j]} vs interpreter ${e[j]}\n${formatFusionPlan(compiled.graph, compiled.plan)}`);
    }
  }
}

const elementwise: Case[] = [
  { name: "add/sub/mul/div broadcast", fn: (x, y) => x.add(y).mul(x.sub(y)).div(y.abs().add(0.5)), specs: [f([3, 4]), f([4])] },
  { name: "exp log sqrt rsqrt", fn: (x) => [x.exp(), x.abs().add(0.1).log(), x.abs().sqrt(), x.abs().add(0.2).rsqrt()], specs: [f([5, 3])] },
  { name: "sin cos pow", fn: (x) => [x.sin(), x.cos(), x.pow(3), x.abs().add(0.1).pow(0.7), x.pow(-2)], specs: [f([7])] },
  { name: "max min clamp", fn: (x, y) => [x.maximum(y), x.minimum(y), x.clamp(-0.3, 0.4)], specs: [f([2, 5]), f([2, 5])] },
  { name: "comparisons and where", fn: (x, y) => [x.lt(y), x.le(y), x.gt(y), x.ge(y), x.eq(x), x.ne(y), x.gt(0).where(x, y.mul(2))], specs: [f([9]), f([9])] },
  { name: "logical ops on bool", fn: (a, b) => [a.logicalAnd(b), a.logicalOr(b), a.logicalNot()], specs: [k.bool([6]), k.bool([6])] },
  { name: "activations", fn: (x) => [x.relu(), x.leakyRelu(0.1), x.gelu(), x.gelu("tanh"), x.silu(), x.sigmoid(), x.tanh(), x.softplus()], specs: [f([4, 6])], range: [-4, 4] },
  { name: "i32 arithmetic, floor div and mod", fn: (a, b) => [a.add(b), a.mul(b).sub(3), a.sub(5).floorDivide(b.add(1)), a.sub(5).remainder(b.add(1)), a.float().div(2)], specs: [i([8]), i([8])], intRange: 10 },
  { name: "casts", fn: (x) => [x.mul(5).int(), x.gt(0).float(), x.mul(3).int().float().add(x)], specs: [f([10])], range: [-3, 3] },
];

const reductions: Case[] = [
  { name: "sum mean over dims", fn: (x) => [x.sum(), x.sum(1), x.sum([0, 2], true), x.mean(-1), x.mean([0, 1])], specs: [f([3, 4, 5])] },
  { name: "max min over dims", fn: (x) => [x.max(), x.max(0), x.min(2, true)], specs: [f([3, 4, 5])] },
  { name: "var std logsumexp", fn: (x) => [x.var(1), k.std(x, 0), x.logsumexp(1)], specs: [f([6, 7])] },
  { name: "argmax argmin", fn: (x) => [x.argmax(1), x.argmin(0), x.argmax()], specs: [f([5, 6])] },
  { name: "cumsum", fn: (x) => [x.cumsum(0), x.cumsum(1)], specs: [f([4, 5])] },
  { name: "softmax logSoftmax on inner and outer dims", fn: (x) => [x.softmax(-1), x.softmax(0), x.logSoftmax(1), x.logSoftmax(0)], specs: [f([5, 7])] },
  { name: "i32 sum and max", fn: (a) => [a.sum(0), a.max(1)], specs: [i([3, 4])], intRange: 100 },
  { name: "any all", fn: (a) => [k.any(a, 1), k.all(a, 0)], specs: [k.bool([4, 3])] },
];

const movement: Case[] = [
  { name: "reshape permute transpose flatten", fn: (x) => [x.reshape(4, 6), x.permute(2, 0, 1), x.transpose(0, 2), x.flatten(1), x.T], specs: [f([2, 3, 4])] },
  { name: "expand unsqueeze squeeze", fn: (x) => [x.unsqueeze(1).expand(3, 4, 5), x.reshape(3, 1, 5).squeeze(1)], specs: [f([3, 5])] },
  { name: "slice narrow flip", fn: (x) => [x.slice([1, 5, 2], [null, null, 2]), x.narrow(1, 1, 3), x.flip([0, 1]), x.slice(2)], specs: [f([6, 5])] },
  { name: "pad with values", fn: (x) => [x.pad([1, 2]), x.pad([0, 1, 2, 0], -3)], specs: [f([3, 4])] },
  { name: "cat stack split chunk repeat", fn: (x, y) => [k.cat([x, y], 0), k.stack([x, y], 1), ...x.split(1, 1), ...y.chunk(2, 1), x.repeat(2, 3)], specs: [f([2, 3]), f([2, 3])] },
  { name: "gather indexSelect", fn: (x, idx) => [x.gather(1, idx), x.indexSelect(0, idx.reshape(-1).slice([0, 3]))], specs: [f([4, 5]), i([4, 2])] },
  { name: "tril triu", fn: (x) => [k.tril(x), k.triu(x, 1)], specs: [f([4, 4])] },
  { name: "a movement chain feeding a reduction", fn: (x) => x.transpose(0, 1).flip(0).pad([1, 1]).sum(1), specs: [f([3, 4])] },
];

const linalg: Case[] = [
  { name: "matmul 2-d, odd sizes", fn: (a, b) => a.matmul(b), specs: [f([5, 7]), f([7, 3])] },
  { name: "matmul batched and broadcast", fn: (a, b) => a.matmul(b), specs: [f([2, 3, 4, 6]), f([6, 5])] },
  { name: "matrix-vector and vector-matrix", fn: (a, v) => [a.matmul(v), v.matmul(a.transpose(0, 1))], specs: [f([4, 8]), f([8])] },
  { name: "matmul of transposed operands", fn: (a, b) => a.t().matmul(b.t()), specs: [f([8, 4]), f([12, 8])] },
  { name: "i32 matmul", fn: (a, b) => a.matmul(b), specs: [i([3, 4]), i([4, 2])], intRange: 50 },
];

const composites: Case[] = [
  { name: "linear", fn: (x, w, b) => F.linear(x, w, b), specs: [f([4, 6]), f([3, 6]), f([3])] },
  { name: "conv2d with padding and stride", fn: (x, w, b) => F.conv2d(x, w, b, { padding: 1, stride: 2 }), specs: [f([2, 3, 7, 7]), f([4, 3, 3, 3]), f([4])] },
  { name: "conv2d dilation and groups", fn: (x, w) => F.conv2d(x, w, null, { dilation: 2, groups: 2 }), specs: [f([1, 4, 8, 8]), f([6, 2, 3, 3])] },
  { name: "convTranspose2d", fn: (x, w) => F.convTranspose2d(x, w, null, { stride: 2, padding: 1 }), specs: [f([1, 3, 4, 4]), f([3, 2, 3, 3])] },
  { name: "maxPool2d avgPool2d", fn: (x) => [F.maxPool2d(x, 2), F.avgPool2d(x, 3, { stride: 2, padding: 1 })], specs: [f([2, 2, 6, 6])] },
  { name: "layerNorm groupNorm", fn: (x, w, b) => [F.layerNorm(x, [4, 5], w, b), F.groupNorm(x.reshape(2, 6, 5), 3)], specs: [f([3, 4, 5]), f([4, 5]), f([4, 5])] },
  { name: "batchNorm training", fn: (x) => F.batchNorm(x, null, null, { training: true }), specs: [f([4, 3, 2, 2])] },
  { name: "losses", fn: (x, y, t) => [F.crossEntropy(x, y), F.crossEntropy(x, y, { labelSmoothing: 0.1 }), F.nllLoss(x.logSoftmax(1), y), F.mseLoss(x, t), F.l1Loss(x, t), F.binaryCrossEntropyWithLogits(x, t.gt(0).float())], specs: [f([6, 5]), i([6]), f([6, 5])], intRange: 5 },
  { name: "embedding", fn: (idx, w) => F.embedding(idx, w), specs: [i([3, 4]), f([10, 6])], intRange: 10 },
  { name: "causal attention", fn: (q, kk, v) => F.scaledDotProductAttention(q, kk, v, { isCausal: true }), specs: [f([2, 5, 8]), f([2, 5, 8]), f([2, 5, 8])] },
  { name: "attention with a bool mask", fn: (q, kk, v, m) => F.scaledDotProductAttention(q, kk, v, { attnMask: m }), specs: [f([3, 4]), f([6, 4]), f([6, 2]), k.bool([3, 6])] },
  { name: "dropout (rng matches the interpreter bit for bit)", fn: (x) => F.dropout(x, 0.3), specs: [f([8, 9])] },
];

const gradients: Case[] = [
  { name: "grad of a matmul-relu-sum", fn: k.grad((x: k.Tensor) => x.matmul(x.transpose(0, 1)).relu().sum()) as Fn, specs: [f([4, 3])] },
  { name: "grad of softmax cross-entropy wrt logits and weights", fn: k.grad((x: k.Tensor, w: k.Tensor) => F.crossEntropy(x.matmul(w), x.sum(1).gt(0).int()), { argnums: [0, 1] }) as Fn, specs: [f([5, 4]), f([4, 3])] },
  { name: "grad of layerNorm", fn: k.grad((x: k.Tensor) => F.layerNorm(x, 6).mul(x).sum()) as Fn, specs: [f([3, 6])] },
  { name: "grad of conv2d + maxPool", fn: k.grad((x: k.Tensor, w: k.Tensor) => F.maxPool2d(F.conv2d(x, w, null, { padding: 1 }), 2).square().sum(), { argnums: [0, 1] }) as Fn, specs: [f([1, 2, 4, 4]), f([3, 2, 3, 3])] },
  { name: "grad of grad of tanh", fn: k.grad((x: k.Tensor) => (k.grad((y: k.Tensor) => y.tanh().sum()) as (y: k.Tensor) => k.Tensor)(x).sum()) as Fn, specs: [f([5])] },
];

const bigger: Case[] = [
  { name: "elementwise chain, odd length (vector body + scalar tail)", fn: (x, y) => x.mul(y).add(x.exp()).relu().sqrt(), specs: [f([1027]), f([1027])] },
  { name: "row softmax, wide rows", fn: (x) => x.softmax(-1), specs: [f([6, 301])] },
  { name: "column and row sums, i32 and f32", fn: (x, a) => [x.sum(0), x.sum(1), a.sum(0), a.sum(1), x.max(1)], specs: [f([37, 45]), i([37, 45])], intRange: 1000 },
  { name: "matmul with bias and relu epilogue, blocked sizes", fn: (a, b, c) => a.matmul(b).add(c).relu(), specs: [f([16, 40]), f([40, 24]), f([24])] },
  { name: "matmul with a transposed right operand (linear)", fn: (x, w) => x.matmul(w.t()), specs: [f([12, 33]), f([20, 33])] },
  { name: "batched matmul, ragged sizes", fn: (a, b) => a.matmul(b), specs: [f([3, 7, 13]), f([3, 13, 9])] },
  { name: "matmul with a packed right operand (1 MB) and an epilogue", fn: (a, b, c) => a.matmul(b).add(c).relu(), specs: [f([256, 512]), f([512, 512]), f([512])], atol: 1e-4 },
  { name: "exp over a wide range (overflow to inf, underflow to 0)", fn: (x) => x.mul(120).exp(), specs: [f([4099])], atol: 1e-37, rtol: 2e-5 },
];

describe.each(CONFIGS)("wasm target ($name)", (config) => {
  describe.each([
    ["elementwise", elementwise],
    ["reductions", reductions],
    ["movement", movement],
    ["linear algebra", linalg],
    ["composites", composites],
    ["gradients", gradients],
    ["larger shapes", bigger],
  ] as const)("%s", (_group, cases) => {
    test.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => check(c, config));
  });

  test("one Adam step of a small MLP matches the interpreter (loss and every new parameter)", async () => {
    const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
    const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
    await check({ name: "mlp adam step", fn: step as unknown as Fn, specs: [f([8, 12]), i([8])] }, config);
  });

  test("one SGD step of a wider MLP (blocked contractions forward and backward) matches the interpreter", async () => {
    const net = k.nn.sequential(k.nn.linear(96, 64), k.nn.relu(), k.nn.linear(64, 32), k.nn.relu(), k.nn.linear(32, 10));
    const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
    await check({ name: "wide mlp sgd step", fn: step as unknown as Fn, specs: [f([16, 96]), i([16])], intRange: 10, atol: 2e-5, rtol: 2e-4 }, config);
  });
});

describe("wasm target through k.compile", () => {
  test("target wasm runs and reports the same stats as js", async () => {
    const exe = await k.compile((x: k.Tensor, w: k.Tensor) => x.matmul(w).relu(), [f([2, 3]), f([3, 2])], { target: "wasm", threads: 1 });
    const out = (await exe.run([[1, 2, 3, 4, 5, 6], [1, -1, 0, 2, -1, 0.5]])) as { data: ArrayLike<number> };
    // [1,2,3]·[1,0,-1] = -2 → 0, [1,2,3]·[-1,2,0.5] = 4.5; [4,5,6]·[1,0,-1] = -2 → 0, [4,5,6]·[-1,2,0.5] = 9
    expect(Array.from(out.data)).toEqual([0, 4.5, 0, 9]);
    expect(exe.stats).toMatchObject({ kernels: 1, bytesRead: 48, bytesWritten: 16 });
  });
});

describe("the cpu target", () => {
  test("resolves to wasm here, is not listed twice among available targets, and runs", async () => {
    expect(await k.availableTargets()).toContain("wasm");
    expect(await k.availableTargets()).not.toContain("cpu");
    const exe = await k.compile((x: k.Tensor) => x.mul(2).add(1), [f([5])], { target: "cpu", threads: 1 });
    const out = (await exe.run([[0, 1, 2, 3, -4]])) as { data: ArrayLike<number> };
    expect(Array.from(out.data)).toEqual([1, 3, 5, 7, -7]);
  });
});

describe("wasm runner errors", () => {
  test("an out-of-range gather traps on the workers and the caller alike: the run throws (no hang) and the pool still works", async () => {
    const g = k.traceFunction("gather_oob", ((x: k.Tensor, idx: k.Tensor) => x.gather(0, idx)) as never, [f([4, 64]), i([4, 64])]).graph;
    const runner = await WasmArtifactRunner.create(compileWasm(g).artifact, { threads: 2, minParallelWork: 0 });
    runners.push(runner);
    const [xName, idxName] = g.inputs.map((id) => (nodeOf(g, id) as { name: string }).name) as [string, string];
    const x = { dtype: "f32" as const, shape: [4, 64], data: Float64Array.from({ length: 256 }, (_, j) => j) };
    const bad = { dtype: "i32" as const, shape: [4, 64], data: new Int32Array(256).fill(1_000_000) }; // 256 MB past the start: outside the memory
    expect(() => runner.run({ [xName]: x, [idxName]: bad })).toThrow();
    // Rows 2 and 3 are the worker's half: only it traps, and the caller reports it.
    const badOnWorker = { dtype: "i32" as const, shape: [4, 64], data: Int32Array.from({ length: 256 }, (_, j) => (j >= 128 ? 1_000_000 : 0)) };
    expect(() => runner.run({ [xName]: x, [idxName]: badOnWorker })).toThrow(/a worker thread trapped/);
    const good = { dtype: "i32" as const, shape: [4, 64], data: Int32Array.from({ length: 256 }, (_, j) => j % 4) };
    const out = Object.values(runner.run({ [xName]: x, [idxName]: good }))[0]!.data;
    // out[r, c] = x[idx[r, c], c] = (j % 4) * 64 + c with j = 64r + c
    expect(Array.from(out)).toEqual(Array.from({ length: 256 }, (_, j) => (j % 4) * 64 + (j % 64)));
  });
});
