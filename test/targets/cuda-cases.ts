// Graphs the CUDA tests compile and run: the op surface, composites, gradients and a model
// (the same breadth as the js target's op tests), plus seeded random graphs. Each case is
// traced here; expected values always come from the float64 interpreter, never from CUDA.

import * as k from "kiln";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { numel } from "../../compiler/util/shape.ts";
import { mulberry32, randomGraph, randomInputs } from "../util/random-graph.ts";

type Fn = (...args: k.Tensor[]) => unknown;

export interface CudaCase {
  readonly name: string;
  readonly graph: Graph;
  readonly inputs: Record<string, HostTensor>;
  readonly atol: number;
  readonly rtol: number;
}

interface DslCase {
  readonly name: string;
  readonly fn: Fn;
  readonly specs: readonly k.InputSpec[];
  readonly intRange?: number;
  readonly range?: readonly [number, number];
}

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

/** Seeded inputs, f32 rounded to f32 so device and interpreter see the same values. */
export function dslInputs(g: Graph, range: readonly [number, number] = [-1, 1], intRange = 4): Record<string, HostTensor> {
  const rand = mulberry32(1234);
  const [lo, hi] = range;
  const out: Record<string, HostTensor> = {};
  for (const id of g.inputs) {
    const n = nodeOf(g, id);
    if (n.op !== "input") continue;
    const count = numel(n.type.shape);
    const data =
      n.type.dtype === "f32"
        ? Float64Array.from(Float32Array.from({ length: count }, () => lo + rand() * (hi - lo)))
        : n.type.dtype === "i32"
          ? Int32Array.from({ length: count }, () => (n.name === "seed" ? 42 : Math.floor(rand() * intRange)))
          : Uint8Array.from({ length: count }, () => (rand() < 0.5 ? 1 : 0));
    out[n.name] = { dtype: n.type.dtype, shape: n.type.shape, data };
  }
  return out;
}

