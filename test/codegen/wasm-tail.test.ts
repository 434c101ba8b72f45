// Rows whose length is not a multiple of 4 on the wasm target: the SIMD loop ends with one more
// vector step over the last four elements (some computed twice) instead of a scalar remainder
// (codegen/wasm/emit-section.ts overlapsTail), and a region holding two written-out reductions
// reuses the first one's loads and arithmetic in the second (a max-pool's count of its maxima).
// Against the float64 interpreter: bit for bit (max, products and pools round once or not at all), with relaxed SIMD and
// without, on 1 and 2 threads; an in-place SGD update over 7-wide rows (which must not take the
// overlapping step: it would update an element twice) within f32 tolerance.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { asStored, caseInputs, firstMismatch, traceCase, type OpCase } from "../targets/op-cases.ts";

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

const F = k.nn.functional;
const CASES: readonly OpCase[] = [
  {
    group: "larger shapes",
    name: "relu and 2×2 max-pool, 14×14 → 7×7 rows (one vector step and the overlapping one)",
    fn: (x) => F.maxPool2d(x.relu(), 2),
    specs: [k.f32([2, 3, 14, 14])],
    intRange: 5,
  },
  {
    group: "larger shapes",
    name: "the max-pool's gradient through a relu, 14-wide rows reading the pooled values at w div 2",
    fn: (x, g) => k.grad((xx: k.Tensor) => F.maxPool2d(xx.relu(), 2).mul(g).sum())(x) as k.Tensor,
    specs: [k.f32([2, 3, 14, 14]), k.f32([2, 3, 7, 7])],
    intRange: 3,
  },
  // one rounding each (a product of f32s is exact in float64): bit-exact on any inputs
  { group: "larger shapes", name: "max(x·y, y) over 5 rows of 7", fn: (x, y) => x.mul(y).maximum(y), specs: [k.f32([5, 7]), k.f32([5, 7])] },
  { group: "larger shapes", name: "max(x·y, y) over 6 rows of 9", fn: (x, y) => x.mul(y).maximum(y), specs: [k.f32([6, 9]), k.f32([6, 9])] },
];

describe.each([
  { relaxedSimd: true, threads: 1 },
  { relaxedSimd: false, threads: 1 },
  { relaxedSimd: true, threads: 2 },
])("wasm rows off a multiple of 4 (relaxed SIMD $relaxedSimd, $threads thread(s))", ({ relaxedSimd, threads }) => {
  for (const c of CASES)
    test(`${c.name}: bit-exact with the interpreter`, async () => {
      const g = traceCase(c);
      const inputs = caseInputs(g, c);
      const want = interpret(g, inputs);
      const r = await WasmArtifactRunner.create(compileWasm(g, { relaxedSimd }).artifact, { threads, minParallelWork: 0 });
      runners.push(r);
      const got = r.run(inputs);
      for (const o of g.outputs)
        expect(Array.from(got[o.name]!.data as Float32Array), o.name).toEqual(Array.from(asStored(want[o.name]!), (v) => Math.fround(v)));
    });

  test("an SGD step of linear 7 → 5 (its weight updated in place, 7-wide rows) matches the interpreter", async () => {
    k.manualSeed(5);
    const net = k.nn.sequential(k.nn.linear(7, 5), k.nn.relu(), k.nn.linear(5, 3));
    const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.5 }));
    const c: OpCase = { group: "larger shapes", name: "sgd 7-wide", fn: step as unknown as OpCase["fn"], specs: [k.f32([6, 7]), k.i32([6])], intRange: 3 };
    const g = traceCase(c);
    const inputs = caseInputs(g, c);
    const want = interpret(g, inputs);
    const r = await WasmArtifactRunner.create(compileWasm(g, { relaxedSimd }).artifact, { threads, minParallelWork: 0 });
    runners.push(r);
    const got = r.run(inputs);
    for (const o of g.outputs) expect(firstMismatch(got[o.name]!.data as Float32Array, asStored(want[o.name]!), 1e-5, 1e-4, "wasm"), o.name).toBeUndefined();
  });
});
