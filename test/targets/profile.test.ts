// exe.profile on every target that builds kernels: one record per artifact kernel with one call
// per profiled step, FLOP and byte counts of a small matmul with a bias and relu checked against
// counts derived by hand, the state among the inputs a kernel touches, and the table. Times are
// only checked to be finite and non-negative (and some kernel time positive): never thresholds.

import { afterEach, describe, expect, test, vi } from "vitest";
import * as k from "kiln";
import { formatProfile, type Profile } from "../../targets/profile.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const gpu = await webGpuTestEnv();
const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

afterEach(() => vi.restoreAllMocks());

// relu(x @ w + b): x [M,K], w [K,N], b [N]: one kernel on every target.
const M = 8;
const K = 16;
const N = 4;
const dense = k.program((x: k.Tensor, w: k.Tensor, b: k.Tensor) => k.relu(k.add(k.matmul(x, w), b)), [k.f32([M, K]), k.f32([K, N]), k.f32([N])]);
const ramp = (n: number, scale: number): Float32Array => Float32Array.from({ length: n }, (_, i) => ((i % 13) - 6) * scale);

// A tiny MLP trained with SGD: several kernels, parameters in the state.
const net = k.nn.sequential(k.nn.linear(6, 5), k.nn.relu(), k.nn.linear(5, 3));
const step = k.program(
  k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y), k.optim.sgd({ lr: 0.1 })),
  { x: k.f32([4, 6]), y: k.i32([4]) },
);
const batch = { x: ramp(24, 0.1), y: Int32Array.of(0, 1, 2, 1) };

function checkTimes(p: Profile): void {
  for (const kp of p.kernels) {
    expect(Number.isFinite(kp.totalMs), kp.name).toBe(true);
    expect(kp.totalMs, kp.name).toBeGreaterThanOrEqual(0);
  }
  expect(p.kernelMs).toBeGreaterThan(0);
  expect(p.stepMs).toBeGreaterThan(0);
  for (const v of [p.host.inputMs, p.host.readbackMs, p.host.otherMs]) expect(v).toBeGreaterThanOrEqual(0);
}

describe.each(targets)("exe.profile on %s", (target) => {
  test("a matmul + bias + relu: 2·M·K·N + 2·M·N operations, its buffers' bytes, one call per step", async () => {
    const exe = await k.compile(dense, undefined, { target });
    const p = await exe.profile([ramp(M * K, 0.1), ramp(K * N, 0.2), ramp(N, 0.3)], { steps: 3, peaks: false });
    expect(p.target).toBe(target);
    expect(p.steps).toBe(3);
    expect(p.kernels.map((kp) => kp.name)).toEqual(exe.artifact!.kernels.map((kk) => kk.name));
    expect(p.kernels.map((kp) => kp.calls)).toEqual(p.kernels.map(() => 3));
    // M·K·N multiplies and as many adds, then the bias add and the relu's max per output.
    expect(p.kernels.reduce((a, kp) => a + kp.flops, 0)).toBe(2 * M * K * N + 2 * M * N);
    // Every kernel reads what it binds once: x, w, b in, the output out (4-byte f32 everywhere).
    expect(p.kernels.reduce((a, kp) => a + kp.bytesRead, 0)).toBe(4 * (M * K + K * N + N));
    expect(p.kernels.reduce((a, kp) => a + kp.bytesWritten, 0)).toBe(4 * M * N);
    checkTimes(p);
    expect(p.peaks).toBeUndefined();
  });

  test("a training step: one record per kernel, the parameters each touches, peaks measured, a table", async () => {
    const exe = await k.compile(step, undefined, { target });
    const p = await exe.profile(batch, { steps: 2 });
    expect(p.kernels.length).toBe(exe.artifact!.kernels.length);
    expect(p.kernels.length).toBeGreaterThan(1);
    for (const kp of p.kernels) expect(kp.calls, kp.name).toBe(2);
    checkTimes(p);
    if (target === "wasm") {
      expect(p.threads).toBeGreaterThanOrEqual(1);
      for (const kp of p.kernels) if (kp.totalMs > 0) expect(kp.threadUse, kp.name).toBeGreaterThanOrEqual(0);
      for (const kp of p.kernels) expect(kp.threadUse ?? 0, kp.name).toBeLessThanOrEqual(1);
    } else expect(p.threads).toBeUndefined();
    // Parameters are state; the batch is not.
    const params = new Set(p.kernels.flatMap((kp) => kp.params));
    for (const name of ["0.weight", "0.bias", "2.weight", "2.bias"]) expect(params.has(name), name).toBe(true);
    expect(params.has("x")).toBe(false);
    expect(p.kernels.some((kp) => kp.inputs.includes("x"))).toBe(true);
    expect(p.kernels.some((kp) => kp.locs.some((l) => l.file.endsWith("profile.test.ts")))).toBe(true);
    expect(p.peaks?.gflops).toBeGreaterThan(0);
    expect(p.peaks?.gbps).toBeGreaterThan(0);
    const table = formatProfile(p, { sort: "launch" });
    const rows = table.split("\n");
    const header = rows.findIndex((r) => /^kernel {2,}/.test(r));
    expect(rows[header]).toMatch(/^kernel +calls +total ms +% step +GFLOP\/s +GB\/s +source$/);
    // Launch order: one row per kernel, named (maybe cut to the column) and with its call count.
    p.kernels.forEach((kp, i) => {
      const cells = rows[header + 1 + i]!.trim().split(/\s{2,}/);
      const [head, tail = ""] = cells[0]!.split("…");
      expect(kp.name.startsWith(head!) && kp.name.endsWith(tail)).toBe(true);
      expect(cells[1]).toBe("2");
    });
    // The state advanced: two profiled steps and one warm-up step updated the weights.
    const before = (await k.compile(step, undefined, { target: "reference" })).state()["0.weight"]!.data;
    const after = (await exe.fetchState())["0.weight"]!.data;
    expect([...after]).not.toEqual([...before]);
  });
});

test("exe.profile refuses a bad step count and an unknown option, and the reference interpreter", async () => {
  const exe = await k.compile(dense, undefined, { target: "js" });
  const inputs = [ramp(M * K, 0.1), ramp(K * N, 0.2), ramp(N, 0.3)];
  await expect(exe.profile(inputs, { steps: 0 })).rejects.toThrow(/steps must be an integer >= 1, got 0/);
  await expect(exe.profile(inputs, { bogus: 1 } as never)).rejects.toThrow(/bogus/);
  const ref = await k.compile(dense, undefined, { target: "reference" });
  await expect(ref.profile(inputs)).rejects.toThrow(/target 'reference' has no kernels to profile/);
});
