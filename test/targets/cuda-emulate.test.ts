// Generated CUDA run on the CPU (test/util/nvcc.ts compiles the kernels as C++ against an
// emulation of blocks, threads and warp shuffles) against the float64 interpreter: the op,
// gradient, model and fuzz graphs, with the default strategy and each reduction strategy
// forced. One C++ build holds every case (a build costs seconds; a case, milliseconds).
// `npm test` emulates a representative subset (cuda-cases.ts); `npm run test:full` all of it.

import { beforeAll, describe, expect, test } from "vitest";
import { compileCuda } from "../../targets/cuda.ts";
import type { ReductionStrategy } from "../../codegen/cuda/render-cuda.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { emulateCuda, hasCxx } from "../util/nvcc.ts";
import { FULL } from "../util/full.ts";
import {
  fuzzCases,
  fuzzSeeds,
  halfOpCases,
  mmaCases,
  modelCases,
  opCases,
  representativeOpCases,
  representativeReductionCases,
  type CudaCase,
} from "./cuda-cases.ts";
import { asStored, firstMismatch, valuesOf } from "./op-cases.ts";

type Strategy = "auto" | ReductionStrategy;

const groups: { readonly label: string; readonly cases: () => CudaCase[]; readonly strategies: readonly Strategy[] }[] = FULL
  ? [
      { label: "ops, composites and gradients", cases: opCases, strategies: ["auto", "warp", "serial", "shared"] },
      { label: "an Adam step of an MLP", cases: modelCases, strategies: ["auto", "warp", "shared"] },
      { label: "fuzz graphs, seeds 0-39", cases: () => fuzzCases(fuzzSeeds(40, 4)), strategies: ["auto"] },
      { label: "f16 and bf16: the op cases made 16-bit, and the bit-for-bit cases", cases: halfOpCases, strategies: ["auto", "warp", "serial", "shared"] },
      { label: "16-bit matmuls on tensor cores (the mma form's shuffle step), bit for bit", cases: mmaCases, strategies: ["auto"] },
    ]
  : [
      { label: "ops, composites and gradients (representative subset)", cases: representativeOpCases, strategies: ["auto"] },
      { label: "reductions of the subset, each strategy forced", cases: representativeReductionCases, strategies: ["warp", "serial", "shared"] },
      { label: "an Adam step of an MLP", cases: modelCases, strategies: ["auto"] },
      { label: "fuzz graphs, seeds 0-3", cases: () => fuzzCases(fuzzSeeds(40, 4)), strategies: ["auto"] },
      { label: "f16 and bf16: the subset made 16-bit, and the bit-for-bit cases", cases: halfOpCases, strategies: ["auto"] },
      { label: "16-bit matmuls on tensor cores (the mma form's shuffle step), bit for bit", cases: mmaCases, strategies: ["auto"] },
    ];

const problemsByGroup = new Map<string, string[]>();

beforeAll(() => {
  if (!hasCxx()) return;
  const runs: { group: string; c: CudaCase; strategy: Strategy; compiled: ReturnType<typeof compileCuda> }[] = [];
  for (const g of groups) {
    problemsByGroup.set(g.label, []);
    const cases = g.cases();
    for (const strategy of g.strategies)
      for (const c of cases)
        runs.push({ group: g.label, c, strategy, compiled: compileCuda(c.graph, { reduction: strategy, symbolPrefix: `c${runs.length}_` }) });
  }
  const results = emulateCuda(runs.map((r) => ({ artifact: r.compiled.artifact, inputs: r.c.inputs })));
  runs.forEach((r, i) => {
    const want = interpret(r.c.graph, r.c.inputs);
    const artifact = r.compiled.artifact;
    for (const o of artifact.outputs) {
      // An output that is an input passes the caller's data through (as every runtime does).
      const passThrough = artifact.buffers[o.buffer]!.kind === "input" ? artifact.inputs.find((io) => io.buffer === o.buffer) : undefined;
      const got: HostTensor = passThrough ? r.c.inputs[passThrough.name]! : results[i]![o.name]!;
      const bad = firstMismatch(valuesOf(got), asStored(want[o.name]!), r.c.atol, r.c.rtol, "cuda");
      if (bad) problemsByGroup.get(r.group)!.push(`${r.c.name} (${r.strategy}): output ${o.name}: ${bad}`);
    }
  });
}, 300_000);

describe.runIf(hasCxx())("cuda kernels emulated on the CPU match the interpreter", () => {
  test.each(groups.map((g) => [`${g.label} (${g.strategies.join(", ")})`, g.label] as const))("%s", (_name, label) => {
    expect(problemsByGroup.get(label)).toEqual([]);
  });
});
