// One table of DSL op cases (ops, composites, gradients, models) for every target's op suite,
// and the helper that compiles a case for a target and compares it with the float64
// interpreter. Tolerances default to f32's (atol 1e-5, rtol 1e-4); a looser one sits beside its case.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { interpret } from "../../compiler/ir/interpret.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { halfOf, isFloat, roundToDType, valuesOfStorage, type DType } from "../../compiler/ir/dtype.ts";
import { roundToBfloat16, roundToHalf } from "../../runtime/artifact/half.ts";
import { mulberry32 } from "../util/random-graph.ts";
import { HyperStore, type HyperSettings } from "../../dsl/hyper.ts";
import type { TraceResult } from "../../dsl/trace.ts";
import { BATCH, CLASSES, HIDDEN, IN_FEATURES, mlpForward, trainStep } from "../../examples/mlp.ts";

export type OpTarget = "js" | "webgpu" | "wasm" | "cuda";
export type CaseGroup = "elementwise" | "reductions" | "movement" | "linear algebra" | "composites" | "gradients" | "larger shapes" | "models";
type Fn = (...args: k.Tensor[]) => unknown;

export interface OpCase {
  readonly group: CaseGroup;
  readonly name: string;
  readonly fn: Fn;
  readonly specs: readonly k.InputSpec[];
  /** Exclusive upper bound of i32 inputs (indices); default 4. */
  readonly intRange?: number;
  /** f32 inputs are drawn from [lo, hi); default [-1, 1). A function picks a range per input name. */
  readonly range?: readonly [number, number] | ((input: string) => readonly [number, number]);
  readonly atol?: number;
  readonly rtol?: number;
  /** A train step's hyperparameters, set over its defaults (the `hyper` input never takes random values). */
  readonly hyper?: HyperSettings;
  /** Targets that skip this case, each with the reason. */
  readonly exclude?: Partial<Record<OpTarget, string>>;
  /** Why the f16/bf16 suites skip this case (every target). */
  readonly halfExclude?: string;
}

export const DEFAULT_ATOL = 1e-5;
export const DEFAULT_RTOL = 1e-4;

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

type Entry = Omit<OpCase, "group">;

// BatchNorm modules: their buffers are state inputs the cases draw like any input (a variance from [0.5, 2)).
const batchNorm2dTrain = k.nn.batchNorm2d(3, { momentum: 0.2 });
const batchNorm1dEval = k.nn.batchNorm1d(5, { momentum: null }).eval();
const batchNorm1dTrain = k.nn.batchNorm1d(3);
const runningVarRange = (input: string): readonly [number, number] => (input.endsWith("running_var") ? [0.5, 2] : [-1, 1]);
const inGroup = (group: CaseGroup, entries: readonly Entry[]): OpCase[] => entries.map((e) => ({ group, ...e }));

const elementwise = inGroup("elementwise", [
  { name: "add/sub/mul/div broadcast", fn: (x, y) => x.add(y).mul(x.sub(y)).div(y.abs().add(0.5)), specs: [f([3, 4]), f([4])] },
  { name: "exp log sqrt rsqrt", fn: (x) => [x.exp(), x.abs().add(0.1).log(), x.abs().sqrt(), x.abs().add(0.2).rsqrt()], specs: [f([5, 3])] },
  { name: "sin cos pow", fn: (x) => [x.sin(), x.cos(), x.pow(3), x.abs().add(0.1).pow(0.7), x.pow(-2)], specs: [f([7])] },
  { name: "max min clamp", fn: (x, y) => [x.maximum(y), x.minimum(y), x.clamp(-0.3, 0.4)], specs: [f([2, 5]), f([2, 5])] },
  { name: "comparisons and where", fn: (x, y) => [x.lt(y), x.le(y), x.gt(y), x.ge(y), x.eq(x), x.ne(y), x.gt(0).where(x, y.mul(2))], specs: [f([9]), f([9])] },
  { name: "logical ops on bool", fn: (a, b) => [a.logicalAnd(b), a.logicalOr(b), a.logicalNot()], specs: [k.bool([6]), k.bool([6])] },
  {
    name: "activations",
    fn: (x) => [x.relu(), x.leakyRelu(0.1), x.gelu(), x.gelu("tanh"), x.silu(), x.sigmoid(), x.tanh(), x.softplus()],
    specs: [f([4, 6])],
    range: [-4, 4],
  },
  {
    name: "i32 arithmetic, floor div and mod",
    fn: (a, b) => [a.add(b), a.mul(b).sub(3), a.sub(5).floorDivide(b.add(1)), a.sub(5).remainder(b.add(1)), a.float().div(2)],
    specs: [i([8]), i([8])],
    intRange: 10,
  },
  { name: "casts", fn: (x) => [x.mul(5).int(), x.gt(0).float(), x.mul(3).int().float().add(x)], specs: [f([10])], range: [-3, 3] },
]);

