// An elementwise chain over 16M f32 elements: sigmoid(relu(x·2 + 1) · y), the same expression
// for every runner. Memory-bound: the minimum traffic is two inputs read and one output written.

import * as k from "kiln";
import { seededUniform, singleOutput, f32Of, type BenchCase } from "./case.ts";

export const ELEMENTWISE_COUNT = 16 * 1024 * 1024;

export const elementwiseCase: BenchCase = {
  id: "elementwise",
  title: `elementwise sigmoid(relu(x*2+1)*y) over ${ELEMENTWISE_COUNT / (1024 * 1024)}M f32`,
  throughput: { unit: "GB/s", bytesPerStep: 3 * 4 * ELEMENTWISE_COUNT },
  makeData: () => ({ x: seededUniform(4, ELEMENTWISE_COUNT, -1, 1), y: seededUniform(5, ELEMENTWISE_COUNT, -1, 1) }),
  kiln: () => ({
    fn: function elementwiseChain(x: k.Tensor, y: k.Tensor) {
      return x.mul(2).add(1).relu().mul(y).sigmoid();
    },
    specs: [k.f32([ELEMENTWISE_COUNT]), k.f32([ELEMENTWISE_COUNT])],
    inputs: (data) => [f32Of(data, "x"), f32Of(data, "y")],
    output: singleOutput,
  }),
};
