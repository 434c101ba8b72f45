// The NaN/Inf finder and skipNonFinite, on every target here (reference, js, wasm, webgpu on
// lavapipe). checkNumerics: a run producing a non-finite value fails with a KilnError naming
// the first node in program order that produced one (op, the test's own source line, the
// kernel, the position), or the input that held it; a -Inf attention mask is not a fault; a
// computed gather index out of range is named too.
// skipNonFinite: a batch whose loss is NaN leaves every state value (weights, moments, the
// step count) exactly as it was, so training continues as if the batch had never come.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { lcg } from "../util/lcg.ts";

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = await webGpuTestEnv();
const targets = ["reference", "js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

const uncaptured: string[] = [];
beforeAll(() => {
  gpu.context?.device.addEventListener("uncapturederror", (e) => uncaptured.push((e as GPUUncapturedErrorEvent).error.message));
});
afterAll(() => expect(uncaptured).toEqual([]));

/** The line of the statement that calls this, in this file (for comparing with error locations). */
function lineHere(): number {
  const frame = new Error().stack!.split("\n")[2]!;
  return Number(/:(\d+):\d+\)?$/.exec(frame)![1]);
}

async function rejection(p: Promise<unknown>): Promise<k.KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(k.KilnError);
    return e as k.KilnError;
  }
  throw new Error("the run did not fail");
}

