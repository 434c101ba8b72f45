// Differential fuzzing on the webgpu target: random well-typed graphs (test/util/random-graph.ts)
// through simplify, fusion, kernel IR, WGSL and the WebGPU runtime against the float64
// interpreter. A CI-sized seed range (all 100 passed when written); `KILN_SEED=n` replays one
// seed, KILN_WEBGPU_FUZZ_SEEDS=n sets the range.

import { describe, expect, test } from "vitest";
import { compileWebGpu } from "../../codegen/wgsl/target.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const env = await webGpuTestEnv();
// lavapipe JIT-compiles every new shader (~0.5-1.5 s a seed on 2 cores): 30 seeds by default, 100 in CI's required run.
const SEED_COUNT = Number(process.env["KILN_WEBGPU_FUZZ_SEEDS"] ?? (process.env["KILN_REQUIRE_WEBGPU"] === "1" ? 100 : 30));
// As the js fuzzer: materialized intermediates are f32 on the device, float64 in the oracle.
const ATOL = 1e-4;
const RTOL = 1e-3;

function roundInputs(inputs: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(inputs)) out[name] = t.dtype === "f32" ? { ...t, data: Float64Array.from(Float32Array.from(t.data)) } : t;
  return out;
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | undefined {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!;
    const e = want[i]!;
    if (Number.isNaN(e) ? Number.isNaN(a) : a === e || Math.abs(a - e) <= ATOL + RTOL * Math.abs(e)) continue;
    return `flat index ${i}: webgpu ${a}, interpreter ${e}`;
  }
  return undefined;
}

async function checkSeed(seed: number): Promise<string | undefined> {
  const g = randomGraph(seed);
  const inputs = roundInputs(randomInputs(g, seed));
  const expected = interpret(g, inputs);
  try {
    const compiled = compileWebGpu(g, { limits: env.context!.limits });
    const runner = await WebGpuArtifactRunner.create(env.context!.device, compiled.artifact);
    const got = await runner.run(inputs);
    runner.destroy();
    for (const o of g.outputs) {
      const bad = firstMismatch(got[o.name]!.data, expected[o.name]!.data);
      if (bad) return `output ${o.name}: ${bad}\n${compiled.artifact.kernels.map((k) => k.source).join("\n")}`;
    }
    return undefined;
  } catch (e) {
    return `threw ${(e as Error).stack}`;
  }
}

const replay = process.env["KILN_SEED"];
const seeds = replay !== undefined ? [Number(replay)] : Array.from({ length: SEED_COUNT }, (_, i) => i);

describe.skipIf(!env.available)("webgpu target vs interpreter on random graphs", () => {
  test(`${seeds.length} seeds, zero mismatches`, async () => {
    const failures: string[] = [];
    for (const seed of seeds) {
      const problem = await checkSeed(seed);
      if (problem) failures.push(`seed ${seed} (replay: KILN_SEED=${seed} npx vitest run test/targets/webgpu-fuzz.test.ts): ${problem}\n${printGraph(randomGraph(seed))}`);
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join("\n\n")).toEqual([]);
  }, 600_000);
});
