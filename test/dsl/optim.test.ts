// Optimizers as graph ops: three k.trainStep runs of SGD (plain, weight decay, momentum with
// dampening, nesterov), Adam (L2 decay, amsgrad) and AdamW against torch.optim's update
// formulas written out here in plain JS; gradient clipping by global norm against its formula.
// The probe model makes the gradient a chosen input: loss = Σ w·x, so ∂loss/∂w = x.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { expectClose } from "../util/ref.ts";

/** loss = Σ w·x: the gradient with respect to w is the input x. */
class Probe extends k.nn.Module {
  constructor(readonly w: k.nn.Parameter) {
    super();
  }
  forward(x: k.Tensor): k.Tensor {
    return this.w.tensor().mul(x);
  }
}

const W0 = [0.5, -1.25, 2];
// Values exact in f32 (inputs are rounded to f32 on the way in).
const GRADS = [
  [0.25, -0.5, 1],
  [-0.75, 0.125, 2],
  [1.5, 0.375, -0.25],
];

interface Trajectory {
  readonly params: number[][];
  readonly states: Record<string, HostTensor>[];
}

async function runSteps(optimizer: k.Optimizer, grads: readonly number[][] = GRADS, opts: k.TrainStepOptions = {}): Promise<Trajectory> {
  const model = new Probe(new k.nn.Parameter("w", [W0.length], W0));
  const exe = await k.compile(
    k.trainStep(model, (out) => out.sum(), optimizer, opts),
    [k.f32([W0.length])],
    { target: "reference" },
  );
  const params: number[][] = [];
  const states: Record<string, HostTensor>[] = [];
  for (const g of grads) {
    await exe.run([g]);
    states.push(exe.state());
    params.push(Array.from(exe.state()["w"]!.data));
  }
  return { params, states };
}

function expectTrajectory(actual: Trajectory, expected: readonly number[][]): void {
  expect(actual.params.length).toBe(expected.length);
  actual.params.forEach((p, t) => expectClose(p, expected[t]!, 1e-12, 1e-12));
}

