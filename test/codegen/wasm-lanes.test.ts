// The wasm target's lane accesses beyond one contiguous v128 (codegen/wasm/emit-vector.ts) and
// the lane-axis kernel pass (compiler/kernel/lane-axis.ts), against the float64 interpreter:
// strided loads (one address, four loads), masks linear in the lane (one access when lanes 0
// and 3 hold, else lane by lane), scattered stores, and sections whose lane variable the pass
// moved innermost (a 2×2 max-pool and its gradient over a channel-last tensor, as a conv's
// packed GEMM leaves it). Every case is bit-exact: copies, maxima and sums of at most a few
// small integers round nowhere. Scalar code, SIMD and relaxed SIMD, one and two threads.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

const F = k.nn.functional;

interface Case {
  readonly name: string;
  readonly fn: (...xs: k.Tensor[]) => k.Tensor;
  readonly specs: readonly k.InputSpec[];
  /** The extent of the last domain variable of some section after the kernel passes (SIMD): which variable the lanes run along. */
  readonly laneExtent?: number;
}

const CASES: readonly Case[] = [
  { name: "transpose 12×20 (strided loads, stride 20)", fn: (x) => x.t().add(1), specs: [k.f32([12, 20])] },
  { name: "pad the last axis of 5×10 by 3 and 5 (masks linear in the lane)", fn: (x) => F.pad(x, [3, 5]).mul(2), specs: [k.f32([5, 10])] },
  {
    name: "2×2 max-pool of a channel-last 2×8×8×12 tensor (lanes along channels, scattered stores)",
    fn: (x) => F.maxPool2d(x.permute([0, 3, 1, 2]).relu(), 2),
    specs: [k.f32([2, 8, 8, 12])],
    laneExtent: 12,
  },
  {
    name: "gradient of a 2×2 max-pool of a channel-last 2×8×8×12 tensor",
    fn: (x, g) =>
      k.grad((xx: k.Tensor) =>
        F.maxPool2d(xx.permute([0, 3, 1, 2]).relu(), 2)
          .mul(g)
          .sum(),
      )(x) as k.Tensor,
    specs: [k.f32([2, 8, 8, 12]), k.f32([2, 12, 4, 4])],
  },
  {
    name: "im2col of a conv2d forward into panels, 4×8×10×10 ⊛ 16×8×3×3, pad 1 (lanes along the 8 channels: strided loads and stores)",
    fn: (x, w) => F.conv2d(x, w, undefined, { padding: 1 }),
    specs: [k.f32([4, 8, 10, 10]), k.f32([16, 8, 3, 3])],
    laneExtent: 8,
  },
  {
    name: "im2col of a conv filter gradient, 2×3×9×9 ⊛ 4×3×3×3, pad 1",
    fn: (x, w, g) => k.grad((ww: k.Tensor) => F.conv2d(x, ww, undefined, { padding: 1 }).mul(g).sum())(w) as k.Tensor,
    specs: [k.f32([2, 3, 9, 9]), k.f32([4, 3, 3, 3]), k.f32([2, 4, 9, 9])],
  },
];

function inputsOf(g: Graph): Record<string, HostTensor> {
  // small integers with ties (max-pool's gradient splits among equal maxima)
  return graphInputs(g, ({ count, index }) => Float32Array.from({ length: count }, (_, i) => ((i * 7 + index * 3) % 9) - 4));
}

const configs = [
  { label: "scalar", opts: { simd: false }, threads: 1 },
  { label: "SIMD", opts: { relaxedSimd: false }, threads: 1 },
  { label: "relaxed SIMD, 2 threads, every section split", opts: {}, threads: 2 },
] as const;

describe.each(configs)("wasm lanes, $label", ({ opts, threads }) => {
  for (const c of CASES) {
    test(`${c.name}: bit-exact with the interpreter`, async () => {
      const g = k.traceFunction(c.name.replace(/\W+/g, "_"), c.fn as never, c.specs).graph;
      const inputs = inputsOf(g);
      const compiled = compileWasm(g, opts);
      const r = await WasmArtifactRunner.create(compiled.artifact, { threads, minParallelWork: 0 });
      runners.push(r);
      const got = Object.values(r.run(inputs))[0]!.data as Float32Array;
      const want = Object.values(interpret(g, inputs))[0]!.data as ArrayLike<number>;
      expect(Array.from(got)).toEqual(Array.from(want, (v) => Math.fround(v)));
      if (c.laneExtent !== undefined && !("simd" in opts)) {
        const lastExtents = compiled.program.kernels.flatMap((kk) => kk.sections.map((s) => s.domain.at(-1)!.extent));
        expect(lastExtents).toContain(c.laneExtent);
      }
    });
  }
});
