// exe.run's host I/O, counted rather than timed: outputs land in the caller's arrays (`out`)
// or the executable's own (`out: "reuse"`) with no allocation; each input is copied in once;
// training state stays in wasm memory between steps (only the batch is copied in); outputs
// kept on the device (`keep`) feed a later run of the same or another executable without a
// host copy, and a stale, released or foreign k.DeviceValue is a KilnError. Expected values
// are computed here in plain JavaScript (float64, compared with a tolerance) or on the
// reference interpreter.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostOutput } from "../../dsl/host-data.ts";
import { rejectedKilnError } from "../util/kiln-error.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

process.env["XDG_RUNTIME_DIR"] ??= "/tmp/xdg-runtime";
const gpu = await webGpuTestEnv();

const N = 1000;
const xs = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 3);
const ys = Float32Array.from({ length: N }, (_, i) => Math.cos(i * 0.7));
/** relu(x·2 + 1)·y, in float64. */
const chain = (x: ArrayLike<number>, y: ArrayLike<number>): number[] => Array.from(x, (v, i) => Math.max(0, v * 2 + 1) * y[i]!);

function expectClose(actual: ArrayLike<number>, expected: readonly number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(expected[i]!));
}

const chainFn = (x: k.Tensor, y: k.Tensor) => x.mul(2).add(1).relu().mul(y);
const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];

describe.each(targets)("exe.run outputs on %s", (target) => {
  test("`out` is filled in place, run after run, and nothing is allocated for it", async () => {
    const exe = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target });
    const out = new Float32Array(N);
    const first = (await exe.run([xs, ys], { out })) as HostOutput;
    expect(first.data).toBe(out);
    expectClose(out, chain(xs, ys));
    const x2 = xs.map((v) => -v);
    const second = (await exe.run([x2, ys], { out })) as HostOutput;
    expect(second.data).toBe(out);
    expectClose(out, chain(x2, ys));
    expect(exe.ioStats).toEqual({ bytesIn: 2 * 4 * N, bytesOut: 4 * N, bytesAllocated: 0, bytesOnDevice: 0 });
    const fresh = (await exe.run([xs, ys])) as HostOutput;
    expect(fresh.data).not.toBe(out);
    expect(exe.ioStats?.bytesAllocated).toBe(4 * N);
  });

  test('out: "reuse" refills the arrays of the first such run', async () => {
    const exe = await k.compile((x: k.Tensor, y: k.Tensor) => ({ a: chainFn(x, y), b: x.add(y) }), [k.f32([N]), k.f32([N])], { target });
    const r1 = (await exe.run([xs, ys], { out: "reuse" })) as { a: HostOutput; b: HostOutput };
    const x2 = xs.map((v) => v * 0.5);
    const r2 = (await exe.run([x2, ys], { out: "reuse" })) as { a: HostOutput; b: HostOutput };
    expect(r2.a.data).toBe(r1.a.data);
    expect(r2.b.data).toBe(r1.b.data);
    expect(exe.ioStats?.bytesAllocated).toBe(0);
    expectClose(r2.a.data, chain(x2, ys));
    expectClose(
      r2.b.data,
      Array.from(x2, (v, i) => v + ys[i]!),
    );
  });

  test("`out` in the outputs' structure; a wrong array names the output", async () => {
    const exe = await k.compile((x: k.Tensor, y: k.Tensor) => ({ a: chainFn(x, y), b: x.add(y) }), [k.f32([N]), k.f32([N])], { target });
    const b = new Float32Array(N);
    const r = (await exe.run([xs, ys], { out: { b } })) as { a: HostOutput; b: HostOutput };
    expect(r.b.data).toBe(b);
    expectClose(
      b,
      Array.from(xs, (v, i) => v + ys[i]!),
    );
    expectClose(r.a.data, chain(xs, ys));
    const short = await rejectedKilnError(exe.run([xs, ys], { out: { a: new Float32Array(N - 1) } }));
    expect(short.message).toContain("out: 'a' must be a Float32Array of 1000 elements (f32[1000]), got Float32Array of 999");
    const kind = await rejectedKilnError(exe.run([xs, ys], { out: { b: new Int32Array(N) } }));
    expect(kind.message).toContain("out: 'b' must be a Float32Array");
    const unknown = await rejectedKilnError(exe.run([xs, ys], { out: { c: new Float32Array(N) } }));
    expect(unknown.message).toContain("out: 'c' is not an output (outputs: a, b)");
  });
});

