// Every composite compiled for each available target (besides the reference interpreter)
// matches the float64 interpreter on the same graph, up to f32 rounding; dropout gives the
// same mask on every target for the same seed.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { InputSpec } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { numelOf, randomData } from "./functional-helpers.ts";

const F = k.nn.functional;
type Fn = (...args: k.Tensor[]) => k.Tensor;

const targets = (await k.availableTargets()).filter((t) => t !== "reference");

const cases: [string, Fn, InputSpec[], number[][]?][] = [
  ["conv2d", (x, w, b) => F.conv2d(x!, w!, b, { stride: 2, padding: 1, dilation: [1, 2], groups: 2 }), [k.f32([2, 4, 7, 8]), k.f32([6, 2, 3, 3]), k.f32([6])]],
  ["convTranspose2d", (x, w) => F.convTranspose2d(x!, w!, null, { stride: 2, padding: 1, outputPadding: 1 }), [k.f32([1, 2, 3, 4]), k.f32([2, 3, 3, 2])]],
  ["maxPool2d", (x) => F.maxPool2d(x!, 3, { stride: 2, padding: 1 }), [k.f32([2, 2, 7, 6])]],
  ["avgPool2d", (x) => F.avgPool2d(x!, [2, 3], { padding: 1, countIncludePad: false }), [k.f32([1, 3, 5, 5])]],
  ["layerNorm", (x, w, b) => F.layerNorm(x!, [6], w, b), [k.f32([3, 6]), k.f32([6]), k.f32([6])]],
  ["crossEntropy", (x, t) => F.crossEntropy(x!, t!, { labelSmoothing: 0.1 }), [k.f32([4, 5]), k.i32([4])], [randomData(20, 5), [1, -100, 4, 0]]],
  ["bceWithLogits", (x, y) => F.binaryCrossEntropyWithLogits(x!, y!), [k.f32([4, 5]), k.f32([4, 5])]],
  ["embedding", (i, w) => F.embedding(i!, w!), [k.i32([2, 3]), k.f32([10, 4])], [[9, 0, 3, 3, 7, 1], randomData(40, 6)]],
  ["attention", (q, kk, v) => F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }), [k.f32([2, 3, 4]), k.f32([2, 3, 4]), k.f32([2, 3, 4])]],
];

describe.skipIf(targets.length === 0).each(targets)("%s target", (target) => {
  test.each(cases)("%s matches the reference interpreter", async (_, fn, specs, given) => {
    const data = given ?? specs.map((s, i) => randomData(numelOf(s.shape), 100 + i));
    const expected = runRef(fn, specs, data).values;
    const exe = await k.compile(fn, specs, { target });
    const out = (await exe.run(data)) as { data: ArrayLike<number> };
    expectClose(Array.from(out.data), expected, 1e-5, 1e-4);
  });

  test("dropout: the same seed gives the reference's mask", async () => {
    const fn = (x: k.Tensor) => F.dropout(x, 0.3);
    const ones = new Array<number>(256).fill(1);
    const expected = runRef(fn, [k.f32([256])], [ones], { seed: { dtype: "i32", shape: [], data: Int32Array.of(42) } }).values;
    const exe = await k.compile(fn, [k.f32([256])], { target });
    const out = (await exe.run([ones], { seed: 42 })) as { data: ArrayLike<number> };
    expect(Array.from(out.data).map((v) => v !== 0)).toEqual(expected.map((v) => v !== 0));
    expectClose(Array.from(out.data), expected, 1e-6, 1e-6);
  });
});
