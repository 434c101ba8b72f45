// Trace and compile time of a GPT-2-small-sized training step (12 layers, d 768, 12 heads,
// context 256, vocabulary 50257, AdamW): issue 14's "traces and compiles in under 2 s". Runs
// the trace (k.traceFunction) and the one compile driver for a target (default wasm, what
// `--target cpu` picks without a GPU) without creating a runner, which would allocate the
// 124M parameters and their optimizer state. Prints the wall time of each stage and, with
// `--repeat N`, the median of N compiles in this process (the first pays V8's warm-up, as a
// user's first compile does: both are printed).
//   npx tsx --conditions=kiln-source bench/compile-time.ts [--target wasm] [--repeat 3] [--layers 12]

import { parseArgs } from "node:util";
import * as k from "kiln";
import { backendOf } from "../targets/backends.ts";
import { GPT2_SMALL, gptTrainStep } from "./cases/gpt.ts";
import { threadCpuMs } from "./thread-cpu.ts";

const { values } = parseArgs({ options: { target: { type: "string" }, repeat: { type: "string" }, layers: { type: "string" } } });
const target = values.target ?? "wasm";
const repeat = Number(values.repeat ?? 1);
const cfg = { ...GPT2_SMALL, layers: Number(values.layers ?? GPT2_SMALL.layers) };

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// CPU time (user + system, this process, and the main thread's own) beside wall time: on a loaded machine the wall time mostly measures waiting.
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const rounds: { trace: number; compile: number; cpu: number; main: number | undefined; stages: Map<string, number> }[] = [];
for (let r = 0; r < repeat; r++) {
  const { fn, specs } = gptTrainStep(cfg);
  const c0 = cpuMs();
  const m0 = threadCpuMs();
  const t0 = performance.now();
  const traced = k.traceFunction("gpt2_train_step", fn, specs);
  const t1 = performance.now();
  const compiled = backendOf(target).compile(traced.graph, {});
  const t2 = performance.now();
  const cpu = cpuMs() - c0;
  const m1 = threadCpuMs();
  const main = m0 === undefined || m1 === undefined ? undefined : m1 - m0;
  const stages = new Map<string, number>();
  for (const t of compiled.timings) stages.set(t.pass, (stages.get(t.pass) ?? 0) + t.ms);
  rounds.push({ trace: t1 - t0, compile: t2 - t1, cpu, main, stages });
  console.log(
    `round ${r + 1}: trace ${(t1 - t0).toFixed(0)} ms (${traced.graph.nodes.length} nodes), compile ${(t2 - t1).toFixed(0)} ms (${compiled.artifact.stats.kernels} kernels), total ${(t2 - t0).toFixed(0)} ms wall, ${cpu.toFixed(0)} ms CPU${main === undefined ? "" : ` (main thread ${main.toFixed(0)} ms)`}`,
  );
}
const last = rounds.at(-1)!;
console.log(`stages (last round): ${[...last.stages].map(([n, ms]) => `${n} ${ms.toFixed(0)}`).join(", ")}`);
if (repeat > 1) {
  console.log(
    `median of ${repeat}: trace ${median(rounds.map((r) => r.trace)).toFixed(0)} ms, compile ${median(rounds.map((r) => r.compile)).toFixed(0)} ms, total ${median(rounds.map((r) => r.trace + r.compile)).toFixed(0)} ms wall, ${median(rounds.map((r) => r.cpu)).toFixed(0)} ms CPU${rounds[0]!.main === undefined ? "" : ` (main thread ${median(rounds.map((r) => r.main ?? 0)).toFixed(0)} ms)`} (aim: < 2000 ms)`,
  );
}
