// exe.run's per-call path keeps what does not change between calls (the hyper input, the
// extra inputs to fill, the readback list, a shared RunIo without keep/out, the wasm runner's
// state-update and pass-through lists): each cache must give what a fresh computation gives.
// Values are hand-derived (x·2 + 1, an SGD step of a 1 → 1 linear written out below) or the
// float64 reference interpreter's; nothing here times anything.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { rejectedKilnError } from "../util/kiln-error.ts";

type Out = { readonly shape: readonly number[]; readonly data: ArrayLike<number> };

describe.each(["cpu", "js"])("exe.run's per-call caches on %s", (target) => {
  const threads = target === "cpu" ? { threads: 1 } : {};

  test("one input record reused: refilled in place, then given another array, then another key is refused", async () => {
    const exe = await k.compile(({ x }: { x: k.Tensor }) => x.mul(2).add(1), { x: k.f32([4]) }, { target, ...threads });
    const a = Float32Array.of(0, 1, 2, 3);
    const inputs: Record<string, unknown> = { x: a };
    expect(Array.from(((await exe.run(inputs as never)) as Out).data)).toEqual([1, 3, 5, 7]);
    a.set([-1, -2, 4, 0.5]);
    expect(Array.from(((await exe.run(inputs as never)) as Out).data)).toEqual([-1, -3, 9, 2]);
    inputs["x"] = Float32Array.of(10, 20, 30, 40);
    expect(Array.from(((await exe.run(inputs as never)) as Out).data)).toEqual([21, 41, 61, 81]);
    inputs["z"] = a;
    expect((await rejectedKilnError(exe.run(inputs as never))).message).toMatch(/^exe\.run: unknown input\(s\) 'z' \(expected x\) at /);
    delete inputs["z"];
    inputs["x"] = new Float32Array(3);
    expect((await rejectedKilnError(exe.run(inputs as never))).message).toMatch(/^input 'x': expected 4 values for f32\[4\] \(flat, row-major\), got 3 at /);
  });

  test('out: "reuse" fills the first run\'s array; a run with timeIo, one without and one with an out array in between', async () => {
    const exe = await k.compile(({ x }: { x: k.Tensor }) => x.mul(2).add(1), { x: k.f32([2]) }, { target, ...threads });
    const first = (await exe.run({ x: [1, 2] }, { out: "reuse" })) as Out;
    const second = (await exe.run({ x: [3, 4] }, { out: "reuse", timeIo: true })) as Out;
    expect(second.data).toBe(first.data);
    expect(Array.from(second.data)).toEqual([7, 9]);
    const plain = (await exe.run({ x: [0, 0] })) as Out;
    expect(plain.data).not.toBe(first.data);
    const given = new Float32Array(2);
    expect(((await exe.run({ x: [5, 6] }, { out: given })) as Out).data).toBe(given);
    expect(Array.from(given)).toEqual([11, 13]);
    const third = (await exe.run({ x: [-1, 1] }, { out: "reuse" })) as Out;
    expect(third.data).toBe(first.data);
    expect(Array.from(third.data)).toEqual([-1, 3]);
    expect(Array.from(plain.data)).toEqual([1, 1]);
    expect((await rejectedKilnError(exe.run({ x: [1, 2] }, { out: "reuse", timeIo: "yes" as never }))).message).toMatch(
      /^exe\.run: timeIo: expected true or false, got string at /,
    );
  });

  test("a trainStep's hyper input follows setHyper and run's hyper between runs (SGD on a 1 → 1 linear, by hand)", async () => {
    // loss = mean((w·x + b − y)²) over one sample: dw = 2(w·x + b − y)·x, db = 2(w·x + b − y).
    const net = k.nn.sequential(k.nn.linear(1, 1));
    const exe = await k.compile(
      k.trainStep(net, (o, y) => k.nn.mseLoss(o, y!), k.optim.sgd({ lr: 0.1 })),
      { x: k.f32([1, 1]), y: k.f32([1, 1]) },
      {
        target,
        ...threads,
      },
    );
    exe.loadState({ "0.weight": Float32Array.of(0.5), "0.bias": Float32Array.of(0.25) });
    let [w, b] = [0.5, 0.25];
    const inputs = { x: Float32Array.of(2), y: Float32Array.of(1) };
    const step = async (lr: number, opts: k.RunOptions = {}): Promise<void> => {
      await exe.run(inputs, opts);
      const r = w * inputs.x[0]! + b - inputs.y[0]!;
      [w, b] = [w - lr * 2 * r * inputs.x[0]!, b - lr * 2 * r];
      const state = exe.state();
      expect(state["0.weight"]!.data[0]).toBeCloseTo(w, 5);
      expect(state["0.bias"]!.data[0]).toBeCloseTo(b, 5);
    };
    await step(0.1);
    exe.setHyper({ lr: 0.05 });
    await step(0.05);
    await step(0.05);
    const before = exe.state();
    await exe.run(inputs, { hyper: { lr: 0 } });
    // lr 0: the state is what it was, exactly.
    expect(Array.from(exe.state()["0.weight"]!.data)).toEqual(Array.from(before["0.weight"]!.data));
    expect(Array.from(exe.state()["0.bias"]!.data)).toEqual(Array.from(before["0.bias"]!.data));
    inputs.x[0] = -1;
    await step(0, {});
    await step(0.2, { hyper: { lr: 0.2 } });
    expect(exe.hyper()).toMatchObject({ lr: 0.2 });
  });

  test("a symbolic batch changes between runs of one input record: rows and shape follow each run", async () => {
    const exe = await k.compile(({ x }: { x: k.Tensor }) => x.mul(2).add(1), { x: k.f32(["batch", 2], { max: { batch: 4 } }) }, { target, ...threads });
    const inputs: { x: { shape: number[]; data: Float32Array } } = { x: { shape: [3, 2], data: Float32Array.of(0, 1, 2, 3, 4, 5) } };
    const three = (await exe.run(inputs)) as Out;
    expect(three.shape).toEqual([3, 2]);
    expect(Array.from(three.data)).toEqual([1, 3, 5, 7, 9, 11]);
    inputs.x = { shape: [1, 2], data: Float32Array.of(-1, -2) };
    const one = (await exe.run(inputs)) as Out;
    expect(one.shape).toEqual([1, 2]);
    expect(Array.from(one.data)).toEqual([-1, -3]);
    inputs.x = { shape: [4, 2], data: Float32Array.of(1, 1, 1, 1, 1, 1, 1, 1) };
    expect(Array.from(((await exe.run(inputs)) as Out).data)).toEqual([3, 3, 3, 3, 3, 3, 3, 3]);
  });
});

