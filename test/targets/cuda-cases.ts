// Graphs the CUDA tests compile and run: the shared op table (test/targets/op-cases.ts), an
// MLP step with its real initial state, and seeded random graphs, traced here as CudaCases;
// expected values always come from the float64 interpreter, never from CUDA.

import * as k from "kiln";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { FULL, representative } from "../util/full.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { FUZZ_ATOL, FUZZ_RTOL, roundInputsToF32 } from "./fuzz-against-interpreter.ts";
import {
  caseGroups,
  caseInputs,
  casesFor,
  DEFAULT_ATOL,
  DEFAULT_RTOL,
  exactHalfCases,
  groupedAdamWHyper,
  halfCase,
  mixedPrecisionCases,
  groupedAdamWStep,
  rememberHyper,
  traceCase,
  type OpCase,
} from "./op-cases.ts";

export interface CudaCase {
  readonly name: string;
  readonly graph: Graph;
  readonly inputs: Record<string, HostTensor>;
  readonly atol: number;
  readonly rtol: number;
}

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

/** Seeded inputs, f32 rounded to f32 so device and interpreter see the same values. */
export function dslInputs(g: Graph, range: readonly [number, number] = [-1, 1], intRange = 4): Record<string, HostTensor> {
  return caseInputs(g, { range, intRange });
}

function traceOpCase(c: OpCase): CudaCase {
  const graph = traceCase(c);
  return { name: c.name, graph, inputs: caseInputs(graph, c), atol: c.atol ?? DEFAULT_ATOL, rtol: c.rtol ?? DEFAULT_RTOL };
}

/** Op, composite, gradient and larger-shape cases of the shared table (test/targets/op-cases.ts), less cuda's exclusions. */
export function opCases(): CudaCase[] {
  return casesFor(
    "cuda",
    caseGroups.filter((g) => g !== "models"),
  ).map(traceOpCase);
}

/**
 * The op cases `npm test` emulates (KILN_FULL=1: all of opCases()): one or two per kind of
 * kernel the CUDA renderer writes — elementwise (vector body + tail), i32 and bool, movement,
 * gather, each reduction shape (short, long/warp rows, argmax, cumsum, softmax), register- and
 * shared-memory-tiled matmul, conv, norms, attention, rng, and gradients.
 */
const REPRESENTATIVE_OP_CASES = [
  "add/sub/mul/div broadcast",
  "exp log sqrt rsqrt",
  "comparisons and where",
  "i32 arithmetic, floor div and mod",
  "casts",
  "sum mean over dims",
  "argmax argmin",
  "sort and argsort, ascending and descending, i32 ties kept in order",
  "cumsum",
  "softmax logSoftmax on inner and outer dims",
  "slice narrow flip pad on one input",
  "gather indexSelect",
  "matmul 2-d, odd sizes",
  "conv2d with padding and stride",
  "layerNorm groupNorm",
  "BatchNorm2d module, training: output and running-statistics updates",
  "causal attention",
  "dropout (rng matches the interpreter bit for bit)",
  "grad of softmax cross-entropy wrt logits and weights",
  "elementwise chain, odd length (vector body + scalar tail)",
  "long rows (warp reductions)",
  "matmul blocked in shared memory, ragged edges",
];

/** opCases() in `npm test`'s representative subset, or all of them under KILN_FULL=1. */
export function representativeOpCases(): CudaCase[] {
  return representative(opCases(), REPRESENTATIVE_OP_CASES, "cuda op cases");
}

/**
 * The op suite over f16 and bf16 (op-cases.ts halfCase): a few cases per kind of CUDA kernel
 * (elementwise, each reduction shape, register- and shared-tiled matmul) with f32 inputs
 * (KILN_FULL=1: every op case), each made 16-bit, plus the bit-for-bit and mixed-precision cases.
 */
export function halfOpCases(): CudaCase[] {
  const base = FULL ? casesFor("cuda", HALF_GROUPS_FULL) : casesFor("cuda").filter((c) => REPRESENTATIVE_HALF_CASES.includes(c.name));
  return (["f16", "bf16"] as const).flatMap((dtype) => [
    ...base.filter((c) => c.specs.some((s) => s.dtype === "f32") && c.halfExclude === undefined).map((c) => traceOpCase(halfCase(c, dtype))),
    ...exactHalfCases(dtype).map(traceOpCase),
    ...mixedPrecisionCases()
      .filter((c) => c.name.includes(dtype))
      .map(traceOpCase),
  ]);
}
const HALF_GROUPS_FULL = caseGroups.filter((g) => g !== "models");
const REPRESENTATIVE_HALF_CASES = [
  "add/sub/mul/div broadcast",
  "exp log sqrt rsqrt",
  "sum mean over dims",
  "softmax logSoftmax on inner and outer dims",
  "matmul 2-d, odd sizes",
  "long rows (warp reductions)",
  "matmul blocked in shared memory, ragged edges",
];