describe("timeIo: a run's parts timed only when asked", () => {
  test("wasm times write, kernels and read into ioStats.times for that run only; the outputs are the same", async () => {
    const exe = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target: "wasm" });
    const plain = (await exe.run([xs, ys], { out: "reuse" })) as HostOutput;
    expect(exe.ioStats?.times).toBeUndefined();
    const expected = chain(xs, ys);
    expectClose(plain.data, expected);
    const timed = (await exe.run([xs, ys], { out: "reuse", timeIo: true })) as HostOutput;
    expectClose(timed.data, expected);
    const times = exe.ioStats?.times;
    expect(times).toBeDefined();
    for (const ms of [times!.writeMs, times!.executeMs, times!.readMs]) {
      expect(Number.isFinite(ms)).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(0);
    }
    // The byte counters are those of an untimed run.
    expect(exe.ioStats).toMatchObject({ bytesIn: 8 * N, bytesOut: 4 * N, bytesAllocated: 0 });
    await exe.run([xs, ys], { out: "reuse", timeIo: false });
    expect(exe.ioStats?.times).toBeUndefined();
    await exe.close();
  });

  test("a target that does not time its parts leaves times out; a non-boolean timeIo names the option", async () => {
    const exe = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target: "js" });
    await exe.run([xs, ys], { timeIo: true });
    expect(exe.ioStats?.times).toBeUndefined();
    const bad = await rejectedKilnError(exe.run([xs, ys], { timeIo: 1 as unknown as boolean }));
    expect(bad.message).toContain("exe.run: timeIo: expected true or false, got number");
  });
});

describe("state stays on the wasm device between training steps", () => {
  test("a step copies in only its batch; exe.state() matches the js target's after the same steps", async () => {
    const batch = { x: Float32Array.from({ length: 8 * 3 }, (_, i) => Math.sin(i)), y: Float32Array.from({ length: 8 }, (_, i) => Math.cos(i)) };
    const make = async (target: string) => {
      k.manualSeed(7);
      const model = k.nn.sequential(k.nn.linear(3, 16), k.nn.tanh(), k.nn.linear(16, 1));
      const step = k.trainStep(model, (pred, y) => k.nn.functional.mseLoss(pred.reshape([8]), y), k.optim.adam({ lr: 0.05 }));
      return k.compile(step, { x: k.f32([8, 3]), y: k.f32([8]) }, { target });
    };
    const wasm = await make("wasm");
    const js = await make("js");
    const losses: number[][] = [[], []];
    for (let i = 0; i < 3; i++) {
      losses[0]!.push(((await wasm.run(batch)) as { loss: HostOutput }).loss.data[0]!);
      losses[1]!.push(((await js.run(batch)) as { loss: HostOutput }).loss.data[0]!);
    }
    // After the first step the parameters and Adam's moments are resident: only x, y and the
    // hyperparameters (Adam's 9 scalars: lr, β1, 1 − β1, ln β1, β2, 1 − β2, ln β2, eps, weight decay) go in.
    expect(wasm.ioStats?.bytesIn).toBe(4 * (8 * 3 + 8 + 9));
    expect(wasm.ioStats?.bytesOut).toBe(4);
    expectClose(losses[0]!, losses[1]!);
    const a = wasm.state();
    const b = js.state();
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const name of Object.keys(b)) expectClose(a[name]!.data, Array.from(b[name]!.data));
    // A state loaded on the host replaces the resident one.
    wasm.loadState(b);
    js.loadState(b);
    const l1 = ((await wasm.run(batch)) as { loss: HostOutput }).loss.data[0]!;
    const l2 = ((await js.run(batch)) as { loss: HostOutput }).loss.data[0]!;
    expect(Math.abs(l1 - l2)).toBeLessThan(1e-5);
    expect(wasm.ioStats!.bytesIn).toBeGreaterThan(4 * (8 * 3 + 8));
  });
});