const reductions = inGroup("reductions", [
  { name: "sum mean over dims", fn: (x) => [x.sum(), x.sum(1), x.sum([0, 2], true), x.mean(-1), x.mean([0, 1])], specs: [f([3, 4, 5])] },
  { name: "max min over dims", fn: (x) => [x.max(), x.max(0), x.min(2, true), x.amax([0, 2]), x.amin(1, true)], specs: [f([3, 4, 5])] },
  { name: "var std logsumexp", fn: (x) => [x.var(1), k.std(x, 0), x.logsumexp(1)], specs: [f([6, 7])] },
  { name: "argmax argmin", fn: (x) => [x.argmax(1), x.argmin(0), x.argmax()], specs: [f([5, 6])] },
  { name: "cumsum", fn: (x) => [x.cumsum(0), x.cumsum(1)], specs: [f([4, 5])] },
  { name: "softmax logSoftmax on inner and outer dims", fn: (x) => [x.softmax(-1), x.softmax(0), x.logSoftmax(1), x.logSoftmax(0)], specs: [f([5, 7])] },
  { name: "i32 sum and max", fn: (a) => [a.sum(0), a.amax(1)], specs: [i([3, 4])], intRange: 100 },
  { name: "any all", fn: (a) => [k.any(a, 1), k.all(a, 0)], specs: [k.bool([4, 3])] },
  { name: "max(dim) min(dim) values and indices", fn: (x) => [x.max(1), k.min(x, 0, true), x.max(-1, { keepdim: true }).indices], specs: [f([4, 6])] },
  {
    name: "topk largest and smallest, inner and outer dims",
    fn: (x) => [x.topk(3), x.topk(2, { dim: 0, largest: false }), k.topk(x.int(), 1)],
    specs: [f([5, 7])],
    range: [-3, 3],
  },
  {
    name: "sort and argsort, ascending and descending, i32 ties kept in order",
    fn: (x) => [x.sort(1), x.sort({ dim: 0, descending: true }), x.argsort(-1, true), k.sort(x.int(), 1), k.argsort(x.int(), 0, true)],
    specs: [f([5, 7])],
    range: [-3, 3],
  },
]);

const movement = inGroup("movement", [
  { name: "reshape permute transpose flatten", fn: (x) => [x.reshape(4, 6), x.permute(2, 0, 1), x.transpose(0, 2), x.flatten(1), x.T], specs: [f([2, 3, 4])] },
  { name: "expand unsqueeze squeeze", fn: (x) => [x.unsqueeze(1).expand(3, 4, 5), x.reshape(3, 1, 5).squeeze(1)], specs: [f([3, 5])] },
  { name: "slice narrow flip", fn: (x) => [x.slice([1, 5, 2], [null, null, 2]), x.narrow(1, 1, 3), x.flip([0, 1]), x.slice(2)], specs: [f([6, 5])] },
  {
    name: "slice narrow flip pad on one input",
    fn: (x) => [x.slice([1, 5, 2], [null, null, 2]), x.narrow(1, 1, 3), x.flip([0, 1]), x.pad([1, 2]), x.pad([0, 1, 2, 0], -3)],
    specs: [f([6, 5])],
  },
  { name: "pad with values", fn: (x) => [x.pad([1, 2]), x.pad([0, 1, 2, 0], -3)], specs: [f([3, 4])] },
  {
    name: "cat stack split chunk repeat",
    fn: (x, y) => [k.cat([x, y], 0), k.stack([x, y], 1), ...x.split(1, 1), ...y.chunk(2, 1), x.repeat(2, 3)],
    specs: [f([2, 3]), f([2, 3])],
  },
  { name: "gather indexSelect", fn: (x, idx) => [x.gather(1, idx), x.indexSelect(0, idx.reshape(-1).slice([0, 3]))], specs: [f([4, 5]), i([4, 2])] },
  { name: "tril triu", fn: (x) => [k.tril(x), k.triu(x, 1)], specs: [f([4, 4])] },
  {
    name: "F.pad reflect, replicate, circular",
    fn: (x) => [F.pad(x, [2, 1, 1, 2], "reflect"), F.pad(x, [1, 3], "replicate"), F.pad(x, [1, 1, 0, 2], { mode: "circular" })],
    specs: [f([2, 4, 5])],
  },
  { name: "a movement chain feeding a reduction", fn: (x) => x.transpose(0, 1).flip(0).pad([1, 1]).sum(1), specs: [f([3, 4])] },
]);

const linalg = inGroup("linear algebra", [
  { name: "matmul 2-d, odd sizes", fn: (a, b) => a.matmul(b), specs: [f([5, 7]), f([7, 3])] },
  { name: "matmul batched and broadcast", fn: (a, b) => a.matmul(b), specs: [f([2, 3, 4, 6]), f([6, 5])] },
  { name: "matrix-vector and vector-matrix", fn: (a, v) => [a.matmul(v), v.matmul(a.transpose(0, 1))], specs: [f([4, 8]), f([8])] },
  { name: "matmul of transposed operands", fn: (a, b) => a.t().matmul(b.t()), specs: [f([8, 4]), f([12, 8])] },
  { name: "i32 matmul", fn: (a, b) => a.matmul(b), specs: [i([3, 4]), i([4, 2])], intRange: 50 },
  {
    name: "einsum: batch matmul, outer, trace, diagonal, row dots",
    fn: (a, b, s) => [
      k.einsum("bij,bjk->bik", a, b),
      k.einsum("i,j->ij", s.slice(0), s.slice(1)),
      k.einsum("ii", s),
      k.einsum("ii->i", s),
      k.einsum("bij,bij->bi", a, a),
    ],
    specs: [f([2, 3, 4]), f([2, 4, 5]), f([4, 4])],
  },
]);

