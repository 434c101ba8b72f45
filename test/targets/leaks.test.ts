// No leaks per step: a small training step runs a few hundred times on js, wasm and webgpu
// (plain runs, skipNonFinite runs with a NaN batch among them, state reads) and the resources
// it holds stay constant — GPU buffers (counted at the device, independently of the runner,
// and by the runner's own counter), wasm memories (every WebAssembly.Memory created is
// recorded, and none may be created or grow during the steps), and the JS heap after a full
// GC within a generous bound (bench/leak-probe.ts counts; bench/leaks.ts runs 10,000 steps
// and prints the same numbers).

import { afterAll, describe, expect, test } from "vitest";
import { installLeakProbe, LEAK_ROUND, leakWorkload } from "../../bench/leak-probe.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = await webGpuTestEnv();
const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];
const probe = installLeakProbe(gpu.context?.device);
afterAll(() => probe.uninstall());

const STEPS = 300;

describe.each(targets)("no leaks per step on %s", (target) => {
  test(`${STEPS} training steps hold constant GPU buffers, wasm memory and JS heap`, async () => {
    const { exe, step } = await leakWorkload(target);
    // One round: plain steps, guarded steps (one skipped), a state read.
    const round = async (): Promise<void> => {
      for (let i = 0; i < LEAK_ROUND; i++) await step(i);
    };
    // Warm-up: both builds compiled, staging buffers sized, JIT settled.
    for (let i = 0; i < 4; i++) await round();
    const before = await probe.sample();
    for (let i = 0; i < STEPS / LEAK_ROUND; i++) await round();
    const after = await probe.sample();

    expect(after.memories).toBe(before.memories);
    expect(after.wasmBytes).toBe(before.wasmBytes);
    expect(after.gpuLive).toBe(before.gpuLive);
    expect(after.runnerGpuLive).toBe(before.runnerGpuLive);
    if (target === "wasm") expect(before.memories).toBeGreaterThan(0);
    if (target === "webgpu") expect(before.runnerGpuLive).toBeGreaterThan(0);
    // A leak of a per-step copy of the batch (512 bytes) would add 150 KB here; noise is smaller.
    expect(after.heapBytes - before.heapBytes).toBeLessThan(1.5e6);
    expect(exe.skippedSteps).toBe(4 + STEPS / LEAK_ROUND);
  });
});