const dslCases: DslCase[] = [
  { name: "add sub mul div broadcast", fn: (x, y) => x.add(y).mul(x.sub(y)).div(y.abs().add(0.5)), specs: [f([3, 4]), f([4])] },
  { name: "exp log sqrt rsqrt", fn: (x) => [x.exp(), x.abs().add(0.1).log(), x.abs().sqrt(), x.abs().add(0.2).rsqrt()], specs: [f([5, 3])] },
  { name: "sin cos pow", fn: (x) => [x.sin(), x.cos(), x.pow(3), x.abs().add(0.1).pow(0.7), x.pow(-2)], specs: [f([7])] },
  { name: "max min clamp", fn: (x, y) => [x.maximum(y), x.minimum(y), x.clamp(-0.3, 0.4)], specs: [f([2, 5]), f([2, 5])] },
  { name: "comparisons and where", fn: (x, y) => [x.lt(y), x.le(y), x.gt(y), x.ge(y), x.eq(x), x.ne(y), x.gt(0).where(x, y.mul(2))], specs: [f([9]), f([9])] },
  { name: "logical ops on bool", fn: (a, b) => [a.logicalAnd(b), a.logicalOr(b), a.logicalNot()], specs: [k.bool([6]), k.bool([6])] },
  { name: "activations", fn: (x) => [x.relu(), x.leakyRelu(0.1), x.gelu(), x.gelu("tanh"), x.silu(), x.sigmoid(), x.tanh(), x.softplus()], specs: [f([4, 6])], range: [-4, 4] },
  { name: "i32 arithmetic floor div and mod", fn: (a, b) => [a.add(b), a.mul(b).sub(3), a.sub(5).floorDivide(b.add(1)), a.sub(5).remainder(b.add(1)), a.float().div(2)], specs: [i([8]), i([8])], intRange: 10 },
  { name: "casts", fn: (x) => [x.mul(5).int(), x.gt(0).float(), x.mul(3).int().float().add(x)], specs: [f([10])], range: [-3, 3] },
  { name: "sum mean over dims", fn: (x) => [x.sum(), x.sum(1), x.sum([0, 2], true), x.mean(-1), x.mean([0, 1])], specs: [f([3, 4, 5])] },
  { name: "max min over dims", fn: (x) => [x.max(), x.max(0), x.min(2, true)], specs: [f([3, 4, 5])] },
  { name: "long rows (warp reductions)", fn: (x) => [x.sum(1), x.max(1), x.softmax(-1), x.logsumexp(1)], specs: [f([6, 300])] },
  { name: "var std logsumexp", fn: (x) => [x.var(1), k.std(x, 0), x.logsumexp(1)], specs: [f([6, 7])] },
  { name: "argmax argmin", fn: (x) => [x.argmax(1), x.argmin(0), x.argmax()], specs: [f([5, 6])] },
  { name: "cumsum", fn: (x) => [x.cumsum(0), x.cumsum(1)], specs: [f([4, 5])] },
  { name: "softmax logSoftmax", fn: (x) => [x.softmax(-1), x.softmax(0), x.logSoftmax(1), x.logSoftmax(0)], specs: [f([5, 7])] },
  { name: "i32 sum and max", fn: (a) => [a.sum(0), a.max(1), a.sum()], specs: [i([3, 100])], intRange: 100 },
  { name: "any all", fn: (a) => [k.any(a, 1), k.all(a, 0), k.any(a)], specs: [k.bool([4, 70])] },
  { name: "reshape permute transpose", fn: (x) => [x.reshape(4, 6), x.permute(2, 0, 1), x.transpose(0, 2), x.flatten(1)], specs: [f([2, 3, 4])] },
  { name: "slice narrow flip pad", fn: (x) => [x.slice([1, 5, 2], [null, null, 2]), x.narrow(1, 1, 3), x.flip([0, 1]), x.pad([1, 2]), x.pad([0, 1, 2, 0], -3)], specs: [f([6, 5])] },
  { name: "cat stack", fn: (x, y) => [k.cat([x, y], 0), k.stack([x, y], 1)], specs: [f([2, 3]), f([2, 3])] },
  { name: "gather indexSelect", fn: (x, idx) => [x.gather(1, idx), x.indexSelect(0, idx.reshape(-1).slice([0, 3]))], specs: [f([4, 5]), i([4, 2])] },
  { name: "tril triu", fn: (x) => [k.tril(x), k.triu(x, 1)], specs: [f([4, 4])] },
  { name: "matmul odd sizes", fn: (a, b) => a.matmul(b), specs: [f([5, 7]), f([7, 3])] },
  { name: "matmul batched tiled", fn: (a, b) => a.matmul(b), specs: [f([2, 8, 12]), f([12, 8])] },
  { name: "matmul long k", fn: (a, b) => a.matmul(b), specs: [f([4, 256]), f([256, 4])] },
  { name: "matmul blocked in shared memory, ragged edges", fn: (a, b) => a.matmul(b), specs: [f([2, 130, 40]), f([40, 136])] },
  { name: "linear relu blocked in shared memory", fn: (x, w, b) => F.linear(x, w, b).relu(), specs: [f([256, 40]), f([72, 40]), f([72])] },
  { name: "grad of linear relu, blocked in shared memory", fn: k.grad((x: k.Tensor, w: k.Tensor) => F.linear(x, w).relu().sum(), { argnums: [0, 1] }) as Fn, specs: [f([256, 96]), f([128, 96])] },
  { name: "i32 matmul", fn: (a, b) => a.matmul(b), specs: [i([3, 4]), i([4, 2])], intRange: 50 },
  { name: "linear", fn: (x, w, b) => F.linear(x, w, b), specs: [f([4, 6]), f([3, 6]), f([3])] },
  { name: "conv2d", fn: (x, w, b) => F.conv2d(x, w, b, { padding: 1, stride: 2 }), specs: [f([2, 3, 7, 7]), f([4, 3, 3, 3]), f([4])] },
  { name: "pools", fn: (x) => [F.maxPool2d(x, 2), F.avgPool2d(x, 3, { stride: 2, padding: 1 })], specs: [f([2, 2, 6, 6])] },
  { name: "layerNorm", fn: (x, w, b) => F.layerNorm(x, [4, 5], w, b), specs: [f([3, 4, 5]), f([4, 5]), f([4, 5])] },
  { name: "losses", fn: (x, y, t) => [F.crossEntropy(x, y), F.mseLoss(x, t), F.l1Loss(x, t)], specs: [f([6, 5]), i([6]), f([6, 5])], intRange: 5 },
  { name: "embedding", fn: (idx, w) => F.embedding(idx, w), specs: [i([3, 4]), f([10, 6])], intRange: 10 },
  { name: "causal attention", fn: (q, kk, v) => F.scaledDotProductAttention(q, kk, v, { isCausal: true }), specs: [f([2, 5, 8]), f([2, 5, 8]), f([2, 5, 8])] },
  { name: "dropout", fn: (x) => F.dropout(x, 0.3), specs: [f([8, 9])] },
  { name: "grad matmul relu sum", fn: k.grad((x: k.Tensor) => x.matmul(x.transpose(0, 1)).relu().sum()) as Fn, specs: [f([4, 3])] },
  { name: "grad cross-entropy", fn: k.grad((x: k.Tensor, w: k.Tensor) => F.crossEntropy(x.matmul(w), x.sum(1).gt(0).int()), { argnums: [0, 1] }) as Fn, specs: [f([5, 4]), f([4, 3])] },
  { name: "grad layerNorm", fn: k.grad((x: k.Tensor) => F.layerNorm(x, 6).mul(x).sum()) as Fn, specs: [f([3, 6])] },
  { name: "grad conv2d maxPool", fn: k.grad((x: k.Tensor, w: k.Tensor) => F.maxPool2d(F.conv2d(x, w, null, { padding: 1 }), 2).square().sum(), { argnums: [0, 1] }) as Fn, specs: [f([1, 2, 4, 4]), f([3, 2, 3, 3])] },
];

function traceCase(c: DslCase): CudaCase {
  const graph = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs).graph;
  return { name: c.name, graph, inputs: dslInputs(graph, c.range, c.intRange), atol: 1e-5, rtol: 1e-4 };
}

/** Op, composite and gradient cases. */
export function opCases(): CudaCase[] {
  return dslCases.map(traceCase);
}

/** One Adam step of a small MLP (loss and every new parameter and optimizer state). */
export function modelCases(): CudaCase[] {
  const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
  const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
  const traced = k.traceFunction("mlp_adam_step", step as never, [f([8, 12]), i([8])]);
  const inputs = dslInputs(traced.graph);
  for (const [name, init] of traced.state) inputs[name] = init();
  return [{ name: "mlp adam step", graph: traced.graph, inputs, atol: 1e-5, rtol: 1e-4 }];
}

/** Seeded random graphs (the js fuzz test's generator). */
export function fuzzCases(seeds: readonly number[]): CudaCase[] {
  const round = (t: HostTensor): HostTensor => (t.dtype === "f32" ? { ...t, data: Float64Array.from(Float32Array.from(t.data)) } : t);
  const cases = seeds.map((seed): CudaCase => {
    const graph = randomGraph(seed);
    const inputs = Object.fromEntries(Object.entries(randomInputs(graph, seed)).map(([n, t]) => [n, round(t)]));
    return { name: `fuzz seed ${seed}`, graph, inputs, atol: 1e-4, rtol: 1e-3 };
  });
  return cases;
}