const composites = inGroup("composites", [
  { name: "linear", fn: (x, w, b) => F.linear(x, w, b), specs: [f([4, 6]), f([3, 6]), f([3])] },
  { name: "conv2d with padding and stride", fn: (x, w, b) => F.conv2d(x, w, b, { padding: 1, stride: 2 }), specs: [f([2, 3, 7, 7]), f([4, 3, 3, 3]), f([4])] },
  { name: "conv2d dilation and groups", fn: (x, w) => F.conv2d(x, w, null, { dilation: 2, groups: 2 }), specs: [f([1, 4, 8, 8]), f([6, 2, 3, 3])] },
  { name: "convTranspose2d", fn: (x, w) => F.convTranspose2d(x, w, null, { stride: 2, padding: 1 }), specs: [f([1, 3, 4, 4]), f([3, 2, 3, 3])] },
  { name: "maxPool2d avgPool2d", fn: (x) => [F.maxPool2d(x, 2), F.avgPool2d(x, 3, { stride: 2, padding: 1 })], specs: [f([2, 2, 6, 6])] },
  {
    name: "layerNorm groupNorm",
    fn: (x, w, b) => [F.layerNorm(x, [4, 5], w, b), F.groupNorm(x.reshape(2, 6, 5), 3)],
    specs: [f([3, 4, 5]), f([4, 5]), f([4, 5])],
  },
  { name: "batchNorm training", fn: (x) => F.batchNorm(x, null, null, { training: true }), specs: [f([4, 3, 2, 2])] },
  {
    name: "BatchNorm2d module, training: output and running-statistics updates",
    fn: (x) => batchNorm2dTrain.call(x),
    specs: [f([4, 3, 3, 3])],
    range: runningVarRange,
  },
  {
    name: "BatchNorm1d module, eval (running statistics), cumulative momentum",
    fn: (x) => batchNorm1dEval.call(x),
    specs: [f([6, 5, 4])],
    range: runningVarRange,
  },
  {
    name: "losses",
    fn: (x, y, t) => [
      F.crossEntropy(x, y),
      F.crossEntropy(x, y, { labelSmoothing: 0.1 }),
      F.nllLoss(x.logSoftmax(1), y),
      F.mseLoss(x, t),
      F.l1Loss(x, t),
      F.binaryCrossEntropyWithLogits(x, t.gt(0).float()),
    ],
    specs: [f([6, 5]), i([6]), f([6, 5])],
    intRange: 5,
  },
  { name: "embedding", fn: (idx, w) => F.embedding(idx, w), specs: [i([3, 4]), f([10, 6])], intRange: 10 },
  { name: "causal attention", fn: (q, kk, v) => F.scaledDotProductAttention(q, kk, v, { isCausal: true }), specs: [f([2, 5, 8]), f([2, 5, 8]), f([2, 5, 8])] },
  {
    name: "attention with a bool mask",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q, kk, v, { attnMask: m }),
    specs: [f([3, 4]), f([6, 4]), f([6, 2]), k.bool([3, 6])],
  },
  {
    name: "multinomial (with and without replacement) and categorical on the seed",
    fn: (p) => [k.multinomial(p.abs().add(0.05), 5, { replacement: true }), k.multinomial(p.abs().add(0.05), 3), k.categorical(p.mul(2))],
    specs: [f([4, 6])],
  },
  { name: "dropout (rng matches the interpreter bit for bit)", fn: (x) => F.dropout(x, 0.3), specs: [f([8, 9])] },
]);

// Built at import: its biases and out_proj.bias are state inputs the cases fill; the projections are arguments.
const attentionCase = new k.nn.MultiheadAttention(8, 2, { batchFirst: true });

