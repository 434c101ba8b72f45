// Differential fuzzing: random well-typed graphs (test/util/random-graph.ts) through the whole
// js pipeline (simplify, fusion, kernel IR, codegen, runtime) against the float64 interpreter.
// Seeds 0..499 are the generator's default size, 100000..100099 larger graphs (30 steps, up
// to 1024 elements). A failure prints its seed, the graph, the fusion plan and the kernel
// sources; `KILN_SEED=n` replays one seed.

import { describe, test } from "vitest";
import { randomGraph } from "../util/random-graph.ts";
import { fuzzAgainstInterpreter, fuzzSeeds, isReplay } from "./fuzz-against-interpreter.ts";
import { jsTestTarget } from "./test-targets.ts";

const SEED_COUNT = 500;
const LARGE_COUNT = 100;
/** Seeds from LARGE_FROM on build bigger graphs (more steps, larger tensors: tiled dots, longer chains). */
const LARGE_FROM = 100_000;
const graphFor = (seed: number) => (seed >= LARGE_FROM ? randomGraph(seed, { steps: 30, maxElements: 1024 }) : randomGraph(seed));
const seeds = fuzzSeeds(() => [...Array.from({ length: SEED_COUNT }, (_, i) => i), ...Array.from({ length: LARGE_COUNT }, (_, i) => LARGE_FROM + i)]);

describe("js target vs interpreter on random graphs", () => {
  test(
    `${seeds.length} seeds (${SEED_COUNT} small, ${isReplay() ? 0 : LARGE_COUNT} large), zero mismatches`,
    () => fuzzAgainstInterpreter(jsTestTarget, seeds, { testFile: "test/targets/js-fuzz.test.ts", graphFor }),
    180_000,
  );
});
