// Differential fuzzing on the webgpu target: random well-typed graphs (test/util/random-graph.ts)
// through simplify, fusion, kernel IR, WGSL and the WebGPU runtime against the float64
// interpreter. A CI-sized seed range (all 100 passed when written); `KILN_SEED=n` replays one
// seed, KILN_WEBGPU_FUZZ_SEEDS=n sets the range.

import { describe, test } from "vitest";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { fuzzAgainstInterpreter, fuzzSeeds } from "./fuzz-against-interpreter.ts";
import { webGpuTestTarget } from "./test-targets.ts";

const env = await webGpuTestEnv();
// lavapipe JIT-compiles every new shader (~0.5-1.5 s a seed on 2 cores): 30 seeds by default, 100 in CI's required run.
const SEED_COUNT = Number(process.env["KILN_WEBGPU_FUZZ_SEEDS"] ?? (process.env["KILN_REQUIRE_WEBGPU"] === "1" ? 100 : 30));
const seeds = fuzzSeeds(() => Array.from({ length: SEED_COUNT }, (_, i) => i));

describe.skipIf(!env.available)("webgpu target vs interpreter on random graphs", () => {
  test(
    `${seeds.length} seeds, zero mismatches`,
    () =>
      fuzzAgainstInterpreter(
        webGpuTestTarget(() => env.context!),
        seeds,
        { testFile: "test/targets/webgpu-fuzz.test.ts" },
      ),
    600_000,
  );
});
