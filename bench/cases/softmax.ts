// softmax over the last dim of a 4096×1024 f32 matrix (inputs uniform in [-4, 4)). Memory-bound:
// the minimum traffic is one read of the input and one write of the output.

import * as k from "kiln";
import { seededUniform, singleOutput, f32Of, type BenchCase } from "./case.ts";

export const SOFTMAX_ROWS = 4096;
export const SOFTMAX_COLS = 1024;

export const softmaxCase: BenchCase = {
  id: "softmax",
  title: `softmax ${SOFTMAX_ROWS}×${SOFTMAX_COLS} f32, last dim`,
  throughput: { unit: "GB/s", bytesPerStep: 2 * 4 * SOFTMAX_ROWS * SOFTMAX_COLS },
  makeData: () => ({ x: seededUniform(3, SOFTMAX_ROWS * SOFTMAX_COLS, -4, 4) }),
  kiln: () => ({
    fn: function softmax(x: k.Tensor) {
      return x.softmax(-1);
    },
    specs: [k.f32([SOFTMAX_ROWS, SOFTMAX_COLS])],
    inputs: (data) => [f32Of(data, "x")],
    output: singleOutput,
  }),
};