const gradients = inGroup("gradients", [
  { name: "grad of a matmul-relu-sum", fn: k.grad((x: k.Tensor) => x.matmul(x.transpose(0, 1)).relu().sum()) as Fn, specs: [f([4, 3])] },
  {
    name: "grad of softmax cross-entropy wrt logits and weights",
    fn: k.grad((x: k.Tensor, w: k.Tensor) => F.crossEntropy(x.matmul(w), x.sum(1).gt(0).int()), { argnums: [0, 1] }) as Fn,
    specs: [f([5, 4]), f([4, 3])],
  },
  {
    name: "grad of a BatchNorm1d module in training (input, weight, bias) and its running-statistics updates",
    fn: k.grad(
      (x: k.Tensor, w: k.Tensor, b: k.Tensor) =>
        k
          .functionalCall(batchNorm1dTrain, { weight: w, bias: b }, () => batchNorm1dTrain.call(x))
          .square()
          .sum(),
      {
        argnums: [0, 1, 2],
      },
    ) as Fn,
    specs: [f([5, 3]), f([3]), f([3])],
    range: runningVarRange,
  },
  { name: "grad of layerNorm", fn: k.grad((x: k.Tensor) => F.layerNorm(x, 6).mul(x).sum()) as Fn, specs: [f([3, 6])] },
  {
    name: "grad of conv2d + maxPool",
    fn: k.grad(
      (x: k.Tensor, w: k.Tensor) =>
        F.maxPool2d(F.conv2d(x, w, null, { padding: 1 }), 2)
          .square()
          .sum(),
      { argnums: [0, 1] },
    ) as Fn,
    specs: [f([1, 2, 4, 4]), f([3, 2, 3, 3])],
  },
  {
    name: "grad of F.pad reflect, topk values and einsum",
    fn: k.grad(
      (x: k.Tensor, w: k.Tensor) =>
        F.pad(x, [1, 2], "reflect")
          .topk(3)
          .values.square()
          .sum()
          .add(k.einsum("ij,kj->ik", x, w).square().sum()),
      { argnums: [0, 1] },
    ) as Fn,
    specs: [f([3, 4]), f([2, 4])],
  },
  {
    name: "grad of sort values; of MultiheadAttention (causal, batch first) wrt its input and projections",
    fn: (x: k.Tensor, q: k.Tensor, w: k.Tensor, o: k.Tensor) => [
      (k.grad((y: k.Tensor) => y.sort(1, true).values.mul(k.arange(7).float()).sum()) as (y: k.Tensor) => k.Tensor)(x),
      ...(
        k.grad(
          (input: k.Tensor, inProj: k.Tensor, outProj: k.Tensor) =>
            k
              .functionalCall(
                attentionCase,
                { in_proj_weight: inProj, "out_proj.weight": outProj },
                () => attentionCase.attention(input, input, input, { isCausal: true }).output,
              )
              .square()
              .sum(),
          { argnums: [0, 1, 2] },
        ) as (...a: k.Tensor[]) => k.Tensor[]
      )(q, w, o),
    ],
    specs: [f([4, 7]), f([2, 5, 8]), f([24, 8]), f([8, 8])],
    range: [-0.5, 0.5],
  },
  {
    name: "grad of grad of tanh",
    fn: k.grad((x: k.Tensor) => (k.grad((y: k.Tensor) => y.tanh().sum()) as (y: k.Tensor) => k.Tensor)(x).sum()) as Fn,
    specs: [f([5])],
  },
]);

// Shapes past one vector, warp, tile or shared-memory block: tails, ragged edges, long rows.
const largerShapes = inGroup("larger shapes", [
  { name: "elementwise chain, odd length (vector body + scalar tail)", fn: (x, y) => x.mul(y).add(x.exp()).relu().sqrt(), specs: [f([1027]), f([1027])] },
  { name: "exp over a wide range (overflow to inf, underflow to 0)", fn: (x) => x.mul(120).exp(), specs: [f([4099])], atol: 1e-37, rtol: 2e-5 },
  { name: "row softmax, wide rows", fn: (x) => x.softmax(-1), specs: [f([6, 301])] },
  { name: "long rows (warp reductions)", fn: (x) => [x.sum(1), x.amax(1), x.softmax(-1), x.logsumexp(1)], specs: [f([6, 300])] },
  {
    name: "column and row sums, i32 and f32",
    fn: (x, a) => [x.sum(0), x.sum(1), a.sum(0), a.sum(1), x.amax(1)],
    specs: [f([37, 45]), i([37, 45])],
    intRange: 1000,
  },
  { name: "i32 sum and max, long rows", fn: (a) => [a.sum(0), a.amax(1), a.sum()], specs: [i([3, 100])], intRange: 100 },
  { name: "any all, long rows", fn: (a) => [k.any(a, 1), k.all(a, 0), k.any(a)], specs: [k.bool([4, 70])] },
  { name: "matmul batched tiled", fn: (a, b) => a.matmul(b), specs: [f([2, 8, 12]), f([12, 8])] },
  { name: "matmul long k", fn: (a, b) => a.matmul(b), specs: [f([4, 256]), f([256, 4])] },
  { name: "matmul with bias and relu epilogue, blocked sizes", fn: (a, b, c) => a.matmul(b).add(c).relu(), specs: [f([16, 40]), f([40, 24]), f([24])] },
  { name: "matmul with a transposed right operand (linear)", fn: (x, w) => x.matmul(w.t()), specs: [f([12, 33]), f([20, 33])] },
  { name: "batched matmul, ragged sizes", fn: (a, b) => a.matmul(b), specs: [f([3, 7, 13]), f([3, 13, 9])] },
  { name: "matmul blocked in shared memory, ragged edges", fn: (a, b) => a.matmul(b), specs: [f([2, 130, 40]), f([40, 136])] },
  { name: "linear relu blocked in shared memory", fn: (x, w, b) => F.linear(x, w, b).relu(), specs: [f([256, 40]), f([72, 40]), f([72])] },
  {
    name: "grad of linear relu, blocked in shared memory",
    fn: k.grad((x: k.Tensor, w: k.Tensor) => F.linear(x, w).relu().sum(), { argnums: [0, 1] }) as Fn,
    specs: [f([256, 96]), f([128, 96])],
  },
  {
    name: "matmul with a packed right operand (1 MB) and an epilogue",
    fn: (a, b, c) => a.matmul(b).add(c).relu(),
    specs: [f([256, 512]), f([512, 512]), f([512])],
    atol: 1e-4,
    exclude: {
      cuda: "134M multiply-adds per strategy in the CPU emulation of every cuda case (minutes on 2 cores); the blocked matmuls above cover the same kernels",
    },
  },
]);

