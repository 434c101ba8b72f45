// Optimizer arithmetic at f32 on every target against the same steps in float64: five steps of
// Adam, AdamW and SGD with momentum on a probe model whose gradient is the input, run on the
// float64 reference interpreter and on js, wasm and webgpu. The distance of a trajectory is
// the largest, over steps, of ‖p_target − p_float64‖ / ‖p_float64 − p_0‖ (error relative to how
// far the parameters moved). WebGPU computes everything on the device in f32, with its own
// exp; it must stay within 2× of the CPU targets' distance. The step-dependent bias corrections
// (1 − βᵗ) are where it used to lose: as 1 − exp(t·ln β) in f32, 5e-5 relative at t = 1.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

/** loss = Σ w·x: the gradient with respect to w is the input x. */
class Probe extends k.nn.Module {
  constructor(readonly w: k.nn.Parameter) {
    super();
  }
  forward(x: k.Tensor): k.Tensor {
    return this.w.tensor().mul(x);
  }
}

const N = 512;
const STEPS = 5;

/** Deterministic values in [-1, 1) times `scale`, exact in f32. */
function values(n: number, seed: number, scale: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return Math.fround((2 * (s >>> 8)) / 2 ** 24 - 1) * scale;
  });
}
const W0 = values(N, 1, 1);
// Gradients of several magnitudes, so v spans orders of magnitude.
const GRADS = Array.from({ length: STEPS }, (_, t) => values(N, 100 + t, [1, 1e-2, 0.5, 1e-3, 2][t]!));

const gpu = await webGpuTestEnv();
const targets = ["reference", "js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => void (await Promise.all(closers.map((c) => c()))));

async function trajectory(optimizer: k.Optimizer, target: string): Promise<number[][]> {
  const model = new Probe(new k.nn.Parameter("w", [N], W0));
  const exe = await k.compile(
    k.trainStep(model, (out) => out.sum(), optimizer),
    [k.f32([N])],
    { target },
  );
  const exeWithClose = exe as { close?: () => Promise<void> };
  if (exeWithClose.close) closers.push(() => exeWithClose.close!());
  const params: number[][] = [];
  for (const g of GRADS) {
    await exe.run([g]);
    params.push(Array.from((await exe.fetchState())["w"]!.data));
  }
  return params;
}

const norm = (xs: readonly number[]): number => Math.sqrt(xs.reduce((a, x) => a + x * x, 0));
function distance(got: readonly number[][], want: readonly number[][]): number {
  return Math.max(...want.map((w, t) => norm(w.map((x, i) => got[t]![i]! - x)) / norm(w.map((x, i) => x - W0[i]!))));
}

const optimizers: readonly [string, () => k.Optimizer][] = [
  ["adam", () => k.optim.adam({ lr: 1e-3 })],
  ["adamW", () => k.optim.adamW({ lr: 1e-3, weightDecay: 0.1 })],
  ["adam, betas (0.8, 0.99), amsgrad", () => k.optim.adam({ lr: 1e-2, betas: [0.8, 0.99], amsgrad: true })],
  ["sgd, momentum 0.9, dampening 0.1", () => k.optim.sgd({ lr: 1e-2, momentum: 0.9, dampening: 0.1 })],
];

describe.each(optimizers)("%s: five f32 steps against float64", (_name, make) => {
  test("every target's trajectory; webgpu within 2x of the CPU targets", async () => {
    const want = await trajectory(make(), "reference");
    const dist: Record<string, number> = {};
    for (const target of targets.slice(1)) dist[target] = distance(await trajectory(make(), target), want);
    if (process.env["KILN_REPORT"]) console.log(_name, JSON.stringify(dist));
    const cpu = Math.max(dist["js"]!, dist["wasm"]!);
    // f32 parameters moved by ~1e-3 carry ~1e-5 of rounding: far above that is a formula losing precision.
    expect(cpu).toBeLessThan(1e-4);
    if (dist["webgpu"] !== undefined) expect(dist["webgpu"]).toBeLessThanOrEqual(2 * cpu);
  }, 60_000);
});