describe("the wasm runner's tail (state updates and pass-throughs, lists made once)", () => {
  test("an output that is an input returns the caller's data each run; kept values go stale at the next run", async () => {
    const exe = await k.compile((x: k.Tensor, y: k.Tensor) => [x, x.add(y)], [k.f32([3]), k.f32([3])], { target: "cpu", threads: 1 });
    for (const [x, y] of [
      [Float32Array.of(1, 2, 3), Float32Array.of(1, 1, 1)],
      [Float32Array.of(-1, 0, 5), Float32Array.of(2, 2, 2)],
    ] as const) {
      const [same, sum] = (await exe.run([x, y])) as unknown as [Out, Out];
      expect(Array.from(same.data)).toEqual(Array.from(x));
      expect(Array.from(sum.data)).toEqual(Array.from(x, (v, i) => v + y[i]!));
    }
    const [, kept] = (await exe.run([Float32Array.of(1, 1, 1), Float32Array.of(1, 2, 3)], { keep: ["1"] })) as unknown as [Out, k.DeviceValue];
    expect(Array.from((await kept.read()).data)).toEqual([2, 3, 4]);
    await exe.run([Float32Array.of(0, 0, 0), Float32Array.of(0, 0, 0)]);
    expect(kept.valid).toBe(false);
  });

  test("AdamW state across runs on cpu matches the interpreter: a state array loaded, a run keeping its loss (updates read back), state read every second step", async () => {
    const build = (target: string) => {
      k.manualSeed(3);
      const net = k.nn.sequential(k.nn.linear(3, 2), k.nn.relu(), k.nn.linear(2, 1));
      return k.compile(
        k.trainStep(net, (o, y) => k.nn.mseLoss(o, y!), k.optim.adamW({ lr: 0.05 })),
        { x: k.f32([4, 3]), y: k.f32([4, 1]) },
        {
          target,
          ...(target === "cpu" ? { threads: 1 } : {}),
        },
      );
    };
    const [cpu, ref] = [await build("cpu"), await build("reference")];
    const inputs = { x: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i + 1)), y: Float32Array.of(0.5, -0.25, 1, 0) };
    // State is compared every second step: reading it (exe.state) hands the runner fresh arrays,
    // so the steps between reads are the ones whose state stays in memory untouched by the host.
    for (let i = 0; i < 6; i++) {
      if (i === 2) {
        const w = Float32Array.of(0.1, -0.2, 0.3, 0.05, 0.15, -0.1);
        cpu.loadState({ "0.weight": w });
        ref.loadState({ "0.weight": w });
      }
      const b = (await ref.run(inputs)) as { loss: Out };
      // Step 4 keeps the loss on the device: the state updates are read back that run.
      const loss =
        i === 4
          ? (await ((await cpu.run(inputs, { keep: ["loss"] })) as unknown as { loss: k.DeviceValue }).loss.read()).data[0]!
          : ((await cpu.run(inputs)) as { loss: Out }).loss.data[0]!;
      expect(loss).toBeCloseTo(b.loss.data[0]!, 4);
      if (i % 2 === 0) continue;
      const [sa, sb] = [cpu.state(), ref.state()];
      for (const name of Object.keys(sb))
        expect(Array.from(sa[name]!.data).map((v, j) => v - sb[name]!.data[j]!)).toSatisfy((d: number[]) => d.every((v) => Math.abs(v) < 1e-4));
    }
  });
});
