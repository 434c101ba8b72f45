// Gradchecks of the composite ops in k.nn.functional (conv, pooling, normalization,
// attention, losses, embedding): autodiff through their primitive decompositions vs central
// finite differences in float64. Shapes stay small: the interpreter runs twice per element.

import { describe, test } from "vitest";
import * as k from "../../../dsl/index.ts";
import type { InputSpec, Tensor } from "../../../dsl/index.ts";
import { numel } from "../../../compiler/util/shape.ts";
import { gradcheck, uniform } from "../../util/gradcheck.ts";

const F = k.nn.functional;
const f = k.f32;

interface FnCase {
  readonly name: string;
  readonly fn: (...args: Tensor[]) => Tensor;
  readonly specs: readonly InputSpec[];
  readonly data?: readonly (readonly number[] | undefined)[];
}

/** Distinct values (a shuffled grid, none near 0): max pooling never sees a tie. */
function distinct(n: number, seed: number): number[] {
  const order = uniform(n, seed)
    .map((v, i) => [v, i] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([, i]) => i);
  return order.map((slot) => -1.5 + (3 * (slot + 0.5)) / n);
}

function run(c: FnCase, seed: number): void {
  const inputs = c.specs.map((s, i) => c.data?.[i] ?? (s.dtype === "f32" ? distinct(numel(s.shape), seed + i) : []));
  gradcheck(c.fn, c.specs, inputs);
}

const conv: FnCase[] = [
  { name: "linear with bias", fn: (x, w, b) => F.linear(x, w, b), specs: [f([2, 3]), f([4, 3]), f([4])] },
  { name: "conv2d plain", fn: (x, w) => F.conv2d(x, w), specs: [f([1, 2, 4, 4]), f([3, 2, 2, 2])] },
  {
    name: "conv2d stride 2, padding 1, bias",
    fn: (x, w, b) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
    specs: [f([2, 1, 5, 5]), f([2, 1, 3, 3]), f([2])],
  },
  {
    name: "conv2d dilation 2, asymmetric stride",
    fn: (x, w) => F.conv2d(x, w, null, { dilation: 2, stride: [1, 2] }),
    specs: [f([1, 2, 5, 6]), f([2, 2, 2, 2])],
  },
  { name: "conv2d groups 2", fn: (x, w) => F.conv2d(x, w, null, { groups: 2, padding: [1, 0] }), specs: [f([1, 4, 3, 3]), f([4, 2, 2, 2])] },
  { name: "conv2d padding same", fn: (x, w) => F.conv2d(x, w, null, { padding: "same" }), specs: [f([1, 1, 4, 4]), f([2, 1, 2, 3])] },
  {
    name: "convTranspose2d stride 2, padding 1, output padding 1",
    fn: (x, w) => F.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }),
    specs: [f([1, 2, 3, 3]), f([2, 1, 3, 3])],
  },
];

const pooling: FnCase[] = [
  { name: "maxPool2d 2x2", fn: (x) => F.maxPool2d(x, 2), specs: [f([1, 2, 4, 4])] },
  { name: "maxPool2d 3x3 stride 2 padding 1", fn: (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }), specs: [f([2, 1, 5, 5])] },
  { name: "maxPool2d overlapping windows, dilation 2", fn: (x) => F.maxPool2d(x, 2, { stride: 1, dilation: 2 }), specs: [f([1, 1, 5, 5])] },
  { name: "avgPool2d 2x2", fn: (x) => F.avgPool2d(x, 2), specs: [f([1, 2, 4, 4])] },
  {
    name: "avgPool2d 3x3 stride 2 padding 1, padding not counted",
    fn: (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
    specs: [f([1, 1, 5, 5])],
  },
];

const norm: FnCase[] = [
  { name: "softmax", fn: (x) => F.softmax(x, -1), specs: [f([3, 4])] },
  { name: "softmax dim 1 of 3-d", fn: (x) => F.softmax(x, 1), specs: [f([2, 3, 2])] },
  { name: "logSoftmax", fn: (x) => F.logSoftmax(x, 1), specs: [f([2, 5])] },
  { name: "layerNorm, no affine", fn: (x) => F.layerNorm(x, 4), specs: [f([3, 4])] },
  { name: "layerNorm over two dims with weight and bias", fn: (x, w, b) => F.layerNorm(x, [2, 3], w, b), specs: [f([2, 2, 3]), f([2, 3]), f([2, 3])] },
  { name: "groupNorm, 2 groups, affine", fn: (x, w, b) => F.groupNorm(x, 2, w, b), specs: [f([2, 4, 3]), f([4]), f([4])] },
  {
    name: "batchNorm, training statistics, affine",
    fn: (x, w, b) => F.batchNorm(x, null, null, { training: true, weight: w, bias: b }),
    specs: [f([3, 2, 2]), f([2]), f([2])],
  },
  {
    name: "batchNorm, running statistics",
    fn: (x, m, v) => F.batchNorm(x, m, v),
    specs: [f([2, 3]), f([3]), f([3])],
    data: [undefined, undefined, [0.5, 1.2, 2]],
  },
];

