// The benchmark harness's own arithmetic and control flow, checked without timing anything
// real: work per step against hand counts, ratios and output differences from made-up
// timings, sampling rules with a fake runner, and the MLP case's weight names against Kiln.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { seededUniform, type BenchCase } from "../../bench/cases/case.ts";
import { BENCH_CASES } from "../../bench/cases/all-cases.ts";
import { hostIoStats, sampleHostIo, summarizeHostIo, type IoSample } from "../../bench/host-io.ts";
import { compareRows, overheadText, sameStepText, withinText } from "../../bench/report.ts";
import type { Runner } from "../../bench/runner.ts";
import { timeRunner, type Timing } from "../../bench/timing.ts";

describe("cases", () => {
  test("work per step", () => {
    expect(BENCH_CASES.matmul.throughput).toEqual({ unit: "GFLOP/s", flopsPerStep: 2 * 1024 * 1024 * 1024 });
    // Forward + weight gradient for every layer, input gradient for layers 2 and 3 (x needs none).
    const macs = 128 * (784 * 512 * 2 + 512 * 512 * 3 + 512 * 10 * 3);
    expect(BENCH_CASES.mlp.throughput).toEqual({ unit: "GFLOP/s", flopsPerStep: 2 * macs });
    expect(BENCH_CASES.softmax.throughput).toEqual({ unit: "GB/s", bytesPerStep: 2 * 4 * 4096 * 1024 });
    expect(BENCH_CASES.elementwise.throughput).toEqual({ unit: "GB/s", bytesPerStep: 3 * 4 * 16 * 1024 * 1024 });
  });

  test("seeded inputs repeat and stay in range", () => {
    const a = seededUniform(9, 10_000, -2, 3);
    expect(seededUniform(9, 10_000, -2, 3)).toEqual(a);
    expect(seededUniform(10, 10_000, -2, 3)).not.toEqual(a);
    expect(a.every((v) => v >= -2 && v < 3)).toBe(true);
    expect(a.reduce((s, v) => s + v, 0) / a.length).toBeCloseTo(0.5, 1);
  });

  test("the MLP's shared weights load into Kiln's trainStep state by name", async () => {
    const data = BENCH_CASES.mlp.makeData();
    const program = BENCH_CASES.mlp.kiln();
    const exe = await k.compile(program.fn, program.specs, { target: "reference" });
    program.setup!(exe, data);
    const state = exe.state();
    expect(
      Object.keys(state)
        .filter((n) => !n.startsWith("opt."))
        .sort(),
    ).toEqual(["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]);
    expect(state["2.weight"]!.shape).toEqual([512, 512]);
    expect(state["2.weight"]!.data).toEqual(data["w1"]);
    expect(state["4.bias"]!.data).toEqual(data["b2"]);
    const labels = data["y"] as Int32Array;
    expect(labels.every((v) => Number.isInteger(v) && v >= 0 && v < 10)).toBe(true);
  });
});

const ok = (medianMs: number, outputs: number[][]): Timing => ({
  status: "ok",
  prepareMs: 1,
  firstStepMs: 2,
  medianMs,
  minMs: medianMs,
  samplesMs: [medianMs],
  coldOnly: false,
  outputs: outputs.map((o) => Float32Array.from(o)),
});

describe("compareRows", () => {
  const matmul: BenchCase = BENCH_CASES.matmul;

  test("ratio is peer over Kiln, throughput from the median, rel diff over both steps", () => {
    const rows = compareRows(matmul, [
      {
        runner: "kiln",
        timing: ok(100, [
          [1, -4],
          [2, 2],
        ]),
      },
      {
        runner: "peer",
        timing: ok(250, [
          [1, -4.002],
          [2, 2.04],
        ]),
      },
      { runner: "broken", timing: { status: "failed", reason: "no" } },
    ]);
    expect(rows[0]!.ratio).toBe(1);
    expect(rows[0]!.relDiff).toBeUndefined();
    expect(rows[1]!.ratio).toBe(2.5);
    expect(rows[1]!.throughput).toBeCloseTo((2 * 1024 ** 3) / (250e-3 * 1e9), 6);
    // step 1: 0.002 / 4; step 2: 0.04 / 2 — the worst is step 2 (f32 rounding aside).
    expect(rows[1]!.relDiff).toBeCloseTo(0.02, 5);
    expect(rows[2]).toEqual({ runner: "broken", timing: { status: "failed", reason: "no" } });
  });

  test("without a Kiln time there is no ratio, and outputs compare with the first runner that ran", () => {
    const rows = compareRows(matmul, [
      { runner: "kiln", timing: { status: "unavailable", reason: "not registered" } },
      { runner: "a", timing: ok(10, [[2]]) },
      { runner: "b", timing: ok(20, [[3]]) },
    ]);
    expect(rows.map((r) => r.ratio)).toEqual([undefined, undefined, undefined]);
    expect(rows[2]!.relDiff).toBeCloseTo(0.5, 6);
  });

  test("NaN output is the worst difference, not a silent match", () => {
    const rows = compareRows(matmul, [
      { runner: "kiln", timing: ok(1, [[1, 1]]) },
      { runner: "nan", timing: ok(1, [[1, Number.NaN]]) },
    ]);
    expect(Number.isNaN(rows[1]!.relDiff)).toBe(true);
  });
});

/** A runner whose steps count themselves and return the step number. */
function countingRunner(opts: { prepareError?: unknown; firstStepDelayMs?: number; firstStepIsWarm?: boolean } = {}): Runner & { steps: number } {
  const runner = {
    name: "fake",
    firstStepIsWarm: opts.firstStepIsWarm ?? false,
    steps: 0,
    init: async () => undefined,
    notes: () => [],
    async prepare() {
      if (opts.prepareError !== undefined) throw opts.prepareError;
      return {
        step: async () => {
          runner.steps++;
          if (runner.steps === 1 && opts.firstStepDelayMs) await new Promise((r) => setTimeout(r, opts.firstStepDelayMs));
          return Float32Array.of(runner.steps);
        },
        dispose: () => undefined,
      };
    },
  };
  return runner;
}

describe("overheadText", () => {
  test("a ratio to one copy only where both the overhead and the copy are measurable", () => {
    expect(overheadText(3, 2)).toBe("median exe.run − median kernels (different runs) = 1.50× one copy");
    expect(overheadText(-19.2, 0.87)).toBe("median exe.run − median kernels (different runs) ≤ 0 (within timing noise)");
    expect(overheadText(0.6, 0.01)).toBe("median exe.run − median kernels (different runs) = 0.60 ms (the I/O is too small to compare with a copy)");
    // With the copy timed right after the kernels (1.1 ms for 12.6 MB where the warm copy took 0.45): both ratios.
    expect(overheadText(1.1, 0.44, 1.1)).toBe(
      "median exe.run − median kernels (different runs) = 2.50× one copy between warm arrays, 1.00× one copy made right after the kernels (1.10 ms)",
    );
  });
  test("exe.run over the kernels plus one copy", () => {
    expect(withinText(90, 50, 10)).toBe("exe.run / (kernels + one copy) = 1.50× (issue 15's aim ≤ 1.5×)");
  });
});

describe("exe.run's host part within each step", () => {
  /** A sample from hand-picked parts: the step's wall time is the parts plus `rest`. */
  const sample = (writeMs: number, executeMs: number, readMs: number, restMs: number, copyMs: number): IoSample => ({
    stepMs: writeMs + executeMs + readMs + restMs,
    writeMs,
    executeMs,
    readMs,
    copyMs,
  });

  test("beyond the kernels is each step's wall time minus its own kernels; the ratio pairs each step with the copy after it", () => {
    // The kernels swing by 5 ms from step to step (a matmul on a shared machine); the part beyond them does not.
    const samples = [sample(0.6, 21, 0.4, 0.1, 1.0), sample(0.6, 26, 0.4, 0.1, 0.9), sample(0.5, 20, 0.3, 0.2, 1.0), sample(0.7, 23, 0.5, 0.1, 1.2)];
    const s = summarizeHostIo(samples)!;
    expect(s.samples).toBe(4);
    // beyond: 1.1, 1.1, 1.0, 1.3 → median 1.1; per-step ratios 1.1/1.0, 1.1/0.9, 1.0/1.0, 1.3/1.2, sorted 1.0, 1.0833, 1.1, 1.2222 → median (1.0833 + 1.1) / 2.
    expect(s.beyondMs).toBeCloseTo(1.1, 12);
    expect(s.writeMs).toBeCloseTo(0.6, 12);
    expect(s.readMs).toBeCloseTo(0.4, 12);
    expect(s.restMs).toBeCloseTo(0.1, 12);
    expect(s.copyMs).toBeCloseTo(1.0, 12);
    expect(s.beyondOverCopy).toBeCloseTo((1.3 / 1.2 + 1.1 / 1.0) / 2, 12);
    // write + read over the copy: 1.0/1.0, 1.0/0.9, 0.8/1.0, 1.2/1.2, sorted 0.8, 1.0, 1.0, 1.111 → 1.0.
    expect(s.copiesOverCopy).toBeCloseTo(1.0, 12);
    // Least beyond 1.0 (the third step) over least copy 0.9 (the second).
    expect(s.bestOverBest).toBeCloseTo(1.0 / 0.9, 12);
    expect(summarizeHostIo([])).toBeUndefined();
    expect(hostIoStats(undefined)).toEqual({});
    expect(Object.keys(hostIoStats(s)).sort()).toEqual([
      "ioBestOverBest",
      "ioBeyondMs",
      "ioBeyondOverCopy",
      "ioCopiesOverCopy",
      "ioCopyMs",
      "ioReadMs",
      "ioRestMs",
      "ioSamples",
      "ioWriteMs",
    ]);
  });

  test("sampling: the step timed by the given clock, a copy after each step, min/max/budget respected", async () => {
    let clock = 0;
    const events: string[] = [];
    // Each step takes 10 ms on the fake clock, of which the runner reports 8 as kernels.
    const step = async () => {
      events.push("step");
      clock += 10;
    };
    // The parts are read after the clock: reading them costs the step nothing.
    const parts = () => (events.push("parts"), (clock += 100), { writeMs: 1, executeMs: 8, readMs: 0.5 });
    const copy = () => (events.push("copy"), 2);
    const samples = await sampleHostIo(step, parts, copy, () => clock, { min: 3, max: 9, budgetMs: 25 });
    // 3 samples reach the 25 ms budget: stop at the minimum.
    expect(samples).toHaveLength(3);
    expect(events).toEqual(["step", "parts", "copy", "step", "parts", "copy", "step", "parts", "copy"]);
    expect(samples[0]).toEqual({ stepMs: 10, writeMs: 1, executeMs: 8, readMs: 0.5, copyMs: 2 });
    expect(summarizeHostIo(samples)).toMatchObject({ beyondMs: 2, restMs: 0.5, beyondOverCopy: 1 });
    clock = 0;
    expect(await sampleHostIo(step, parts, copy, () => clock, { min: 3, max: 5, budgetMs: 1e9 })).toHaveLength(5);
    // A target that does not time a run's parts: no samples, no copy timed.
    events.length = 0;
    expect(
      await sampleHostIo(
        step,
        () => undefined,
        copy,
        () => clock,
      ),
    ).toEqual([]);
    expect(events).toEqual(["step"]);
  });

  test("the line under the table: the ratio, ms where the copy is too small, n/a without samples", () => {
    const stats = { ioSamples: 9, ioBeyondMs: 1.1, ioWriteMs: 0.6, ioReadMs: 0.4, ioRestMs: 0.1, ioCopyMs: 0.95, ioBeyondOverCopy: 1.16 };
    expect(sameStepText(stats)).toBe(
      "exe.run beyond its kernels, within each step (median of 9): 1.10 ms (write 0.60, read 0.40, rest 0.10) = 1.16× one copy of its I/O made right after each step (0.95 ms) (aim ≤ 1.5×)",
    );
    expect(sameStepText({ ...stats, ioCopiesOverCopy: 1.05, ioBestOverBest: 1.02 })).toBe(
      "exe.run beyond its kernels, within each step (median of 9): 1.10 ms (write 0.60, read 0.40, rest 0.10) = 1.16× one copy of its I/O made right after each step (0.95 ms) (aim ≤ 1.5×); its write + read alone 1.05×; least step over least copy 1.02×",
    );
    expect(sameStepText({ ...stats, ioCopyMs: 0.02 })).toBe(
      "exe.run beyond its kernels, within each step (median of 9): 1.10 ms (write 0.60, read 0.40, rest 0.10); one copy of its I/O takes 0.02 ms, too little to compare with",
    );
    expect(sameStepText({ kernelMs: 3 })).toBe(
      "exe.run beyond its kernels, within each step: n/a (this target does not time a run's parts; exe.run's `timeIo` is wasm's)",
    );
  });
});

describe("timeRunner", () => {
  const data = {};

  test("first step, warm-up, then `repeat` samples; the first two outputs are kept", async () => {
    const runner = countingRunner();
    const t = await timeRunner(runner, BENCH_CASES.softmax, data, { warmup: 2, repeat: 5, budgetMs: 60_000 });
    expect(runner.steps).toBe(1 + 2 + 5);
    if (t.status !== "ok") throw new Error(t.reason);
    expect(t.samplesMs).toHaveLength(5);
    expect(t.coldOnly).toBe(false);
    expect(t.outputs.map((o) => o[0])).toEqual([1, 2]);
    expect(t.minMs).toBeLessThanOrEqual(t.medianMs);
  });

  test("a spent budget still leaves one sample", async () => {
    const runner = countingRunner();
    const t = await timeRunner(runner, BENCH_CASES.softmax, data, { warmup: 0, repeat: 10, budgetMs: 0 });
    expect(runner.steps).toBe(2);
    expect(t.status === "ok" && t.samplesMs.length).toBe(1);
  });

  test("a slow warm first step is the only sample when coldOnlyAboveMs says so; a cold one is not", async () => {
    const settings = { warmup: 1, repeat: 3, budgetMs: 60_000, coldOnlyAboveMs: 10 };
    const compiling = countingRunner({ firstStepDelayMs: 30 });
    expect((await timeRunner(compiling, BENCH_CASES.softmax, data, settings)).status).toBe("ok");
    expect(compiling.steps).toBe(1 + 1 + 3);
    const runner = countingRunner({ firstStepDelayMs: 30, firstStepIsWarm: true });
    const t = await timeRunner(runner, BENCH_CASES.softmax, data, settings);
    expect(runner.steps).toBe(1);
    if (t.status !== "ok") throw new Error(t.reason);
    expect(t.coldOnly).toBe(true);
    expect(t.samplesMs).toEqual([t.firstStepMs]);
  });

  test("stats are read before the kernels are measured, what the kernel samples measured after, then the host I/O samples", async () => {
    const order: string[] = [];
    const runner: Runner = {
      name: "fake",
      init: async () => undefined,
      notes: () => [],
      prepare: async () => ({
        step: async () => Float32Array.of(1),
        dispose: () => undefined,
        stats: () => (order.push("stats"), { bytesIn: 8 }),
        kernelMs: async () => (order.push("kernels"), 3),
        afterKernelStats: () => (order.push("after"), { copyAfterKernelsMs: 0.5 }),
        hostIo: async () => (order.push("host I/O"), { ioBeyondMs: 1.2 }),
      }),
    };
    const t = await timeRunner(runner, BENCH_CASES.softmax, data, { warmup: 0, repeat: 1, budgetMs: 60_000 });
    if (t.status !== "ok") throw new Error(t.reason);
    expect(order).toEqual(["stats", "kernels", "after", "host I/O"]);
    expect(t.stats).toEqual({ bytesIn: 8, kernelMs: 3, copyAfterKernelsMs: 0.5, ioBeyondMs: 1.2 });
  });

  test("failures become rows: an unavailable target, a throwing prepare", async () => {
    const unavailable = new k.KilnError({ code: "target-unavailable", message: "target 'webgpu' is registered but cannot run on this machine" });
    expect(await timeRunner(countingRunner({ prepareError: unavailable }), BENCH_CASES.softmax, data, { warmup: 0, repeat: 1, budgetMs: 1 })).toMatchObject({
      status: "unavailable",
    });
    expect(
      await timeRunner(countingRunner({ prepareError: new Error("boom\nstack") }), BENCH_CASES.softmax, data, { warmup: 0, repeat: 1, budgetMs: 1 }),
    ).toEqual({
      status: "failed",
      reason: "prepare: boom",
    });
  });
});
