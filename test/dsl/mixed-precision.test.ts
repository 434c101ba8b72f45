// k.trainStep's mixed precision against a hand-made overflow: a bias-free linear layer whose
// loss is out.sum(), so every step's gradient of the output is exactly the loss scale. The
// first step's scale (2^16) is past f16's largest value (65504): the 16-bit gradient is inf, the
// step must change nothing and halve the scale; at 2^15 the steps go through. Expected values
// follow torch.cuda.amp.GradScaler's update rule, written out below, and plain SGD in f32.

import { describe, expect, test } from "vitest";
import * as k from "kiln";

/** GradScaler.update for one step (torch._amp_update_scale_). */
function scalerStep(s: { scale: number; tracker: number }, foundInf: boolean, interval: number): { scale: number; tracker: number } {
  if (foundInf) return { scale: s.scale * 0.5, tracker: 0 };
  const successful = s.tracker + 1;
  return successful === interval ? { scale: s.scale * 2, tracker: 0 } : { scale: s.scale, tracker: successful };
}

describe("mixed precision with dynamic loss scaling", () => {
  test.each(["reference", "js", "wasm"])("%s: an overflowing step is skipped and halves the scale; growth after growthInterval steps", async (target) => {
    k.manualSeed(1);
    const net = k.nn.linear(2, 1, { bias: false });
    const lr = 0.5;
    const step = k.trainStep(net, (out) => out.sum(), k.optim.sgd({ lr }), { mixed: "f16", lossScale: { growthInterval: 2 } });
    const exe = await k.compile(step, [k.f32([1, 2])], { target });
    const w0 = Array.from((await exe.fetchState())["weight"]!.data);
    let scaler = { scale: 2 ** 16, tracker: 0 };
    let w = [...w0];
    for (let n = 0; n < 5; n++) {
      await exe.run([[1, 1]]);
      // d(loss·scale)/d(out) = scale in f16: inf at 2^16, finite at 2^15; the update is lr·x = 0.5 per weight.
      const overflow = scaler.scale > 65504;
      if (!overflow) w = w.map((v) => v - lr);
      scaler = scalerStep(scaler, overflow, 2);
      const state = await exe.fetchState();
      // f32 master weights (the reference target keeps float64): within an f32 rounding of the exact SGD values.
      Array.from(state["weight"]!.data).forEach((v, j) => expect(Math.abs(v - w[j]!), `step ${n + 1}`).toBeLessThan(1e-6));
      expect([state["amp.scale"]!.data[0], state["amp.growth_tracker"]!.data[0]], `step ${n + 1}`).toEqual([scaler.scale, scaler.tracker]);
    }
    // Steps 1 and 4 overflowed (2^16), 2, 3 and 5 went through: the master weight moved three times.
    Array.from((await exe.fetchState())["weight"]!.data).forEach((v, j) => expect(Math.abs(v - (w0[j]! - 3 * lr))).toBeLessThan(1e-6));
  });

  test("the model runs in 16 bits, the master weights and the loss stay f32", () => {
    const net = k.nn.linear(3, 2);
    const g = k.traceFunction("step", k.trainStep(net, (out) => out.square().mean(), k.optim.sgd(), { mixed: "bf16" }) as never, [k.f32([4, 3])]).graph;
    const dtypes = new Set(g.nodes.filter((n) => n.op === "dot").map((n) => n.type.dtype));
    expect([...dtypes]).toEqual(["bf16"]); // forward and backward matmuls take 16-bit operands
    const types = Object.fromEntries(g.outputs.map((o) => [o.name, g.nodes.find((n) => n.id === o.value)!.type.dtype]));
    expect(types).toMatchObject({ loss: "f32", weight: "f32", bias: "f32" });
    expect(g.inputs.map((id) => (g.nodes.find((n) => n.id === id) as { name: string }).name)).not.toContain("amp.scale"); // bf16: no scaling by default
  });

  test("options are checked", () => {
    const net = k.nn.linear(2, 1);
    const loss = (out: k.Tensor) => out.sum();
    expect(() => k.trainStep(net, loss, k.optim.sgd(), { lossScale: 128 })).toThrow(/lossScale needs mixed/);
    expect(() => k.trainStep(net, loss, k.optim.sgd(), { mixed: "f8" as never })).toThrow(/mixed must be "f16" or "bf16"/);
    expect(() => k.trainStep(net, loss, k.optim.sgd(), { mixed: "f16", lossScale: { growthFactor: 2, bogus: 1 } as never })).toThrow(/bogus/);
  });
});
