// Differential fuzzing shared by the target fuzz tests: seeded random graphs
// (test/util/random-graph.ts) compiled for a target and compared with the float64 interpreter.
// A failure prints its seed, the replay command (KILN_SEED=n), the graph and the target's explanation.

import { expect } from "vitest";
import { interpret } from "../../compiler/ir/interpret.ts";
import { printGraph } from "../../compiler/ir/printer.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { randomGraph, randomInputs } from "../util/random-graph.ts";
import { firstMismatch, type TestTarget } from "./op-cases.ts";

// f32 tolerances: the kernels round materialized intermediates to f32, the oracle does not.
export const FUZZ_ATOL = 1e-4;
export const FUZZ_RTOL = 1e-3;

/** Inputs as an f32 device sees them: both sides get the same f32-rounded values. */
export function roundInputsToF32(inputs: Record<string, HostTensor>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(inputs)) out[name] = t.dtype === "f32" ? { ...t, data: Float64Array.from(Float32Array.from(t.data)) } : t;
  return out;
}

/** `KILN_SEED=n` replays one seed; otherwise the given range. */
export function fuzzSeeds(defaultSeeds: () => number[]): number[] {
  const replay = process.env["KILN_SEED"];
  return replay !== undefined ? [Number(replay)] : defaultSeeds();
}

export const isReplay = (): boolean => process.env["KILN_SEED"] !== undefined;

export interface FuzzOptions {
  /** The test file, for the replay command in a failure. */
  readonly testFile: string;
  /** The graph a seed builds (default: randomGraph(seed)). */
  readonly graphFor?: (seed: number) => Graph;
  /** Stop after this many failures (default 3). */
  readonly maxFailures?: number;
}

async function checkSeed(target: TestTarget, g: Graph, seed: number): Promise<string | undefined> {
  const inputs = roundInputsToF32(randomInputs(g, seed));
  const expected = interpret(g, inputs);
  try {
    const compiled = target.compile(g, { verify: false });
    const got = await compiled.run(inputs);
    for (const o of g.outputs) {
      const bad = firstMismatch(got[o.name]!.data, expected[o.name]!.data, FUZZ_ATOL, FUZZ_RTOL, target.name);
      if (bad) return `output ${o.name}: ${bad}\n${compiled.explain()}`;
    }
    return undefined;
  } catch (e) {
    return `threw ${(e as Error).stack}`;
  }
}

/** Runs every seed on the target and expects zero mismatches; the failure message holds each failing seed's report. */
export async function fuzzAgainstInterpreter(target: TestTarget, seeds: readonly number[], opts: FuzzOptions): Promise<void> {
  const graphFor = opts.graphFor ?? ((seed: number) => randomGraph(seed));
  const failures: string[] = [];
  for (const seed of seeds) {
    const g = graphFor(seed);
    const problem = await checkSeed(target, g, seed);
    if (problem) failures.push(`seed ${seed} (replay: KILN_SEED=${seed} npx vitest run ${opts.testFile}): ${problem}\n${printGraph(g)}`);
    if (failures.length >= (opts.maxFailures ?? 3)) break;
  }
  expect(failures, failures.join("\n\n")).toEqual([]);
}