const transformerDims = { T: 8, D: 16, H: 2 } as const;
function transformerBlock(x: k.Tensor, wqkv: k.Tensor, wo: k.Tensor, w1: k.Tensor, w2: k.Tensor): k.Tensor {
  const { T, D, H } = transformerDims;
  const qkv = F.linear(F.layerNorm(x, D), wqkv);
  const [q, kk, v] = qkv.split(D, -1).map((t) => t.reshape(T, H, D / H).transpose(0, 1));
  const attended = F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }).transpose(0, 1).reshape(T, D);
  const x2 = x.add(F.linear(attended, wo));
  return x2
    .add(F.linear(F.linear(F.layerNorm(x2, D), w1).gelu(), w2))
    .square()
    .mean();
}
const transformerSpecs = ((d) => [f([d.T, d.D]), f([3 * d.D, d.D]), f([d.D, d.D]), f([4 * d.D, d.D]), f([d.D, 4 * d.D])])(transformerDims);

/** m is an output (written in f32); the count recomputes e inline: every row must find its max. */
export function maxTies(x: k.Tensor): k.Tensor[] {
  const e = x.mul(1.1).exp();
  const m = e.amax(1, true);
  return [m, e.eq(m).float().sum(1)];
}

// Pixels in [0, 1), weights at PyTorch's init scale, fresh Adam state (the step counter is i32 and draws from intRange).
const examplesTrainRange = (name: string): readonly [number, number] => (name.startsWith("opt.") ? [0, 0] : name.includes(".") ? [-0.05, 0.05] : [0, 1]);

const smallMlpAdamStep = k.trainStep(
  k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4)),
  (logits, y) => F.crossEntropy(logits, y!),
  k.optim.adam({ lr: 1e-2 }),
);
const wideMlpSgdStep = k.trainStep(
  k.nn.sequential(k.nn.linear(96, 64), k.nn.relu(), k.nn.linear(64, 32), k.nn.relu(), k.nn.linear(32, 10)),
  (logits, y) => F.crossEntropy(logits, y!),
  k.optim.sgd({ lr: 0.1 }),
);

// Runtime hyperparameters away from their defaults, per parameter group (the `hyper` input).
export const groupedAdamWStep = k.trainStep(
  k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4)),
  (logits, y) => F.crossEntropy(logits, y!),
  k.optim.adamW({ lr: 1e-2, weightDecay: 0.1 }, { groups: [{ name: "noDecay", params: (n) => n.endsWith(".bias"), weightDecay: 0 }] }),
  { clipGradNorm: 1 },
);
export const groupedAdamWHyper: HyperSettings = {
  lr: 0.03,
  betas: [0.8, 0.95],
  eps: 1e-6,
  weightDecay: 0.2,
  clipGradNorm: 0.5,
  noDecay: { weightDecay: 0.01 },
};
const groupedSgdStep = k.trainStep(
  k.nn.sequential(k.nn.linear(12, 16), k.nn.tanh(), k.nn.linear(16, 4)),
  (logits, y) => F.crossEntropy(logits, y!),
  k.optim.sgd({ lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3 }, { groups: [{ params: ["2.weight"], lr: 0.05, momentum: 0.5 }] }),
);
// Moments and momentum buffers small and non-negative (v is a second moment).
const optimizerStateRange = (name: string): readonly [number, number] => (name.startsWith("opt.") ? [0, 0.01] : [-1, 1]);

const models = inGroup("models", [
  {
    name: "an AdamW step with a no-decay group and clipping, hyperparameters set at run time",
    fn: groupedAdamWStep as unknown as Fn,
    specs: [f([8, 12]), i([8])],
    range: optimizerStateRange,
    hyper: groupedAdamWHyper,
  },
  {
    name: "an SGD step with momentum, dampening and a group of its own, hyperparameters set at run time",
    fn: groupedSgdStep as unknown as Fn,
    specs: [f([8, 12]), i([8])],
    range: optimizerStateRange,
    hyper: { lr: 0.2, momentum: 0.8, dampening: 0.2, weightDecay: 0.01, group0: { momentum: 0.7, lr: 0.03 } },
  },
  { name: "one Adam step of a small MLP (loss and every new parameter)", fn: smallMlpAdamStep as unknown as Fn, specs: [f([8, 12]), i([8])] },
  {
    name: "one SGD step of a wider MLP (blocked contractions forward and backward)",
    fn: wideMlpSgdStep as unknown as Fn,
    specs: [f([16, 96]), i([16])],
    intRange: 10,
    atol: 2e-5,
    rtol: 2e-4,
  },
  {
    name: "the examples' MNIST MLP forward program",
    fn: mlpForward as Fn,
    specs: [f([BATCH, IN_FEATURES]), f([HIDDEN, IN_FEATURES]), f([HIDDEN]), f([CLASSES, HIDDEN]), f([CLASSES])],
    range: [-0.1, 0.1],
  },
  {
    name: "the examples' MNIST MLP AdamW train step",
    fn: trainStep.fn as unknown as Fn,
    specs: [f([BATCH, IN_FEATURES]), i([BATCH])],
    intRange: CLASSES,
    range: examplesTrainRange,
    // AdamW's first step moves a weight by lr·g/(|g| + ε) (lr 1e-3, ε 1e-8). A gradient whose
    // 128 products cancel to |g| ~ 1e-9 (this data has one at 0.weight[134, 772]) has no
    // significant f32 digits: any f32 summation (blocked, FMA or not) is off by δg ~ 1e-9, which
    // moves the update by up to lr·δg/(4ε) ≈ 2.5e-5 from the float64 one. Still 25× below lr, so a
    // missing or wrong-signed update fails.
    atol: 4e-5,
  },
  { name: "a value recomputed inline equals the value another kernel stored (max's tie test in its gradient)", fn: maxTies as Fn, specs: [f([6, 9])] },
  {
    name: "a transformer block (layerNorm, causal attention, GELU MLP, residuals): forward",
    fn: transformerBlock as Fn,
    specs: transformerSpecs,
    range: [-0.3, 0.3],
  },
  {
    name: "a transformer block: every gradient",
    fn: k.grad(transformerBlock, { argnums: [0, 1, 2, 3, 4] }) as Fn,
    specs: transformerSpecs,
    range: [-0.3, 0.3],
  },
]);

