// The graphs the composites trace to are well-formed IR: each passes the verifier, prints
// and parses back to the same text (including maxPool's -inf padding and dropout's rng),
// and contains only primitives whose every node names the user's line.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { parseGraph } from "../../compiler/ir/parser.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import { verifyOrThrow } from "../../compiler/ir/verifier.ts";
import { traceFunction, type InputSpec } from "../../dsl/trace.ts";

const F = k.nn.functional;
type Fn = (...args: k.Tensor[]) => k.Tensor;

const composites: [string, Fn, InputSpec[]][] = [
  ["conv2d", (x, w, b) => F.conv2d(x!, w!, b, { stride: 2, padding: 1, dilation: [2, 1], groups: 2 }), [k.f32([2, 4, 9, 9]), k.f32([6, 2, 3, 3]), k.f32([6])]],
  ["convTranspose2d", (x, w) => F.convTranspose2d(x!, w!, null, { stride: 2, padding: 2, outputPadding: 1 }), [k.f32([1, 2, 4, 4]), k.f32([2, 3, 3, 3])]],
  ["maxPool2d", (x) => F.maxPool2d(x!, 3, { stride: 2, padding: 1 }), [k.f32([1, 2, 7, 7])]],
  ["avgPool2d", (x) => F.avgPool2d(x!, 2, { padding: 1, countIncludePad: false }), [k.f32([1, 2, 5, 5])]],
  ["layerNorm", (x, w, b) => F.layerNorm(x!, [6], w, b), [k.f32([3, 6]), k.f32([6]), k.f32([6])]],
  ["crossEntropy", (x, t) => F.crossEntropy(x!, t!, { labelSmoothing: 0.1 }), [k.f32([4, 5]), k.i32([4])]],
  ["bceWithLogits", (x, y) => F.binaryCrossEntropyWithLogits(x!, y!), [k.f32([4, 5]), k.f32([4, 5])]],
  ["embedding", (i, w) => F.embedding(i!, w!), [k.i32([2, 3]), k.f32([10, 4])]],
  ["dropout", (x) => F.dropout(F.dropout(x!, 0.1), 0.2), [k.f32([4, 5])]],
  ["attention", (q, kk, v) => F.scaledDotProductAttention(q!, kk!, v!, { isCausal: true }), [k.f32([2, 3, 4]), k.f32([2, 3, 4]), k.f32([2, 3, 4])]],
];

describe("composite graphs are valid IR", () => {
  test.each(composites)("%s: verifies, round-trips through text, every node has a user loc", (_, fn, specs) => {
    const { graph } = traceFunction("g", fn, specs);
    verifyOrThrow(graph);
    const text = printGraph(graph);
    expect(printGraph(parseGraph(text))).toBe(text);
    for (const n of graph.nodes) if (n.op !== "input" || n.name !== "seed") expect(n.loc?.file).toMatch(/functional-graph\.test\.ts$/);
  });
});
