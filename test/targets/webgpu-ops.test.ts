// The webgpu target on the DSL's op surface, composites, gradients and models, each compared
// with the float64 interpreter at f32 tolerances (atol 1e-5, rtol 1e-4 unless a case says
// otherwise beside it). The cases mirror test/targets/js-ops.test.ts. Without an adapter the
// suite skips with one notice; KILN_REQUIRE_WEBGPU=1 makes that a failure (test/util/webgpu-env.ts).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../codegen/wgsl/target.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { mulberry32 } from "../util/random-graph.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { BATCH, CLASSES, HIDDEN, IN_FEATURES, mlpForward, trainStep } from "../../examples/mlp.ts";

const env = await webGpuTestEnv();

type Fn = (...args: k.Tensor[]) => unknown;
interface Case {
  readonly name: string;
  readonly fn: Fn;
  readonly specs: readonly k.InputSpec[];
  /** Exclusive upper bound of i32 inputs (indices); default 4. */
  readonly intRange?: number;
  /** f32 inputs are drawn from [lo, hi); default [-1, 1). A function picks a range per input name. */
  readonly range?: readonly [number, number] | ((input: string) => readonly [number, number]);
  readonly atol?: number;
  readonly rtol?: number;
}

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

function inputsFor(g: Graph, c: Case): Record<string, HostTensor> {
  const rand = mulberry32(1234);
  const out: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const [lo, hi] = typeof c.range === "function" ? c.range(n.name) : (c.range ?? [-1, 1]);
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


async function check(c: Case): Promise<void> {
  const g = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs).graph;
  const device = env.context!;
  const compiled = compileWebGpu(g, { verify: true, limits: device.limits });
  const inputs = inputsFor(g, c);
  const want = interpret(g, inputs);
  const runner = await WebGpuArtifactRunner.create(device.device, compiled.artifact);
  const got = await runner.run(inputs);
  runner.destroy();
  const atol = c.atol ?? 1e-5;
  const rtol = c.rtol ?? 1e-4;
  for (const o of g.outputs) {
    const a = got[o.name]!.data;
    const e = want[o.name]!.data;
    expect(a.length).toBe(e.length);
    for (let j = 0; j < e.length; j++) {
      const ok = Number.isNaN(e[j]!) ? Number.isNaN(a[j]!) : a[j] === e[j] || Math.abs(a[j]! - e[j]!) <= atol + rtol * Math.abs(e[j]!);
      if (!ok) throw new Error(`${c.name}: output ${o.name}[${j}] webgpu ${a[j]} vs interpreter ${e[j]}\n${formatFusionPlan(compiled.graph, compiled.plan)}\n${compiled.artifact.kernels.map((kk) => kk.source).join("\n")}`);
    }
  }
}

describe.skipIf(!env.available).each([
  ["elementwise", elementwise],
  ["reductions", reductions],
  ["movement", movement],
  ["linear algebra", linalg],
  ["composites", composites],
  ["gradients", gradients],
] as const)("webgpu target: %s", (_group, cases) => {
  // Generous timeouts: lavapipe JIT-compiles each new shader on first use (seconds on 2 busy cores).
  test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => check(c), 180_000);
});

describe.skipIf(!env.available)("webgpu target: models", () => {
  test("one Adam step of a small MLP matches the interpreter (loss and every new parameter)", async () => {
    const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
    const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
    await check({ name: "mlp adam step", fn: step as unknown as Fn, specs: [f([8, 12]), i([8])] });
  }, 180_000);

  test("three Adam steps with gradient clipping follow the reference trajectory (state kept between runs)", async () => {
    const x = Array.from({ length: 32 }, (_, j) => Math.sin(j));
    const y = Array.from({ length: 16 }, (_, j) => j % 2);
    const trajectory = async (target: string) => {
      k.manualSeed(3);
      const net = k.nn.sequential(k.nn.linear(2, 8), k.nn.relu(), k.nn.linear(8, 2));
      const step = k.trainStep(net, (logits, t) => F.crossEntropy(logits, t!), k.optim.adam({ lr: 0.05 }), { clipGradNorm: 1 });
      const exe = await k.compile(step, [f([16, 2]), i([16])], { target });
      const losses: number[] = [];
      for (let n = 0; n < 3; n++) losses.push(((await exe.run([x, y])) as { loss: { data: ArrayLike<number> } }).loss.data[0]!);
      return { losses, weight: Array.from((await exe.fetchState())["2.weight"]!.data) };
    };
    const want = await trajectory("reference");
    const got = await trajectory("webgpu");
    for (const [a, e] of [[got.losses, want.losses], [got.weight, want.weight]] as const)
      a.forEach((v, j) => expect(Math.abs(v - e[j]!)).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(e[j]!)));
  }, 180_000);

  test("the examples' MNIST MLP forward program and AdamW train step match the interpreter", async () => {
    await check({ name: "examples mlp forward", fn: mlpForward as Fn, specs: [f([BATCH, IN_FEATURES]), f([HIDDEN, IN_FEATURES]), f([HIDDEN]), f([CLASSES, HIDDEN]), f([CLASSES])], range: [-0.1, 0.1] });
    const range = (name: string): readonly [number, number] => (name.startsWith("opt.") ? [0, 0] : name.includes(".") ? [-0.05, 0.05] : [0, 1]);
    await check({ name: "examples mlp train step", fn: trainStep.fn as unknown as Fn, specs: [f([BATCH, IN_FEATURES]), i([BATCH])], intRange: CLASSES, range });
  }, 180_000);
});