interface SgdRef {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD, step by step. */
function sgdReference(o: SgdRef): number[][] {
  const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = o;
  let p = [...W0];
  let buf: number[] | undefined;
  return GRADS.map((raw) => {
    let g = raw.map((gi, i) => gi + weightDecay * p[i]!);
    if (momentum !== 0) {
      const prev = buf;
      buf = prev === undefined ? [...g] : prev.map((b, i) => momentum * b + (1 - dampening) * g[i]!);
      const b = buf;
      g = nesterov ? g.map((gi, i) => gi + momentum * b[i]!) : [...b];
    }
    p = p.map((pi, i) => pi - lr * g[i]!);
    return p;
  });
}

interface AdamRef {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  amsgrad?: boolean;
}

/** torch.optim.Adam / AdamW: p ← p − lr·m̂/(√v̂ + eps), m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ). */
function adamReference(o: AdamRef): { params: number[][]; m: number[]; v: number[] } {
  let p = [...W0];
  let m = W0.map(() => 0);
  let v = W0.map(() => 0);
  let vMax = W0.map(() => 0);
  const params = GRADS.map((raw, step) => {
    const t = step + 1;
    let g = raw;
    if (o.decoupled) p = p.map((pi) => pi * (1 - o.lr * o.weightDecay));
    else g = g.map((gi, i) => gi + o.weightDecay * p[i]!);
    m = m.map((mi, i) => o.beta1 * mi + (1 - o.beta1) * g[i]!);
    v = v.map((vi, i) => o.beta2 * vi + (1 - o.beta2) * g[i]! * g[i]!);
    vMax = vMax.map((x, i) => Math.max(x, v[i]!));
    const second = o.amsgrad ? vMax : v;
    p = p.map((pi, i) => {
      const mHat = m[i]! / (1 - o.beta1 ** t);
      const vHat = second[i]! / (1 - o.beta2 ** t);
      return pi - (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    });
    return p;
  });
  return { params, m, v };
}

describe("SGD", () => {
  test("plain: p ← p − lr·g, no optimizer state", async () => {
    const r = await runSteps(k.optim.sgd({ lr: 0.1 }));
    expectTrajectory(r, sgdReference({ lr: 0.1 }));
    expect(Object.keys(r.states[0]!)).toEqual(["w"]);
  });

  test("weight decay adds wd·p to the gradient", async () => {
    expectTrajectory(await runSteps(k.optim.sgd({ lr: 0.1, weightDecay: 0.2 })), sgdReference({ lr: 0.1, weightDecay: 0.2 }));
  });

  test("momentum with dampening: the first buffer is the raw gradient", async () => {
    const opts = { lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 };
    const r = await runSteps(k.optim.sgd(opts));
    expectTrajectory(r, sgdReference(opts));
    expect(Object.keys(r.states[2]!).sort()).toEqual(["opt.step", "opt.w.momentum_buffer", "w"]);
    // After step 1 the buffer is g₁ + wd·p₀, undamped.
    expectClose(
      r.states[0]!["opt.w.momentum_buffer"]!.data,
      GRADS[0]!.map((g, i) => g + 0.01 * W0[i]!),
      1e-12,
      1e-12,
    );
  });

  test("nesterov", async () => {
    const opts = { lr: 0.05, momentum: 0.8, nesterov: true };
    expectTrajectory(await runSteps(k.optim.sgd(opts)), sgdReference(opts));
  });

  test("bad options", () => {
    expect(() => k.optim.sgd({ lr: -1 })).toThrow("sgd: lr must be a non-negative number, got -1");
    expect(() => k.optim.sgd({ lr: 0.1, nesterov: true })).toThrow("sgd: nesterov momentum needs momentum > 0 and dampening 0");
  });
});

describe("Adam and AdamW", () => {
  test("Adam with L2 weight decay: bias-corrected steps and moments", async () => {
    const ref = adamReference({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05, decoupled: false });
    const r = await runSteps(k.optim.adam({ lr: 0.1, weightDecay: 0.05 }));
    expectTrajectory(r, ref.params);
    const last = r.states[2]!;
    expect(Array.from(last["opt.step"]!.data)).toEqual([3]);
    expect(last["opt.step"]!.dtype).toBe("i32");
    expectClose(last["opt.w.exp_avg"]!.data, ref.m, 1e-12, 1e-12);
    expectClose(last["opt.w.exp_avg_sq"]!.data, ref.v, 1e-12, 1e-12);
  });

  test("Adam, custom betas and eps, amsgrad", async () => {
    const ref = adamReference({ lr: 0.02, beta1: 0.5, beta2: 0.75, eps: 1e-3, weightDecay: 0, decoupled: false, amsgrad: true });
    const r = await runSteps(k.optim.adam({ lr: 0.02, betas: [0.5, 0.75], eps: 1e-3, amsgrad: true }));
    expectTrajectory(r, ref.params);
    expect(Object.keys(r.states[0]!)).toContain("opt.w.max_exp_avg_sq");
  });

  test("AdamW: decoupled decay p·(1 − lr·wd) before the Adam step (default wd 0.01)", async () => {
    const ref = adamReference({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true });
    expectTrajectory(await runSteps(k.optim.adamW({ lr: 0.1 })), ref.params);
    const strong = adamReference({ lr: 0.1, beta1: 0.8, beta2: 0.9, eps: 1e-8, weightDecay: 0.5, decoupled: true });
    expectTrajectory(await runSteps(k.optim.adamW({ lr: 0.1, betas: [0.8, 0.9], weightDecay: 0.5 })), strong.params);
  });

  test("bad options", () => {
    expect(() => k.optim.adam({ betas: [0.9, 1] })).toThrow("adam: betas must be in [0, 1), got [0.9, 1]");
    expect(() => k.optim.adamW({ eps: -1 })).toThrow("adamw: eps must be non-negative, got -1");
  });
});

describe("gradient clipping by global norm", () => {
  /** Two parameters, a [2] and b [3]; loss = Σ cat(a, b)·x, so the gradients are x split 2 + 3. */
  class Pair extends k.nn.Module {
    a = new k.nn.Parameter("a", [2], [1, 2]);
    b = new k.nn.Parameter("b", [3], [3, 4, 5]);
    forward(x: k.Tensor): k.Tensor {
      return k.cat([this.a.tensor(), this.b.tensor()]).mul(x);
    }
  }

  async function clippedStep(x: number[], maxNorm: number): Promise<number[]> {
    const model = new Pair();
    const exe = await k.compile(
      k.trainStep(model, (out) => out.sum(), k.optim.sgd({ lr: 1 }), { clipGradNorm: maxNorm }),
      [k.f32([5])],
      { target: "reference" },
    );
    await exe.run([x]);
    const s = exe.state();
    return [...Array.from(s["a"]!.data), ...Array.from(s["b"]!.data)];
  }

  test("scales every gradient by maxNorm / (‖g‖ + 1e-6) when the norm is larger", async () => {
    const x = [3, 0, 4, 0, 12]; // ‖x‖ = 13 across both parameters
    const coef = 2 / (13 + 1e-6);
    expectClose(
      await clippedStep(x, 2),
      [1, 2, 3, 4, 5].map((p, i) => p - coef * x[i]!),
      1e-12,
      1e-12,
    );
  });

  test("leaves gradients under the limit unchanged", async () => {
    const x = [0.5, -0.25, 0, 1, 0.75];
    expectClose(
      await clippedStep(x, 100),
      [1, 2, 3, 4, 5].map((p, i) => p - x[i]!),
      1e-12,
      1e-12,
    );
  });

  test("k.clipGradNorm returns the total norm", async () => {
    const exe = await k.compile(
      (g1: k.Tensor, g2: k.Tensor) => {
        const { grads, totalNorm } = k.clipGradNorm([g1, g2], 1);
        return { grads, totalNorm };
      },
      [k.f32([2]), k.f32([1])],
      { target: "reference" },
    );
    const out = (await exe.run([[1, 2], [2]])) as { grads: HostTensor[]; totalNorm: HostTensor };
    expectClose(out.totalNorm.data, [3], 1e-12);
    const coef = 1 / (3 + 1e-6);
    expectClose(out.grads[0]!.data, [coef, 2 * coef], 1e-12, 1e-12);
    expectClose(out.grads[1]!.data, [2 * coef], 1e-12, 1e-12);
  });

  test("maxNorm must be positive", () => {
    expect(() => k.trainStep(new Pair(), (o) => o.sum(), k.optim.sgd(), { clipGradNorm: 0 })).toThrow(
      "k.trainStep: clipGradNorm must be a positive number, got 0",
    );
  });
});
