// Gradients through the composite NN ops: k.grad of each composite (autodiff over the
// primitives it lowers to) against central finite differences of its forward, in float64
// on the reference interpreter. Data are random, so max-pool windows have no ties.

import { describe, test } from "vitest";
import * as k from "kiln";
import type { Tensor } from "../../dsl/tensor.ts";
import { gradcheck, uniform } from "../util/gradcheck.ts";

const F = k.nn.functional;
const rand = (n: number, seed: number) => uniform(n, seed, -1, 1);

describe("gradients of composites match finite differences", () => {
  test("conv2d (input, weight, bias): stride 2, padding 1, dilation (1,2), groups 2", () => {
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => F.conv2d(x, w, b, { stride: 2, padding: 1, dilation: [1, 2], groups: 2 }),
      [k.f32([1, 4, 5, 6]), k.f32([4, 2, 3, 2]), k.f32([4])],
      [rand(120, 1), rand(48, 2), rand(4, 3)],
    );
  });

  test("convTranspose2d (input, weight): stride 2, padding 1, outputPadding 1", () => {
    gradcheck(
      (x: Tensor, w: Tensor) => F.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }),
      [k.f32([1, 2, 3, 3]), k.f32([2, 2, 3, 3])],
      [rand(18, 4), rand(36, 5)],
    );
  });

  test("linear", () => {
    gradcheck((x: Tensor, w: Tensor, b: Tensor) => F.linear(x, w, b), [k.f32([3, 4]), k.f32([2, 4]), k.f32([2])], [rand(12, 6), rand(8, 7), rand(2, 8)]);
  });

  test("maxPool2d with padding and avgPool2d without countIncludePad", () => {
    gradcheck((x: Tensor) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }), [k.f32([1, 2, 5, 5])], [rand(50, 9)]);
    gradcheck((x: Tensor) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }), [k.f32([1, 2, 5, 5])], [rand(50, 10)]);
  });

  test("layerNorm (input, weight, bias)", () => {
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => F.layerNorm(x, [5], w, b),
      [k.f32([3, 5]), k.f32([5]), k.f32([5])],
      [rand(15, 11), rand(5, 12), rand(5, 13)],
    );
  });

  test("groupNorm and batchNorm (training) with affine", () => {
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => F.groupNorm(x, 2, w, b),
      [k.f32([2, 4, 3]), k.f32([4]), k.f32([4])],
      [rand(24, 20), rand(4, 21), rand(4, 22)],
    );
    gradcheck(
      (x: Tensor, w: Tensor, b: Tensor) => F.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
      [k.f32([3, 2, 2]), k.f32([2]), k.f32([2])],
      [rand(12, 23), rand(2, 24), rand(2, 25)],
    );
  });

  test("crossEntropy with label smoothing, class weights and an ignored target", () => {
    gradcheck(
      (x: Tensor, t: Tensor, w: Tensor) => F.crossEntropy(x, t, { labelSmoothing: 0.1, weight: w }),
      [k.f32([4, 3]), k.i32([4]), k.f32([3])],
      [rand(12, 14), [2, -100, 0, 1], [0.5, 1, 2]],
    );
  });

  test("binaryCrossEntropyWithLogits with posWeight, mseLoss", () => {
    gradcheck(
      (x: Tensor, y: Tensor, p: Tensor) => F.binaryCrossEntropyWithLogits(x, y, { posWeight: p }),
      [k.f32([2, 3]), k.f32([2, 3]), k.f32([3])],
      [rand(6, 15).map((v) => v * 3), [0, 1, 0.5, 1, 0, 0.2], [2, 0.5, 1]],
    );
    gradcheck((x: Tensor, y: Tensor) => F.mseLoss(x, y), [k.f32([2, 3]), k.f32([2, 3])], [rand(6, 16), rand(6, 17)]);
  });

  test("embedding (weight) with a repeated index", () => {
    gradcheck((idx: Tensor, w: Tensor) => F.embedding(idx, w), [k.i32([2, 2]), k.f32([4, 3])], [[3, 1, 3, 0], rand(12, 18)]);
  });

  test("dropout (fixed seed: a fixed mask)", () => {
    gradcheck((x: Tensor) => F.dropout(x, 0.4), [k.f32([16])], [rand(16, 19)], { extra: { seed: { dtype: "i32", shape: [], data: Int32Array.of(3) } } });
  });
});
