// The first WebGPU step of the MLP train step (examples/mlp.ts), for issue 15 item 4: compile
// time (with the runner stage: pipeline creation and warm-up dispatches), first and second
// step, as one JSON line. Run it with an empty shader cache to see the JIT cost:
//   MESA_SHADER_CACHE_DISABLE=true npx tsx bench/webgpu-first-step.ts
// A benchmark, never a test: times on a shared machine move with the load; `cpuMs` (the
// process's CPU time from start to the first loss, lavapipe's compile thread included) moves less.

import * as k from "kiln";
import { trainStep } from "../examples/mlp.ts";

const started = performance.now();
const cpuAtStart = process.cpuUsage();
const exe = await k.compile(trainStep, undefined, { target: "webgpu" });
const compiled = performance.now();
const x = Float32Array.from({ length: 128 * 784 }, (_, i) => (i % 7) / 7);
const y = Int32Array.from({ length: 128 }, (_, i) => i % 10);
await exe.run({ x, y });
const first = performance.now();
const cpu = process.cpuUsage(cpuAtStart);
await exe.run({ x, y });
const second = performance.now();
// Steady state: after 6 more steps (a CPU adapter's tuned kernels compile in the second run:
// docs/webgpu.md, "Tiered start"), the median of 9 more and their mean CPU time (lavapipe's threads included).
const tiering = performance.now();
for (let i = 0; i < 6; i++) await exe.run({ x, y });
const tieredMs = performance.now() - tiering;
const later: number[] = [];
const cpuBefore = process.cpuUsage();
for (let i = 0; i < 9; i++) {
  const t = performance.now();
  await exe.run({ x, y });
  later.push(performance.now() - t);
}
later.sort((a, b) => a - b);
const laterCpu = process.cpuUsage(cpuBefore);
const runner = exe.compileStats.stages.find((s) => s.name === "runner")?.ms ?? 0;
const ms = (v: number): number => Number(v.toFixed(1));
process.stdout.write(
  `${JSON.stringify({ compileMs: ms(compiled - started), runnerMs: ms(runner), kernels: exe.stats?.kernels, firstStepMs: ms(first - compiled), toFirstLossMs: ms(first - started), cpuMs: ms((cpu.user + cpu.system) / 1000), secondStepMs: ms(second - first), next6StepsMs: ms(tieredMs), medianStepMs: ms(later[4]!), stepCpuMs: ms((laterCpu.user + laterCpu.system) / 1000 / 9) })}\n`,
);
await exe.close();
