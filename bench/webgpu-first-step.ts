// The first WebGPU step of the MLP train step (examples/mlp.ts), for issue 15 item 4: compile
// time (with the runner stage: pipeline creation and warm-up dispatches), first and second
// step, as one JSON line. Run it with an empty shader cache to see the JIT cost:
//   MESA_SHADER_CACHE_DISABLE=true npx tsx bench/webgpu-first-step.ts
// A benchmark, never a test: times on a shared machine move with the load.

import * as k from "kiln";
import { trainStep } from "../examples/mlp.ts";

const started = performance.now();
const exe = await k.compile(trainStep, undefined, { target: "webgpu" });
const compiled = performance.now();
const x = Float32Array.from({ length: 128 * 784 }, (_, i) => (i % 7) / 7);
const y = Int32Array.from({ length: 128 }, (_, i) => i % 10);
await exe.run({ x, y });
const first = performance.now();
await exe.run({ x, y });
const second = performance.now();
const runner = exe.compileStats.stages.find((s) => s.name === "runner")?.ms ?? 0;
const ms = (v: number): number => Number(v.toFixed(1));
process.stdout.write(
  `${JSON.stringify({ compileMs: ms(compiled - started), runnerMs: ms(runner), kernels: exe.stats?.kernels, firstStepMs: ms(first - compiled), secondStepMs: ms(second - first) })}\n`,
);
await exe.close();
