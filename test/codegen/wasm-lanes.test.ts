// The wasm target's lane accesses beyond one contiguous v128 (codegen/wasm/emit-vector.ts) and
// the lane-axis kernel pass (compiler/kernel/lane-axis.ts), against the float64 interpreter:
// strided loads (one address, four loads), masks linear in the lane (one access when lanes 0
// and 3 hold, else lane by lane), scattered stores, and sections whose lane variable the pass
// moved innermost (a 2×2 max-pool and its gradient over a channel-last tensor, as a conv's
// packed GEMM leaves it), loads at the lane variable div 2 or 4 (an upsample, a pool's gradient
// reading the pooled map), stride-2 and -3 loads as two vectors and a shuffle. Every case is bit-exact: copies, maxima and sums of at most a few
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
  /** Whether the SIMD modules hold this shuffle of the emitter's lane loads (true) or must not (false). */
  readonly shuffle?: { readonly kind: keyof typeof SHUFFLES; readonly present: boolean };
}

/** i8x16.shuffle (0xfd 0x0d) with 16 byte indices, taking 4-byte lanes of a (0–3) and b (4–7). */
const shuffleOf = (lanes: readonly number[]): number[] => [0xfd, 0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])];
/** The emitter's shuffles: loads at v div 2 (two splats), at stride 2 and 3 (two overlapping vectors). */
const SHUFFLES = { div2: shuffleOf([0, 0, 6, 7]), stride2: shuffleOf([0, 2, 5, 7]), stride3: shuffleOf([0, 3, 4, 7]) } as const;
const hasBytes = (base64: string, seq: readonly number[]): boolean => {
  const bytes = Buffer.from(base64, "base64");
  for (let i = 0; i + seq.length <= bytes.length; i++) if (seq.every((b, j) => bytes[i + j] === b)) return true;
  return false;
};

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
  {
    name: "2×2 max-pool of an NCHW 2×3×8×12 tensor (lanes along the pooled width: stride-2 loads, two vectors and a shuffle)",
    fn: (x) => F.maxPool2d(x.relu(), 2),
    specs: [k.f32([2, 3, 8, 12])],
    shuffle: { kind: "stride2", present: true },
  },
  {
    name: "the middle of every 3 columns of 5×36, plus 1 (stride-3 loads)",
    fn: (x) => x.reshape([5, 12, 3]).narrow(2, 1, 1).reshape([5, 12]).add(1),
    specs: [k.f32([5, 36])],
    shuffle: { kind: "stride3", present: true },
  },
  {
    name: "a 2×3×8×12 tensor times a 2× nearest upsample of a 2×3×4×6 map (loads at w div 2: two splats and a shuffle)",
    fn: (x, p) => x.mul(upsample(p, 2)),
    specs: [k.f32([2, 3, 8, 12]), k.f32([2, 3, 4, 6])],
    laneExtent: 12,
    shuffle: { kind: "div2", present: true },
  },
  {
    name: "the same upsample of a map stored transposed (w div 2 at stride 4)",
    fn: (x, p) => x.mul(upsample(p.permute([0, 1, 3, 2]), 2)),
    specs: [k.f32([2, 3, 8, 12]), k.f32([2, 3, 6, 4])],
    laneExtent: 12,
    shuffle: { kind: "div2", present: true },
  },
  {
    name: "a 4× nearest upsample, 2×3×2×4 → 2×3×8×16 (loads at w div 4: one splat)",
    fn: (x, p) => x.mul(upsample(p, 4)),
    specs: [k.f32([2, 3, 8, 16]), k.f32([2, 3, 2, 4])],
    laneExtent: 16,
  },
  {
    // one variable, which threads split: a thread's chunk need not start at a multiple of 4, so lanes load one by one
    name: "a 30-vector times a 2× nearest upsample of a 15-vector (the lane variable is the split one)",
    fn: (x, p) => x.mul(p.reshape([15, 1]).expand([15, 2]).reshape([30])),
    specs: [k.f32([30]), k.f32([15])],
    shuffle: { kind: "div2", present: false },
  },
];

/** Nearest-neighbour upsampling of [N, C, H, W] by `f` along H and W, as expand and reshape. */
function upsample(p: k.Tensor, f: number): k.Tensor {
  const [n, c, h, w] = p.shape as [number, number, number, number];
  return p
    .reshape([n, c, h, 1, w, 1])
    .expand([n, c, h, f, w, f])
    .reshape([n, c, h * f, w * f]);
}

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
      if (c.shuffle && !("simd" in opts))
        expect(compiled.artifact.kernels.some((kk) => hasBytes(kk.source, SHUFFLES[c.shuffle!.kind]))).toBe(c.shuffle.present);
    });
  }
});