/** Every case, in group order. */
export const opCases: readonly OpCase[] = [...elementwise, ...reductions, ...movement, ...linalg, ...composites, ...gradients, ...largerShapes, ...models];
export const caseGroups: readonly CaseGroup[] = [
  "elementwise",
  "reductions",
  "movement",
  "linear algebra",
  "composites",
  "gradients",
  "larger shapes",
  "models",
];

/** The cases a target runs (its exclusions dropped), optionally limited to some groups. */
export function casesFor(target: OpTarget, groups: readonly CaseGroup[] = caseGroups): OpCase[] {
  return opCases.filter((c) => groups.includes(c.group) && c.exclude?.[target] === undefined);
}

/** The `hyper` input of each traced train step: random values would make betas negative and lr anything. */
const hyperInputs = new WeakMap<Graph, HostTensor>();

/** The `hyper` input of a traced step: its defaults with `settings` over them, rounded to f32 as a target stores them. */
export function hyperInputOf(traced: TraceResult, settings: HyperSettings = {}, where = "test"): HostTensor | undefined {
  const store = new HyperStore(traced.hyper);
  store.set(settings, where);
  const h = store.inputs()["hyper"];
  return h && { ...h, data: Float64Array.from(Float32Array.from(h.data)) };
}

/** Makes caseInputs fill the traced step's `hyper` input from its defaults with `settings` over them. */
export function rememberHyper(traced: TraceResult, settings?: HyperSettings, where?: string): void {
  const hyper = hyperInputOf(traced, settings, where);
  if (hyper) hyperInputs.set(traced.graph, hyper);
}

export function traceCase(c: OpCase): Graph {
  const traced = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs);
  rememberHyper(traced, c.hyper, c.name);
  return traced.graph;
}

/** Seeded inputs, f32 values rounded to f32 so the target and the interpreter see the same numbers. */
export function caseInputs(g: Graph, c: Pick<OpCase, "range" | "intRange">): Record<string, HostTensor> {
  const rand = mulberry32(1234);
  const out: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    if (n.name === "hyper") {
      const hyper = hyperInputs.get(g);
      if (!hyper) throw new Error("caseInputs: a train step's `hyper` input needs its values: trace it with traceCase or fill it with hyperInputOf");
      out[n.name] = hyper;
      continue;
    }
    const [lo, hi] = typeof c.range === "function" ? c.range(n.name) : (c.range ?? [-1, 1]);
    const count = numel(n.type.shape);
    const half = halfOf(n.type.dtype);
    const data =
      n.type.dtype === "f32"
        ? Float64Array.from(Float32Array.from({ length: count }, () => lo + rand() * (hi - lo)))
        : half !== undefined
          ? Float64Array.from({ length: count }, () => (half === "f16" ? roundToHalf : roundToBfloat16)(lo + rand() * (hi - lo)))
          : n.type.dtype === "i32"
            ? Int32Array.from({ length: count }, () => (n.name === "seed" ? 42 : Math.floor(rand() * (c.intRange ?? 4))))
            : Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 1 : 0));
    if (half !== undefined && isFloat(n.type.dtype)) roundToDType(n.type.dtype, data as Float64Array);
    out[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data };
  }
  return out;
}

/** An interpreter result rounded as a device stores it: an f64 value past f32's range is inf (wasm's rule, now every target's). */
export function asStored(expected: HostTensor): ArrayLike<number> {
  return expected.dtype === "f32" ? Float32Array.from(expected.data) : expected.data;
}

/** A target's output as values: 16-bit floats come back from the runtimes as bit patterns. */
export const valuesOf = (t: HostTensor): ArrayLike<number> => valuesOfStorage(t.dtype, t.data);

/** The first element outside atol + rtol·|expected| (NaN must meet NaN), or undefined. */
export function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, targetName: string): string | undefined {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let j = 0; j < want.length; j++) {
    const a = got[j]!;
    const e = want[j]!;
    if (Number.isNaN(e) ? Number.isNaN(a) : a === e || Math.abs(a - e) <= atol + rtol * Math.abs(e)) continue;
    return `flat index ${j}: ${targetName} ${a}, interpreter ${e}`;
  }
  return undefined;
}

