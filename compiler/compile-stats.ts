// Compile time by stage: what `exe.compileStats` holds and `kiln compile|dump --time` prints.
// The driver's pass loop (compiler/pipeline.ts) already times every stage; this names the
// shape those times are reported in and formats them as a table. Wall times, for reading,
// never for asserting.

import type { PassTiming } from "./passes/pass.ts";

/** One stage of a compile and its wall time. */
export interface StageTime {
  readonly name: string;
  readonly ms: number;
}

/**
 * A compile's wall time by stage, in order: trace, each graph pass, fuse, lower, each kernel
 * pass, memory-plan, the backend's layout stage (webgpu: device-layout), render, and runner
 * (creating the runner: wasm module compile, WebGPU pipeline creation, js function creation).
 * `totalMs` is measured around all of them, so it is at least their sum.
 */
export interface CompileStats {
  readonly totalMs: number;
  readonly stages: readonly StageTime[];
}

/** The driver's timings as stages. */
export function stagesOf(timings: readonly PassTiming[]): StageTime[] {
  return timings.map((t) => ({ name: t.pass, ms: t.ms }));
}

/**
 * Compiles, then creates the runner, timing both: the driver's stages plus "runner". Every
 * target's executor builds this way, so the stage list has one shape everywhere.
 */
export async function compileTimed<C extends { readonly timings: readonly PassTiming[] }, R>(
  compile: () => C,
  createRunner: (compiled: C) => R | Promise<R>,
): Promise<{ readonly compiled: C; readonly runner: R; readonly compileStats: CompileStats }> {
  const started = performance.now();
  const compiled = compile();
  const runnerStarted = performance.now();
  const runner = await createRunner(compiled);
  const done = performance.now();
  return { compiled, runner, compileStats: { totalMs: done - started, stages: [...stagesOf(compiled.timings), { name: "runner", ms: done - runnerStarted }] } };
}

/** The table `--time` prints: stage, ms, % of total, then the total. */
export function formatCompileStats(stats: CompileStats): string {
  const width = Math.max(5, ...stats.stages.map((s) => s.name.length));
  const pct = (ms: number): string => (stats.totalMs > 0 ? ((100 * ms) / stats.totalMs).toFixed(1) : "0.0").padStart(6);
  const row = (name: string, ms: number): string => `${name.padEnd(width)}  ${ms.toFixed(2).padStart(10)}  ${pct(ms)}%\n`;
  return `${"stage".padEnd(width)}  ${"ms".padStart(10)}  ${"%".padStart(7)}\n${stats.stages.map((s) => row(s.name, s.ms)).join("")}${row("total", stats.totalMs)}`;
}