describe.each(["wasm", ...(gpu.available ? ["webgpu"] : [])])("k.DeviceValue on %s", (target) => {
  test("a kept output feeds another executable with no host copy, and read() fetches it", async () => {
    const f = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target });
    const g = await k.compile((h: k.Tensor, y: k.Tensor) => h.mul(y).add(1), [k.f32([N]), k.f32([N])], { target });
    const kept = (await f.run([xs, ys], { keep: ["out"] })) as unknown as k.DeviceValue;
    expect(kept).toBeInstanceOf(k.DeviceValue);
    expect(kept.shape).toEqual([N]);
    expect(f.ioStats?.bytesOut).toBe(0);
    const h = chain(xs, ys);
    const r = (await g.run([kept, ys])) as HostOutput;
    expectClose(
      r.data,
      h.map((v, i) => v * ys[i]! + 1),
    );
    expect(g.ioStats).toMatchObject({ bytesIn: 4 * N, bytesOnDevice: 4 * N });
    // The same executable reads its own kept output back in.
    const again = (await f.run([kept, ys])) as HostOutput;
    expectClose(again.data, chain(h, ys));
    expect(kept.valid).toBe(false);
  });

  test("a kept value is valid until its executable's next run ends; stale and released ones are KilnErrors", async () => {
    const f = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target });
    const g = await k.compile((h: k.Tensor) => h.neg(), [k.f32([N])], { target });
    const kept = (await f.run([xs, ys], { keep: ["out"] })) as unknown as k.DeviceValue;
    expect(kept.valid).toBe(true);
    expectClose((await kept.read()).data, chain(xs, ys));
    const into = new Float32Array(N);
    expect((await kept.read(into)).data).toBe(into);
    await f.run([ys, xs]);
    expect(kept.valid).toBe(false);
    expect((await rejectedKilnError(g.run([kept]))).message).toMatch(/input 'h': k\.DeviceValue 'out' of chainFn \(.*\) is stale/);
    expect((await rejectedKilnError(kept.read())).message).toContain("is stale");
    const k2 = (await f.run([xs, ys], { keep: ["out"] })) as unknown as k.DeviceValue;
    k2.release();
    expect((await rejectedKilnError(g.run([k2]))).message).toContain("was released");
    const wrongShape = await k.compile((h: k.Tensor) => h.neg(), [k.f32([N / 2])], { target });
    const k3 = (await f.run([xs, ys], { keep: ["out"] })) as unknown as k.DeviceValue;
    expect((await rejectedKilnError(wrongShape.run([k3]))).message).toContain("is f32[1000], expected f32[500]");
  });
});

describe("keep where a target cannot", () => {
  test("js has no device to keep on; a wasm value does not feed js", async () => {
    const js = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target: "js" });
    expect((await rejectedKilnError(js.run([xs, ys], { keep: ["out"] }))).message).toContain("target 'js' cannot leave values on a device");
    const wasm = await k.compile(chainFn, [k.f32([N]), k.f32([N])], { target: "wasm" });
    const kept = (await wasm.run([xs, ys], { keep: ["out"] })) as unknown as k.DeviceValue;
    expect((await rejectedKilnError(js.run([kept, ys]))).message).toContain("lives on target 'wasm', this executable runs on 'js'");
    expect((await rejectedKilnError(wasm.run([xs, ys], { keep: ["nope"] }))).message).toContain("keep: 'nope' is not an output (outputs: out)");
  });
});