const attention: FnCase[] = [
  { name: "scaledDotProductAttention", fn: (q, kk, v) => F.scaledDotProductAttention(q, kk, v), specs: [f([2, 3, 4]), f([2, 5, 4]), f([2, 5, 2])] },
  {
    name: "scaledDotProductAttention, causal",
    fn: (q, kk, v) => F.scaledDotProductAttention(q, kk, v, { isCausal: true }),
    specs: [f([1, 4, 3]), f([1, 4, 3]), f([1, 4, 3])],
  },
  {
    name: "scaledDotProductAttention, bool mask and scale",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q, kk, v, { attnMask: m, scale: 0.7 }),
    specs: [f([3, 2]), f([4, 2]), f([4, 3]), k.bool([3, 4])],
    data: [undefined, undefined, undefined, [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1]],
  },
  {
    name: "scaledDotProductAttention, additive float mask",
    fn: (q, kk, v, m) => F.scaledDotProductAttention(q, kk, v, { attnMask: m }),
    specs: [f([2, 2]), f([3, 2]), f([3, 2]), f([2, 3])],
  },
];

const losses: FnCase[] = [
  { name: "crossEntropy, class indices", fn: (x, y) => F.crossEntropy(x, y), specs: [f([4, 3]), k.i32([4])], data: [undefined, [0, 2, 1, 2]] },
  {
    name: "crossEntropy, label smoothing 0.1",
    fn: (x, y) => F.crossEntropy(x, y, { labelSmoothing: 0.1 }),
    specs: [f([3, 5]), k.i32([3])],
    data: [undefined, [4, 0, 2]],
  },
  {
    name: "crossEntropy, class weights, ignoreIndex, smoothing",
    fn: (x, y, w) => F.crossEntropy(x, y, { weight: w, ignoreIndex: 1, labelSmoothing: 0.2 }),
    specs: [f([4, 3]), k.i32([4]), f([3])],
    data: [undefined, [0, 1, 2, 2], [0.5, 1, 2]],
  },
  {
    name: "crossEntropy, [N,C,d] logits, sum",
    fn: (x, y) => F.crossEntropy(x, y, { reduction: "sum" }),
    specs: [f([2, 3, 2]), k.i32([2, 2])],
    data: [undefined, [0, 2, 1, 1]],
  },
  {
    name: "crossEntropy, probability targets with smoothing",
    fn: (x, t) => F.crossEntropy(x, t, { labelSmoothing: 0.1 }),
    specs: [f([2, 3]), f([2, 3])],
    data: [undefined, [0.2, 0.3, 0.5, 0.6, 0.1, 0.3]],
  },
  { name: "nllLoss", fn: (x, y) => F.nllLoss(x.logSoftmax(1), y), specs: [f([3, 4]), k.i32([3])], data: [undefined, [3, 0, 1]] },
  { name: "mseLoss", fn: (x, t) => F.mseLoss(x, t), specs: [f([2, 3]), f([2, 3])] },
  { name: "l1Loss (no ties between input and target)", fn: (x, t) => F.l1Loss(x, t), specs: [f([2, 3]), f([2, 3])] },
  {
    name: "binaryCrossEntropyWithLogits with posWeight",
    fn: (x, t, p) => F.binaryCrossEntropyWithLogits(x, t, { posWeight: p }),
    specs: [f([2, 3]), f([2, 3]), f([3])],
    data: [undefined, [0, 1, 0.3, 1, 0, 0.8], [1, 2, 0.5]],
  },
];

const sparse: FnCase[] = [
  { name: "embedding with repeated indices", fn: (i, w) => F.embedding(i, w), specs: [k.i32([2, 3]), f([4, 3])], data: [[1, 3, 1, 0, 1, 3]] },
];

const groups: [string, FnCase[]][] = [
  ["conv", conv],
  ["pooling", pooling],
  ["normalization", norm],
  ["attention", attention],
  ["losses", losses],
  ["embedding", sparse],
];

for (const [group, cases] of groups) {
  describe(`gradcheck: ${group}`, () => {
    cases.forEach((c, i) => test(c.name, () => run(c, 2000 + 31 * i)));
  });
}
