// exe.compileStats: the stages of a compile, by name and in order, as k.compile runs them on
// each target. Expected stage lists are written by hand from the driver's documented order
// (trace, graph passes, fuse, lower, kernel passes, memory-plan, layout, render, runner).
// Wall times are only checked to be finite, non-negative and to fit inside the total.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { CompileStats } from "../../compiler/compile-stats.ts";
import { formatCompileStats } from "../../compiler/compile-stats.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const gpu = await webGpuTestEnv();

const mlp = k.program((x: k.Tensor, w: k.Tensor) => k.relu(k.matmul(x, w)), [k.f32([4, 3]), k.f32([3, 5])]);

const expected: Readonly<Record<string, readonly string[]>> = {
  js: ["trace", "simplify", "fuse", "lower", "tile", "memory-plan", "render", "runner"],
  wasm: ["trace", "simplify", "fuse", "lower", "block-contraction", "memory-plan", "render", "runner"],
  webgpu: ["trace", "simplify", "fuse", "lower", "matmul-form", "row-kernels", "vector-form", "tune", "memory-plan", "device-layout", "render", "runner"],
  // The interpreter builds nothing: its factory is the runner.
  reference: ["trace", "runner"],
};

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
});

function checkTimes(stats: CompileStats): void {
  expect(Number.isFinite(stats.totalMs)).toBe(true);
  expect(stats.totalMs).toBeGreaterThanOrEqual(0);
  for (const s of stats.stages) {
    expect(Number.isFinite(s.ms), s.name).toBe(true);
    expect(s.ms, s.name).toBeGreaterThanOrEqual(0);
  }
  // The stages are disjoint intervals inside the one the total measures.
  const sum = stats.stages.reduce((a, s) => a + s.ms, 0);
  expect(stats.totalMs + 1e-6).toBeGreaterThanOrEqual(sum);
}

const targets = ["js", "wasm", "reference", ...(gpu.available ? ["webgpu"] : [])];

describe.each(targets)("compileStats on %s", (target) => {
  test("names every stage in order; times are finite, ≥ 0 and within the total", async () => {
    const exe = await k.compile(mlp, undefined, { target });
    const close = (exe as unknown as { close?: () => Promise<void> }).close;
    if (close) closers.push(close);
    expect(exe.compileStats.stages.map((s) => s.name)).toEqual(expected[target]);
    checkTimes(exe.compileStats);
  });
});

test("a function (not a k.program) reports the same stages; the table lists each with its share", async () => {
  const exe = await k.compile((x: k.Tensor) => k.mul(x, x), [k.f32([8])], { target: "js" });
  expect(exe.compileStats.stages.map((s) => s.name)).toEqual(expected.js);
  const table = formatCompileStats({
    totalMs: 10,
    stages: [
      { name: "trace", ms: 2.5 },
      { name: "render", ms: 5 },
    ],
  });
  expect(table.split("\n")).toEqual([
    "stage           ms        %",
    "trace         2.50    25.0%",
    "render        5.00    50.0%",
    "total        10.00   100.0%",
    "",
  ]);
});
