// k.nn.init's draws: PyTorch's default bounds over the threefry streams (the rolled reference
// block rngValueAt, not the unrolled generator the init uses), and their deferral — an init
// takes its stream when called and draws when the values are first read, so the order of
// reads, a later manualSeed, or replacing the values first (loadState) change nothing.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { rngValueAt } from "../../compiler/util/threefry.ts";

const uniformAt = (seed: number, stream: number, count: number, bound: number): number[] =>
  Array.from({ length: count }, (_, i) => -bound + 2 * bound * rngValueAt(seed, stream, i));

/** Equal to 1e-14 (the init's bound is gain·√(3/fan_in), this file's 1/√fan_in: they round apart). */
function expectValues(got: ArrayLike<number>, want: readonly number[]): void {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(Math.abs(got[i]! - w)).toBeLessThan(1e-14));
}

describe("parameter init", () => {
  test("Linear's weight and bias are U(±1/√in) on consecutive streams, whatever order they are read in", () => {
    k.manualSeed(42);
    const a = k.nn.linear(5, 3);
    const b = k.nn.linear(4, 2);
    k.manualSeed(7); // after the inits: must not change their values
    const c = k.nn.linear(3, 2);
    const bound = (fanIn: number): number => 1 / Math.sqrt(fanIn);
    // Read last-made first.
    expectValues(c.weight.data, uniformAt(7, 0, 6, bound(3)));
    expectValues(b.bias!.data, uniformAt(42, 3, 2, bound(4)));
    expectValues(b.weight.data, uniformAt(42, 2, 8, bound(4)));
    expectValues(a.weight.data, uniformAt(42, 0, 15, bound(5)));
    expectValues(a.bias!.data, uniformAt(42, 1, 3, bound(5)));
    expect(a.weight.data).toBe(a.weight.data); // drawn once, then kept
  });

  test("Embedding's weight is N(0, 1) by Box–Muller over one stream of 2·count uniforms", () => {
    k.manualSeed(3);
    const e = k.nn.embedding(4, 2);
    const u = (i: number): number => rngValueAt(3, 0, i);
    const want = Array.from({ length: 8 }, (_, i) => Math.sqrt(-2 * Math.log(1 - u(2 * i))) * Math.cos(2 * Math.PI * u(2 * i + 1)));
    Array.from(e.weight.data).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 12));
  });

  test("values replaced before they are read are never drawn", () => {
    const p = new k.nn.Parameter("w", [2, 2], [0, 0, 0, 0]);
    p.drawLater(() => {
      throw new Error("drawn");
    });
    p.data = Float64Array.of(1, 2, 3, 4);
    expect(Array.from(p.data)).toEqual([1, 2, 3, 4]);
    const q = new k.nn.Parameter("q", [2], [0, 0]);
    q.drawLater(() => Float64Array.of(5, 6));
    expect(Array.from(q.hostTensor().data)).toEqual([5, 6]);
  });

  test("Parameter.zeros reads as zeros of its dtype's storage until replaced; an init replaces them before any read", () => {
    const f = k.nn.Parameter.zeros("f", [2, 3]);
    expect(f.data).toBeInstanceOf(Float64Array);
    expect(Array.from(f.data)).toEqual([0, 0, 0, 0, 0, 0]);
    f.data[1] = 7; // the array read is the parameter's own: writes stay
    expect(Array.from(f.data)).toEqual([0, 7, 0, 0, 0, 0]);
    const i = k.nn.Parameter.zeros("i", [2], "i32", false);
    expect(i.data).toBeInstanceOf(Int32Array);
    expect(Array.from(i.hostTensor().data)).toEqual([0, 0]);
    expect(i.requiresGrad).toBe(false);
    const w = k.nn.Parameter.zeros("w", [2]);
    w.drawLater(() => Float64Array.of(3, 4));
    expect(Array.from(w.data)).toEqual([3, 4]);
  });
});

describe("an executable's initial state", () => {
  test("is the init's values, drawn for it when first needed; exe.loadState before the first run replaces them without a draw", async () => {
    k.manualSeed(5);
    const net = k.nn.linear(3, 2);
    let draws = 0;
    const w = net.weight;
    const want = uniformAt(5, 0, 6, 1 / Math.sqrt(3));
    w.drawLater(() => {
      draws++;
      return Float64Array.from(want);
    });
    const exe = await k.compile((x: k.Tensor) => net.call(x), [k.f32([1, 3])], { target: "js" });
    const x = [[1, 0, 0]];
    const y0 = (await exe.run(x)) as { data: ArrayLike<number> };
    expect(draws).toBe(1);
    // x = e0: y = W[:, 0] + b
    const b = Array.from(net.bias!.data);
    expectValues(y0.data, [Math.fround(want[0]!) + Math.fround(b[0]!), Math.fround(want[3]!) + Math.fround(b[1]!)].map(Math.fround));
    w.data[0] = 100; // the parameter's own copy: the executable's state is its own
    expect(draws).toBe(2);
    const lazy = k.nn.linear(3, 2);
    lazy.weight.drawLater(() => {
      throw new Error("the replaced init was drawn");
    });
    const exe2 = await k.compile((x: k.Tensor) => lazy.call(x), [k.f32([1, 3])], { target: "js" });
    exe2.loadState({
      weight: { dtype: "f32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
      bias: { dtype: "f32", shape: [2], data: Float32Array.of(0, 0) },
    });
    expect(Array.from(((await exe2.run(x)) as { data: ArrayLike<number> }).data)).toEqual([1, 4]);
  });
});