describe.each(targets)("checkNumerics on %s", (target) => {
  test("names the first node that produced NaN: op, source line, kernel, position", async () => {
    let sqrtLine = 0;
    const f = (x: k.Tensor) => {
      const shifted = x.sub(1).mul(2);
      sqrtLine = lineHere() + 1;
      const root = shifted.sqrt();
      // NaN flows on through exp, the sum and the output: only sqrt is named.
      return root.exp().add(x).sum();
    };
    const exe = await k.compile(f, [k.f32([6])], { target, checkNumerics: true });
    // Finite inputs with x ≥ 1: the run succeeds and the value is right.
    const ok = (await exe.run([[1, 1.5, 2, 3, 1, 5]])) as HostOutput;
    const want = [1, 1.5, 2, 3, 1, 5].reduce((a, v) => a + Math.exp(Math.sqrt(2 * (v - 1))) + v, 0);
    expect(ok.data[0]).toBeCloseTo(want, 3);
    // x[4] = 0.5: sqrt(-1) is NaN at position 4.
    const e = await rejection(exe.run([[1, 1.5, 2, 3, 0.5, 5]]));
    expect(e.message).toMatch(/^checkNumerics: sqrt produced NaN at position 4 of f32\[6\]/);
    expect(e.diag.loc?.file).toMatch(/numerics\.test\.ts$/);
    expect(e.diag.loc?.line).toBe(sqrtLine);
    if (target !== "reference") expect(e.message).toMatch(/the first non-finite value in program order \(kernel k\d+_\S*sqrt/);
    expect(e.diag.detail).toMatch(/node: +%\d+ = sqrt %\d+ : f32\[6\]/);
    expect(e.diag.detail).toMatch(/every input was finite/);
  });

  test("an input holding NaN is named with its position; the run is not started", async () => {
    const exe = await k.compile(
      ({ x, w }: { x: k.Tensor; w: k.Tensor }) => x.mul(w).sum(),
      { x: k.f32([4, 5]), w: k.f32([4, 5]) },
      { target, checkNumerics: true },
    );
    const x = new Float32Array(20).fill(1);
    x[17] = Number.NaN;
    const e = await rejection(exe.run({ x, w: new Float32Array(20).fill(2) }));
    expect(e.message).toMatch(/^checkNumerics: input 'x' holds NaN at position 17 /);
  });

  test("a computed gather index out of range is named, at the line that used it", async () => {
    let gatherLine = 0;
    const f = ({ x, i }: { x: k.Tensor; i: k.Tensor }) => {
      const shifted = i.add(3);
      gatherLine = lineHere() + 1;
      return x.gather(0, shifted).sum();
    };
    const exe = await k.compile(f, { x: k.f32([5]), i: k.i32([4]) }, { target, checkNumerics: true });
    const ok = (await exe.run({ x: [10, 20, 30, 40, 50], i: [0, 1, 1, 0] })) as HostOutput;
    expect(ok.data[0]).toBe(40 + 50 + 50 + 40);
    // i + 3 = [3, 4, 5, 3]: 5 is past the end of x.
    const e = await rejection(exe.run({ x: [10, 20, 30, 40, 50], i: [0, 1, 2, 0] }));
    // The float64 interpreter refuses the gather itself, always.
    if (target === "reference") return expect(e.message).toMatch(/gather index 5 out of range \[0, 5\)/);
    expect(e.message).toMatch(/^checkNumerics: gather takes a computed position along dim 0 in \[0, 5\), but add produced 5 at position 2 of i32\[4\]/);
    expect(e.diag.loc?.line).toBe(gatherLine);
  });

  test("an overflow to +Inf is named (exp of 1000)", async () => {
    const exe = await k.compile((x: k.Tensor) => x.exp().mul(x).sum(), [k.f32([3])], { target, checkNumerics: true });
    const e = await rejection(exe.run([[1, 1000, 2]]));
    expect(e.message).toMatch(/^checkNumerics: exp2 produced \+Inf at position 1 of f32\[3\]/);
  });

  test("a -Inf attention mask is not a fault; a fully masked row is", async () => {
    // Causal mask as a constant -Inf above the diagonal, then softmax: finite.
    const f = ({ s, m }: { s: k.Tensor; m: k.Tensor }) => s.add(m).softmax(-1);
    const exe = await k.compile(f, { s: k.f32([3, 3]), m: k.f32([3, 3]) }, { target, checkNumerics: true });
    const mask = [0, -Infinity, -Infinity, 0, 0, -Infinity, 0, 0, 0];
    const out = (await exe.run({ s: [1, 2, 3, 4, 5, 6, 7, 8, 9], m: mask })) as HostOutput;
    expect(out.data[0]).toBeCloseTo(1, 6);
    expect(out.data[3]).toBeCloseTo(1 / (1 + Math.E), 5);
    // Row 0 fully masked: its max is -Inf (then (-Inf) - (-Inf) is NaN); the max is named.
    const e = await rejection(exe.run({ s: [1, 2, 3, 4, 5, 6, 7, 8, 9], m: [-Infinity, -Infinity, -Infinity, 0, 0, 0, 0, 0, 0] }));
    expect(e.message).toMatch(/^checkNumerics: reduce_max produced -Inf at position 0 of f32\[3,1\]/);
    expect(e.diag.detail).toMatch(/inputs holding ±Inf \(allowed to flow on\): m/);
  });

  test("in a training step: names the user's log line; the state is left as it was", async () => {
    k.manualSeed(1);
    const model = k.nn.linear(2, 1);
    let logLine = 0;
    const loss = (pred: k.Tensor, y: k.Tensor) => {
      const p = pred.reshape([4]);
      logLine = lineHere() + 1;
      const logP = p.log();
      return p.sub(y).pow(2).mean().add(logP.mean().mul(0.001));
    };
    const exe = await k.compile(k.trainStep(model, loss, k.optim.adam({ lr: 0.01 })), { x: k.f32([4, 2]), y: k.f32([4]) }, { target, checkNumerics: true });
    // Weight 0.5, bias 0.5 give pred = 0.5 (x0 + x1) + 0.5 > 0 for these x.
    exe.loadState({ weight: [0.5, 0.5], bias: [0.5] });
    const good = { x: [1, 1, 2, 0, 0, 2, 1, 0], y: [1, 2, 3, 4] };
    await exe.run(good);
    const before = await exe.fetchState();
    // x = -10 makes pred negative: log gives NaN.
    const e = await rejection(exe.run({ x: [-10, -10, 2, 0, 0, 2, 1, 0], y: [1, 2, 3, 4] }));
    expect(e.message).toMatch(/^checkNumerics: log2 produced NaN at position 0 of f32\[4\]/);
    expect(e.diag.loc?.line).toBe(logLine);
    expect(exe.skippedSteps).toBe(1);
    const after = await exe.fetchState();
    for (const [name, t] of Object.entries(before)) expect(Array.from(after[name]!.data), name).toEqual(Array.from(t.data));
    expect(Array.from(after["opt.step"]!.data)).toEqual([1]);
  });
});

test("KILN_DEBUG=nan turns the check on", async () => {
  const saved = process.env["KILN_DEBUG"];
  process.env["KILN_DEBUG"] = "nan";
  try {
    const exe = await k.compile((x: k.Tensor) => x.log().sum(), [k.f32([2])], { target: "js" });
    await expect(exe.run([[1, -1]])).rejects.toThrow(/checkNumerics: log2 produced NaN at position 1/);
  } finally {
    if (saved === undefined) delete process.env["KILN_DEBUG"];
    else process.env["KILN_DEBUG"] = saved;
  }
  // Off again: the same function runs and returns NaN, as compiled code does.
  const exe = await k.compile((x: k.Tensor) => x.log().sum(), [k.f32([2])], { target: "js" });
  expect(Number.isNaN(((await exe.run([[1, -1]])) as HostOutput).data[0])).toBe(true);
});

const BATCHES = 6;
const BAD = 2;
function batch(i: number, poisoned: boolean): { x: Float32Array; y: Float32Array } {
  const r = lcg(40 + i);
  const x = Float32Array.from({ length: 8 * 3 }, () => r() * 2 - 1);
  const y = Float32Array.from({ length: 8 }, () => r() * 2 - 1);
  if (poisoned) x[5] = Number.NaN;
  return { x, y };
}

async function trainer(target: string): Promise<k.Executable<{ loss: HostOutput }>> {
  k.manualSeed(7);
  const model = k.nn.sequential(k.nn.linear(3, 4), k.nn.tanh(), k.nn.linear(4, 1));
  // With clipGradNorm the guarded WebGPU build copies the step count back within one packed
  // GPU buffer, which WebGPU forbids as a single copy (the runner bounces it through a scratch buffer).
  const step = k.trainStep(model, (pred, y) => k.nn.functional.mseLoss(pred.reshape([8]), y), k.optim.adamW({ lr: 0.05 }), { clipGradNorm: 1 });
  return (await k.compile(step, { x: k.f32([8, 3]), y: k.f32([8]) }, { target })) as unknown as k.Executable<{ loss: HostOutput }>;
}

describe.each(targets.filter((t) => t !== "reference"))("skipNonFinite on %s", (target) => {
  test("a NaN batch is skipped: every state value stays, later steps equal a run that never saw it", async () => {
    const clean = await trainer(target);
    const want: number[] = [];
    for (let i = 0; i < BATCHES; i++) if (i !== BAD) want.push((await clean.run(batch(i, false), { skipNonFinite: true })).loss.data[0]!);

    const exe = await trainer(target);
    const got: number[] = [];
    let badLoss = 0;
    let before: Awaited<ReturnType<typeof exe.fetchState>> = {};
    for (let i = 0; i < BATCHES; i++) {
      if (i === BAD) before = await exe.fetchState();
      const loss = (await exe.run(batch(i, i === BAD), { skipNonFinite: true })).loss.data[0]!;
      if (i === BAD) {
        badLoss = loss;
        const after = await exe.fetchState();
        for (const [name, t] of Object.entries(before)) expect(Array.from(after[name]!.data), name).toEqual(Array.from(t.data));
      } else got.push(loss);
    }
    expect(Number.isNaN(badLoss)).toBe(true);
    expect(exe.skippedSteps).toBe(1);
    expect(got).toEqual(want);
    expect(Array.from((await exe.fetchState())["opt.step"]!.data)).toEqual([BATCHES - 1]);
    expect(clean.skippedSteps).toBe(0);
  });

  test("mixing guarded and plain runs moves the device state between the two builds", async () => {
    const clean = await trainer(target);
    const want: number[] = [];
    for (let i = 0; i < BATCHES; i++) if (i !== BAD) want.push((await clean.run(batch(i, false))).loss.data[0]!);
    const exe = await trainer(target);
    const got: number[] = [];
    for (let i = 0; i < BATCHES; i++) {
      const loss = (await exe.run(batch(i, i === BAD), { skipNonFinite: i === BAD || i === BAD + 2 })).loss.data[0]!;
      if (i !== BAD) got.push(loss);
    }
    expect(exe.skippedSteps).toBe(1);
    // The guarded build may fuse differently: equal to float32 rounding.
    got.forEach((l, i) => expect(l).toBeCloseTo(want[i]!, 5));
    const state = await exe.fetchState();
    expect(Array.from(state["opt.step"]!.data)).toEqual([BATCHES - 1]);
    for (const t of Object.values(state)) expect(Array.from(t.data).every(Number.isFinite)).toBe(true);
  });

  test("without skipNonFinite the same batch poisons the weights (what the option prevents)", async () => {
    const exe = await trainer(target);
    for (let i = 0; i <= BAD; i++) await exe.run(batch(i, i === BAD));
    const state = await exe.fetchState();
    expect(Array.from(state["0.weight"]!.data).some(Number.isNaN)).toBe(true);
  });
});
