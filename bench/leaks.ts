// `npm run bench:leaks -- [--steps N] [--targets js,wasm,webgpu]`: runs a small training step
// N times (default 10,000) per target — plain steps, with four skipNonFinite steps (one on a
// NaN batch) and a state read every 50 — and prints what the process holds before and after:
// GPU buffers alive (at the device and by the runners' count), wasm memories and their bytes,
// and the JS heap after a full GC. Constant buffers and memory, and a heap that does not grow
// with N, mean no per-step leak. Not a test: test/targets/leaks.test.ts asserts the same on 300 steps.

import { parseArgs } from "node:util";
import { acquireWebGpu } from "../runtime/webgpu/device.ts";
import { installLeakProbe, leakWorkload, type Resources } from "./leak-probe.ts";

const { values } = parseArgs({ options: { steps: { type: "string", default: "10000" }, targets: { type: "string", default: "js,wasm,webgpu" } } });
const steps = Number(values.steps);
if (!Number.isInteger(steps) || steps < 50) throw new Error(`--steps must be an integer ≥ 50, got ${values.steps}`);
const targets = values.targets.split(",");

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = targets.includes("webgpu") ? await acquireWebGpu() : undefined;
const probe = installLeakProbe(gpu?.device);

const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
const line = (r: Resources): string =>
  `gpu buffers ${r.gpuLive} (runners ${r.runnerGpuLive}), wasm memories ${r.memories} = ${mb(r.wasmBytes)}, heap ${mb(r.heapBytes)}`;

for (const target of targets) {
  if (target === "webgpu" && !gpu) {
    process.stdout.write("webgpu: no adapter here, skipped\n");
    continue;
  }
  const { exe, step: run } = await leakWorkload(target);
  for (let i = 0; i < 200; i++) await run(i); // warm-up: both builds compiled, JIT settled
  const before = await probe.sample();
  const t0 = performance.now();
  const mid = Math.floor(steps / 2);
  let half: Resources | undefined;
  for (let i = 0; i < steps; i++) {
    await run(i);
    if (i === mid) half = await probe.sample();
  }
  const ms = (performance.now() - t0) / steps;
  const after = await probe.sample();
  // Steady state: the second half (the first still settles: JIT, inline caches, lazy maps).
  const growth = ((after.heapBytes - half!.heapBytes) / (steps - mid - 1)) * 1000;
  process.stdout.write(
    `${target}: ${steps} steps (${ms.toFixed(2)} ms/step), ${exe.skippedSteps} skipped\n` +
      `  before: ${line(before)}\n  half:   ${line(half!)}\n  after:  ${line(after)}\n` +
      `  heap growth over the second half: ${(growth / 1024).toFixed(1)} KiB per 1000 steps; buffers ${after.gpuLive - before.gpuLive >= 0 ? "+" : ""}${after.gpuLive - before.gpuLive}, wasm ${after.wasmBytes - before.wasmBytes} bytes\n`,
  );
}
probe.uninstall();
process.exit(0);