/** A graph compiled for one target: it runs, and explains itself (fusion plan, kernel sources) on failure. */
export interface CompiledForTest {
  run(inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> | Record<string, HostTensor>;
  explain(): string;
}

export interface TestTarget {
  /** Decides exclusions; `label` names the suite (e.g. "wasm target (scalar)"). */
  readonly name: OpTarget;
  readonly label?: string;
  compile(g: Graph, opts: { readonly verify: boolean }): CompiledForTest;
}

/**
 * Each case's traced graph and interpreter outputs, kept for the test file's process: a suite
 * that runs the table under several configurations (wasm's three) traces and interprets each
 * case once (tracing and the interpreter are deterministic; a case's inputs come from a fixed
 * seed). Inputs are drawn afresh for every run, so a runner writing into them cannot leak.
 */
const references = new WeakMap<OpCase, { readonly graph: Graph; readonly want: Record<string, HostTensor> }>();

function referenceOf(c: OpCase): { readonly graph: Graph; readonly want: Record<string, HostTensor> } {
  let r = references.get(c);
  if (!r) {
    const graph = traceCase(c);
    r = { graph, want: interpret(graph, caseInputs(graph, c)) };
    references.set(c, r);
  }
  return r;
}

/** Compiles one case for the target (verifying after every pass) and throws on the first output off the interpreter. */
export async function runCaseOnTarget(c: OpCase, target: TestTarget): Promise<void> {
  const { graph: g, want } = referenceOf(c);
  const compiled = target.compile(g, { verify: true });
  const inputs = caseInputs(g, c);
  const got = await compiled.run(inputs);
  for (const o of g.outputs) {
    const bad = firstMismatch(valuesOf(got[o.name]!), asStored(want[o.name]!), c.atol ?? DEFAULT_ATOL, c.rtol ?? DEFAULT_RTOL, target.name);
    if (bad) throw new Error(`${c.name}: output ${o.name}: ${bad}\n${compiled.explain()}`);
  }
}

export interface OpSuiteOptions {
  /** Skip the whole suite (e.g. no WebGPU adapter). */
  readonly skip?: boolean;
  readonly timeoutMs?: number;
}

/** One describe per group, one test per case, named `<label>: <group>` / case name. */
export function describeOpSuite(target: TestTarget, opts: OpSuiteOptions = {}): void {
  const label = target.label ?? `${target.name} target`;
  for (const group of caseGroups) {
    const cases = casesFor(target.name, [group]);
    if (cases.length === 0) continue;
    describe.skipIf(opts.skip === true)(`${label}: ${group}`, () => {
      test.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, target), opts.timeoutMs);
    });
  }
}

/** Three Adam steps with gradient clipping through k.compile on `target` follow the reference target's losses and weights. */
export async function expectAdamTrajectoryMatchesReference(target: string): Promise<void> {
  const x = Array.from({ length: 32 }, (_, j) => Math.sin(j));
  const y = Array.from({ length: 16 }, (_, j) => j % 2);
  const trajectory = async (name: string) => {
    k.manualSeed(3);
    const net = k.nn.sequential(k.nn.linear(2, 8), k.nn.relu(), k.nn.linear(8, 2));
    const step = k.trainStep(net, (logits, t) => F.crossEntropy(logits, t!), k.optim.adam({ lr: 0.05 }), { clipGradNorm: 1 });
    const exe = await k.compile(step, [f([16, 2]), i([16])], { target: name });
    const losses: number[] = [];
    for (let n = 0; n < 3; n++) losses.push(((await exe.run([x, y])) as { loss: { data: ArrayLike<number> } }).loss.data[0]!);
    return { losses, weight: Array.from((await exe.fetchState())["2.weight"]!.data) };
  };
  const want = await trajectory("reference");
  const got = await trajectory(target);
  for (const [a, e] of [
    [got.losses, want.losses],
    [got.weight, want.weight],
  ] as const)
    a.forEach((v, j) => expect(Math.abs(v - e[j]!)).toBeLessThanOrEqual(DEFAULT_ATOL + DEFAULT_RTOL * Math.abs(e[j]!)));
}

// ---- the op suite over f16 and bf16 ----

/**
 * Tolerances of the 16-bit suites, from each format's epsilon (2^-10 for f16, 2^-7 for bf16):
 * the interpreter rounds each op's float64 result to the format and a target rounds its f32
 * result, so one op agrees bit for bit (the f32 result rounds to the same 16-bit value: f32
 * has more than twice the digits) except after a transcendental or a sum, whose f32 and
 * float64 values may fall on either side of a rounding boundary (one unit in the last place).
 * That unit then propagates through the ops after it, so a case compares within 8 units
 * relative plus 8 units absolute (values here are of order 1).
 */
export const HALF_TOLERANCE: { readonly [D in "f16" | "bf16"]: { readonly atol: number; readonly rtol: number } } = {
  f16: { atol: 8 * 2 ** -10, rtol: 8 * 2 ** -10 },
  bf16: { atol: 8 * 2 ** -7, rtol: 8 * 2 ** -7 },
};

/** The groups the 16-bit suites run by default (the rest behind KILN_FULL). */
export const HALF_GROUPS: readonly CaseGroup[] = ["elementwise", "reductions", "movement", "linear algebra", "composites"];