/** Reduction cases of the subset: `npm test` forces each reduction strategy on these only (the strategy changes nothing else). */
const REPRESENTATIVE_REDUCTION_CASES = [
  "sum mean over dims",
  "argmax argmin",
  "softmax logSoftmax on inner and outer dims",
  "layerNorm groupNorm",
  "long rows (warp reductions)",
  "matmul blocked in shared memory, ragged edges",
];

/** opCases() with reductions, for the forced strategies: a subset in `npm test`, all under KILN_FULL=1. */
export function representativeReductionCases(): CudaCase[] {
  return representative(opCases(), REPRESENTATIVE_REDUCTION_CASES, "cuda reduction cases");
}

/** Fuzz seeds 0…n-1: `full` of them under KILN_FULL=1, else `fast`. */
export function fuzzSeeds(full: number, fast: number): number[] {
  return Array.from({ length: FULL ? full : fast }, (_, s) => s);
}

/** One Adam step of a small MLP, and an AdamW step with groups and runtime hyperparameters (loss and every new parameter and optimizer state). */
export function modelCases(): CudaCase[] {
  const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
  const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
  const traced = k.traceFunction("mlp_adam_step", step as never, [f([8, 12]), i([8])]);
  rememberHyper(traced);
  const inputs = dslInputs(traced.graph);
  for (const [name, init] of traced.state) inputs[name] = init();
  const grouped = k.traceFunction("grouped_adamw_step", groupedAdamWStep as never, [f([8, 12]), i([8])]);
  rememberHyper(grouped, groupedAdamWHyper);
  const groupedInputs = dslInputs(grouped.graph);
  for (const [name, init] of grouped.state) groupedInputs[name] = init();
  return [
    { name: "mlp adam step", graph: traced.graph, inputs, atol: 1e-5, rtol: 1e-4 },
    { name: "grouped adamw step, hyperparameters set at run time", graph: grouped.graph, inputs: groupedInputs, atol: 1e-5, rtol: 1e-4 },
  ];
}

/** Seeded random graphs (the js fuzz test's generator). */
export function fuzzCases(seeds: readonly number[]): CudaCase[] {
  return seeds.map((seed): CudaCase => {
    const graph = randomGraph(seed);
    return { name: `fuzz seed ${seed}`, graph, inputs: roundInputsToF32(randomInputs(graph, seed)), atol: FUZZ_ATOL, rtol: FUZZ_RTOL };
  });
}

/**
 * 16-bit matmuls (f32 accumulation) for the tensor-core form (codegen/cuda/mma-tile.ts): those
 * named "(mma)" fit it (M, N, K multiples of 16, 8, 16), the others must not take it. Inputs are
 * small integers in [-4, 4], so every product and partial sum is exact in f32 and any summation
 * order (a tensor core's included) gives the interpreter's value: compared bit for bit.
 */
export function mmaCases(): CudaCase[] {
  return (["f16", "bf16"] as const).flatMap((dtype, d) => {
    const h = (shape: number[]): k.InputSpec => (dtype === "f16" ? k.f16(shape) : k.bf16(shape));
    const cases: [string, (...xs: k.Tensor[]) => k.Tensor, k.InputSpec[]][] = [
      [`a @ b, 32x48 @ 48x24 [${dtype}] (mma)`, (a, b) => a.matmul(b), [h([32, 48]), h([48, 24])]],
      // An epilogue at each output (bias, relu) and a transposed operand.
      [
        `relu(a @ b.T + bias), 16x32 @ (16x32).T [${dtype}] (mma)`,
        (a, b, bias) => a.matmul(b.transpose(0, 1)).add(bias).relu(),
        [h([16, 32]), h([16, 32]), k.f32([16])],
      ],
      // M = 20 is no multiple of 16: the plain kernels.
      [`a @ b, 20x16 @ 16x8 [${dtype}]`, (a, b) => a.matmul(b), [h([20, 16]), h([16, 8])]],
    ];
    return cases.map(([name, fn, specs], c) => {
      const graph = k.traceFunction(`mma_${d}_${c}`, fn as never, specs).graph;
      let state = 7 + 3 * d + c;
      const next = (): number => ((state = (state * 1103515245 + 12345) >>> 0) % 9) - 4;
      return { name, graph, inputs: graphInputs(graph, (slot) => Float64Array.from({ length: slot.count }, next)), atol: 0, rtol: 0 };
    });
  });
}
