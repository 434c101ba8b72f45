// Differential fuzzing: random well-typed graphs (test/util/random-graph.ts) through the whole
// js pipeline (simplify, fusion, kernel IR, codegen, runtime) against the float64 interpreter.
// Seeds 0..499 are the generator's default size, 100000..100099 larger graphs (30 steps, up
// to 1024 elements). A failure prints its seed, the graph, the fusion plan and the kernel
// sources; `KILN_SEED=n` replays one seed.

import { describe, expect, test } from "vitest";
import { compileJs } from "../../codegen/js/target.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import type { HostTensor } from "../../compiler/util/host-tensor.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";

const SEED_COUNT = 500;
// f32 tolerances: the kernels round materialized intermediates to f32, the oracle does not.
const ATOL = 1e-4;
const RTOL = 1e-3;

/** Inputs as an f32 device sees them: both sides get the same f32-rounded values. */
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
    return `flat index ${i}: js ${a}, interpreter ${e}`;
  }
  return undefined;
}

/** Seeds from LARGE_FROM on build bigger graphs (more steps, larger tensors: tiled dots, longer chains). */
const LARGE_FROM = 100_000;
const graphFor = (seed: number) => (seed >= LARGE_FROM ? randomGraph(seed, { steps: 30, maxElements: 1024 }) : randomGraph(seed));

export function checkSeed(seed: number): string | undefined {
  const g = graphFor(seed);
  const inputs = roundInputs(randomInputs(g, seed));
  const expected = interpret(g, inputs);
  try {
    const compiled = compileJs(g);
    const got = new JsArtifactRunner(compiled.artifact).run(inputs);
    for (const o of g.outputs) {
      const bad = firstMismatch(got[o.name]!.data, expected[o.name]!.data);
      if (bad) return `output ${o.name}: ${bad}`;
    }
    return undefined;
  } catch (e) {
    return `threw ${(e as Error).stack}`;
  }
}

function report(seed: number, problem: string): string {
  const g = graphFor(seed);
  let plan = "";
  try {
    const c = compileJs(g);
    plan = `${formatFusionPlan(c.graph, c.plan)}\n${c.artifact.kernels.map((k) => k.source).join("\n")}`;
  } catch {
    plan = "(compile failed)";
  }
  return `seed ${seed} (replay: KILN_SEED=${seed} npx vitest run test/targets/js-fuzz.test.ts): ${problem}\n${printGraph(g)}\n${plan}`;
}

const replay = process.env["KILN_SEED"];
const LARGE_COUNT = 100;
const seeds = replay !== undefined ? [Number(replay)] : [...Array.from({ length: SEED_COUNT }, (_, i) => i), ...Array.from({ length: LARGE_COUNT }, (_, i) => LARGE_FROM + i)];

describe("js target vs interpreter on random graphs", () => {
  test(`${seeds.length} seeds (${SEED_COUNT} small, ${replay === undefined ? LARGE_COUNT : 0} large), zero mismatches`, () => {
    const failures: string[] = [];
    for (const seed of seeds) {
      const problem = checkSeed(seed);
      if (problem) failures.push(report(seed, problem));
      if (failures.length >= 3) break;
    }
    expect(failures, failures.join("\n\n")).toEqual([]);
  }, 180_000);
});
