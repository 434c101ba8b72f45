// The benchmark cases by id, in the order they run.

import type { BenchCase, CaseId } from "./case.ts";
import { elementwiseCase } from "./elementwise.ts";
import { matmulCase } from "./matmul.ts";
import { mlpCase } from "./mlp.ts";
import { softmaxCase } from "./softmax.ts";
import { cnnCase } from "./cnn.ts";
import { transformerCase } from "./transformer.ts";

export const BENCH_CASES: Readonly<Record<CaseId, BenchCase>> = {
  matmul: matmulCase,
  mlp: mlpCase,
  softmax: softmaxCase,
  elementwise: elementwiseCase,
  cnn: cnnCase,
  transformer: transformerCase,
};
