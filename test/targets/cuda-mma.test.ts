// Tensor-core contractions on CUDA (codegen/cuda/mma-tile.ts): a 16-bit matmul accumulated in
// f32 renders as mma.sync m16n8k16 steps, a warp per 16x8 tile. No GPU has run these kernels:
// `nvcc -ptx` checks that they compile to the mma instruction for sm_80 and sm_90, and the CPU
// emulation (test/util/nvcc.ts) runs the prelude's shuffle form of the same step — the product
// of the warp's fragments as the PTX ISA lays them out — against the interpreter. The inputs are
// small integers, so every product and partial sum is exact in f32 and any summation order
// (the tensor core's included) gives the interpreter's value bit for bit.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { emulateCuda, findNvcc, hasCxx, nvccPtx } from "../util/nvcc.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { asStored, valuesOf } from "./op-cases.ts";

const nvcc = findNvcc();

interface MmaCase {
  readonly name: string;
  readonly graph: Graph;
  /** Whether the contraction fits the mma form (shape multiples of 16, 8, 16). */
  readonly mma: boolean;
}

function mmaCase(name: string, fn: (...xs: k.Tensor[]) => k.Tensor, specs: k.InputSpec[], mma: boolean): MmaCase {
  return { name, graph: k.traceFunction(name.replace(/\W+/g, "_"), fn as never, specs).graph, mma };
}

const cases: MmaCase[] = (["f16", "bf16"] as const).flatMap((dtype) => {
  const h = (shape: number[]): k.InputSpec => (dtype === "f16" ? k.f16(shape) : k.bf16(shape));
  return [
    mmaCase(`a @ b 32x48 @ 48x24 [${dtype}]`, (a, b) => a.matmul(b), [h([32, 48]), h([48, 24])], true),
    // An epilogue at each output (bias, relu) and a transposed operand.
    mmaCase(
      `relu(a @ b.T + bias) 16x32 @ (16x32).T [${dtype}]`,
      (a, b, bias) => a.matmul(b.transpose(0, 1)).add(bias).relu(),
      [h([16, 32]), h([16, 32]), k.f32([16])],
      true,
    ),
    // M = 20 is no multiple of 16: the plain kernels.
    mmaCase(`a @ b 20x16 @ 16x8 [${dtype}]`, (a, b) => a.matmul(b), [h([20, 16]), h([16, 8])], false),
  ];
});

/** Seeded small integers in [-4, 4]: products and sums of a few dozen stay exact in f32. */
function inputsOf(g: Graph, seed: number): Record<string, HostTensor> {
  let state = seed;
  const next = (): number => ((state = (state * 1103515245 + 12345) >>> 0) % 9) - 4;
  return graphInputs(g, (slot) => Float64Array.from({ length: slot.count }, next));
}

describe("cuda tensor-core (mma) contractions", () => {
  const compiled = cases.map((c, i) => compileCuda(c.graph, { symbolPrefix: `m${i}_` }));

  test("16-bit contractions accumulated in f32 take the mma form where the shape fits, and only there", () => {
    cases.forEach((c, i) => {
      const sources = compiled[i]!.artifact.kernels.map((kk) => kk.source).join("\n");
      expect(sources.includes(`kiln_mma_${c.name.includes("bf16") ? "bf16" : "f16"}(`), c.name).toBe(c.mma);
    });
  });

  test.runIf(hasCxx())(
    "emulated on the CPU, bit for bit with the interpreter",
    () => {
      const inputs = cases.map((c, i) => inputsOf(c.graph, 7 + i));
      const results = emulateCuda(cases.map((_, i) => ({ artifact: compiled[i]!.artifact, inputs: inputs[i]! })));
      cases.forEach((c, i) => {
        const want = interpret(c.graph, inputs[i]!);
        for (const o of c.graph.outputs) {
          expect(Array.from(valuesOf(results[i]![o.name]!)), c.name).toEqual(Array.from(asStored(want[o.name]!)));
        }
      });
    },
    120_000,
  );

  test.runIf(nvcc !== undefined).each(["sm_80", "sm_90"])(
    "%s: nvcc -ptx compiles them to mma.sync.aligned.m16n8k16 (f16 and bf16)",
    (arch) => {
      const source = [CUDA_PRELUDE, ...compiled.flatMap((c) => c.artifact.kernels.map((kk) => kk.source))].join("\n");
      const r = nvccPtx(nvcc!, source, arch);
      if (!r.ok) throw new Error(`nvcc -ptx -arch=${arch} failed:\n${r.log.slice(0, 4000)}`);
      expect(r.ptx).toContain("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32");
      expect(r.ptx).toContain("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
    },
    120_000,
  );
});