/** `c` with every f32 input spec turned into `dtype` and the format's tolerances (a case's own looser ones scaled up). */
export function halfCase(c: OpCase, dtype: "f16" | "bf16"): OpCase {
  const specs = c.specs.map((s) => (s.dtype === "f32" ? { ...s, dtype: dtype as DType } : s));
  const tol = HALF_TOLERANCE[dtype];
  return { ...c, name: `${c.name} [${dtype}]`, specs, atol: tol.atol, rtol: tol.rtol };
}

/**
 * Cases a target must match bit for bit in 16 bits (atol = rtol = 0): + − × max, where, casts
 * and overflow, where the f32 result rounds to the same 16-bit value as the float64 one. The
 * first holds only if every op's result is rounded where it is computed, inside a fused chain
 * too: x + 1024 − 1024 is x rounded to 1024's spacing (1 in f16, 8 in bf16), not x.
 */
export function exactHalfCases(dtype: "f16" | "bf16"): OpCase[] {
  const h = (shape: number[]): k.InputSpec => (dtype === "f16" ? k.f16(shape) : k.bf16(shape));
  const exact = { atol: 0, rtol: 0, group: "elementwise" as const };
  return [
    { ...exact, name: `rounding after every op of a fused chain [${dtype}]`, fn: (x) => x.add(1024).sub(1024), specs: [h([33])], range: [-20, 20] },
    {
      ...exact,
      name: `add sub mul maximum neg where, bit for bit [${dtype}]`,
      fn: (x, y) => [x.add(y), x.sub(y), x.mul(y), x.maximum(y), x.neg(), x.gt(y).where(x, y), x.mul(y).add(x)],
      specs: [h([40]), h([40])],
      range: [-8, 8],
    },
    {
      ...exact,
      name: `casts to and from f32 and i32, overflow to inf [${dtype}]`,
      fn: (x, z) => [x.float(), x.mul(10).int(), z.cast(dtype), z.mul(1e5).cast(dtype), x.float().mul(1.001).cast(dtype), x.mul(30000).mul(3)],
      specs: [h([24]), k.f32([24])],
      range: [-4, 4],
    },
  ];
}

/**
 * Mixed-precision train steps (k.trainStep's `mixed`, `lossScale`): an f16 MLP step with SGD
 * and dynamic loss scaling, and a bf16 one with AdamW and no scaling; f32 master weights and
 * optimizer state, the loss and every new state value compared at the 16-bit tolerances. The
 * scale (2^16) overflows no gradient here; test/dsl/mixed-precision.test.ts makes one overflow.
 */
export function mixedPrecisionCases(): OpCase[] {
  const mlp = (): k.nn.Module => k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
  const loss = (logits: k.Tensor, y?: k.Tensor): k.Tensor => F.crossEntropy(logits, y!);
  const f16Step = k.trainStep(mlp(), loss, k.optim.sgd({ lr: 0.1, momentum: 0.9 }), { mixed: "f16", lossScale: "dynamic" });
  const bf16Step = k.trainStep(mlp(), loss, k.optim.adamW({ lr: 1e-2 }), { mixed: "bf16" });
  const scaleRange = (name: string): readonly [number, number] => (name === "amp.scale" ? [65536, 65536] : name.startsWith("opt.") ? [0, 0.01] : [-0.5, 0.5]);
  return [
    {
      group: "models",
      name: "mixed precision: an f16 SGD step with dynamic loss scaling",
      fn: f16Step as unknown as Fn,
      specs: [f([8, 12]), i([8])],
      range: scaleRange,
      ...HALF_TOLERANCE.f16,
    },
    {
      group: "models",
      name: "mixed precision: a bf16 AdamW step",
      fn: bf16Step as unknown as Fn,
      specs: [f([8, 12]), i([8])],
      range: scaleRange,
      ...HALF_TOLERANCE.bf16,
    },
  ];
}

/** The op suite over `dtype` for a target: each case's f32 inputs made `dtype`, compared with the interpreter's per-op rounding. */
export function describeHalfOpSuite(
  target: TestTarget,
  dtype: "f16" | "bf16",
  groups: readonly CaseGroup[] = HALF_GROUPS,
  opts: OpSuiteOptions & { readonly mixed?: boolean } = {},
): void {
  const label = `${target.label ?? `${target.name} target`} ${dtype}`;
  for (const group of groups) {
    const cases = casesFor(target.name, [group]).filter((c) => c.specs.some((s) => s.dtype === "f32") && c.halfExclude === undefined);
    if (cases.length === 0) continue;
    describe.skipIf(opts.skip === true)(`${label}: ${group}`, () => {
      test.each(cases.map((c) => [c.name, halfCase(c, dtype)] as const))("%s", (_name, c) => runCaseOnTarget(c, target), opts.timeoutMs);
    });
  }
  describe.skipIf(opts.skip === true)(`${label}: bit for bit`, () => {
    test.each(exactHalfCases(dtype).map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, target), opts.timeoutMs);
  });
  const mixed = opts.mixed === false ? [] : mixedPrecisionCases().filter((c) => c.name.includes(dtype));
  if (mixed.length > 0)
    describe.skipIf(opts.skip === true)(`${label}: mixed precision`, () => {
      test.each(mixed.map((c) => [c.name, c] as const))("%s", (_name, c) => runCaseOnTarget(c, target), opts.timeoutMs);
    });
}
