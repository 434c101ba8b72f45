// matmul 1024×1024×1024 in f32: C = A·B with A, B uniform in [-1, 1). Compute-bound: 2·N³ FLOPs.

import * as k from "kiln";
import { seededUniform, singleOutput, f32Of, type BenchCase } from "./case.ts";

export const MATMUL_N = 1024;

export const matmulCase: BenchCase = {
  id: "matmul",
  title: `matmul ${MATMUL_N}×${MATMUL_N}×${MATMUL_N} f32`,
  throughput: { unit: "GFLOP/s", flopsPerStep: 2 * MATMUL_N ** 3 },
  makeData: () => ({ a: seededUniform(1, MATMUL_N * MATMUL_N, -1, 1), b: seededUniform(2, MATMUL_N * MATMUL_N, -1, 1) }),
  kiln: () => ({
    fn: function matmul(a: k.Tensor, b: k.Tensor) {
      return a.matmul(b);
    },
    specs: [k.f32([MATMUL_N, MATMUL_N]), k.f32([MATMUL_N, MATMUL_N])],
    inputs: (data) => [f32Of(data, "a"), f32Of(data, "b")],
    output: singleOutput,
  }),
};
