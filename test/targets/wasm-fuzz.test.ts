// Differential fuzzing of the wasm target: random well-typed graphs (test/util/random-graph.ts)
// through simplify, fusion, the kernel IR, contraction blocking, SIMD codegen and the runner,
// against the float64 interpreter. 200 seeds with SIMD on one thread, the first 60 scalar and
// the first 60 split across two threads (every section split). A failure prints its seed;
// `KILN_SEED=n npx vitest run test/targets/wasm-fuzz.test.ts` replays one.

import { describe, expect, test } from "vitest";
import { compileWasm, type WasmCompileOptions } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { WasmArtifactRunner, type WasmRunOptions } from "../../runtime/wasm/run-artifact.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";

// f32 tolerances: wasm computes in f32 throughout (and sums in a blocked order), the oracle in f64.
const ATOL = 1e-4;
const RTOL = 1e-3;

function roundInputs(inputs: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(inputs)) out[name] = t.dtype === "f32" ? { ...t, data: Float64Array.from(Float32Array.from(t.data)) } : t;
  return out;
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, f32: boolean): string | undefined {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!;
    const e = f32 ? Math.fround(want[i]!) : want[i]!;
    if (Number.isNaN(e) ? Number.isNaN(a) : a === e || Math.abs(a - e) <= ATOL + RTOL * Math.abs(e)) continue;
    return `flat index ${i}: wasm ${a}, interpreter ${e}`;
  }
  return undefined;
}

async function checkSeed(seed: number, compile: WasmCompileOptions, run: WasmRunOptions): Promise<string | undefined> {
  const g = randomGraph(seed);
  const inputs = roundInputs(randomInputs(g, seed));
  const expected = interpret(g, inputs);
  let runner: WasmArtifactRunner | undefined;
  try {
    runner = await WasmArtifactRunner.create(compileWasm(g, compile).artifact, run);
    const got = runner.run(inputs);
    for (const o of g.outputs) {
      const bad = firstMismatch(got[o.name]!.data, expected[o.name]!.data, expected[o.name]!.dtype === "f32");
      if (bad) return `output ${o.name}: ${bad}`;
    }
    return undefined;
  } catch (e) {
    return `threw ${(e as Error).stack}`;
  } finally {
    await runner?.close();
  }
}

function report(seed: number, problem: string): string {
  const g = randomGraph(seed);
  let plan = "";
  try {
    const c = compileWasm(g);
    plan = formatFusionPlan(c.graph, c.plan);
  } catch {
    plan = "(compile failed)";
  }
  return `seed ${seed} (replay: KILN_SEED=${seed} npx vitest run test/targets/wasm-fuzz.test.ts): ${problem}\n${printGraph(g)}\n${plan}`;
}

const replay = process.env["KILN_SEED"];
const seedRange = (n: number): number[] => (replay !== undefined ? [Number(replay)] : Array.from({ length: n }, (_, i) => i));

describe.each([
  { name: "simd, 1 thread", seeds: seedRange(200), compile: {}, run: { threads: 1 } },
  { name: "scalar, 1 thread", seeds: seedRange(60), compile: { simd: false }, run: { threads: 1 } },
  { name: "simd, 2 threads", seeds: seedRange(60), compile: {}, run: { threads: 2, minParallelWork: 0 } },
])("wasm target vs interpreter on random graphs ($name)", ({ seeds, compile, run }) => {
  test(`${seeds.length} seeds, zero mismatches`, async () => {
    const failures: string[] = [];
    for (const seed of seeds) {
      const problem = await checkSeed(seed, compile, run);
      if (problem) failures.push(report(seed, problem));
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join("\n\n")).toEqual([]);
  }, 180_000);
});
