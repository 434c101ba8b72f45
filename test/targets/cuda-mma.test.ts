// Which CUDA contractions take the tensor-core form (codegen/cuda/mma-tile.ts): a 16-bit matmul
// accumulated in f32 whose M, N, K are multiples of 16, 8, 16, and no other. No GPU has run these
// kernels. Their results are checked where the other CUDA kernels are: cuda-emulate.test.ts
// runs mmaCases (test/targets/cuda-cases.ts) in the CPU emulation — the prelude's shuffle form of
// the mma step, the product of the warp's fragments as the PTX ISA lays them out — bit for bit
// against the interpreter, and cuda-nvcc.test.ts compiles them to mma.sync m16n8k16 for sm_80/sm_90.

import { expect, test } from "vitest";
import { compileCuda } from "../../targets/cuda.ts";
import { mmaCases } from "./cuda-cases.ts";

test("16-bit contractions accumulated in f32 take the mma form where the shape fits, and only there", () => {
  const cases = mmaCases();
  expect(cases.filter((c) => c.name.endsWith("(mma)")).length).toBe(4);
  for (const c of cases) {
    const { artifact } = compileCuda(c.graph);
    const format = c.name.includes("[bf16]") ? "bf16" : "f16";
    expect(
      artifact.kernels.some((kk) => kk.source.includes(`kiln_mma_${format}(acc, fa, fb)`)),
      c.name,
    ).toBe(c.name.endsWith("(mma)"));
  }
});
