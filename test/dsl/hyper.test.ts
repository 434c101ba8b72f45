// Runtime hyperparameters: a k.trainStep reads lr, betas, eps, weight decay, momentum,
// dampening and the clipping norm from its `hyper` input, so exe.run({ hyper }) changes them
// without a recompile. Trajectories are checked against torch.optim's formulas written out
// here (the probe model's gradient is its input), on the reference interpreter and through
// k.compile on every target here against the reference; parameter groups carry their own
// values; errors name the key; checkpoints leave the hyperparameters out; an Adam step
// compiles to as many kernels as when they were constants.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { backendOf } from "../../targets/backends.ts";
import { webGpuDefaultLimits } from "../../codegen/wgsl/layout.ts";
import { expectClose } from "../util/ref.ts";
import { rejectedKilnError, thrownKilnError } from "../util/kiln-error.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

/** loss = Σ w·x + Σ b·z: the gradients are the inputs x and z. */
class Probe extends k.nn.Module {
  w = new k.nn.Parameter("w", [3], [0.5, -1.25, 2]);
  bias = new k.nn.Parameter("bias", [2], [1, -0.5]);
  forward(x: k.Tensor): k.Tensor {
    return k.cat([this.w.tensor(), this.bias.tensor()]).mul(x);
  }
}
const W0 = [0.5, -1.25, 2];
const B0 = [1, -0.5];
const GRADS = [
  [0.25, -0.5, 1, 0.5, -1],
  [-0.75, 0.125, 2, 1.5, 0.25],
  [1.5, 0.375, -0.25, -0.5, 2],
];

async function compileProbe(optimizer: k.Optimizer, target = "reference", opts: k.TrainStepOptions = {}) {
  return k.compile(
    k.trainStep(new Probe(), (out) => out.sum(), optimizer, opts),
    [k.f32([5])],
    { target },
  );
}

const paramsOf = async (exe: k.Executable): Promise<number[]> => {
  const s = await exe.fetchState();
  return [...Array.from(s["w"]!.data), ...Array.from(s["bias"]!.data)];
};

/** torch.optim.Adam/AdamW on one parameter vector, each step with its own hyperparameters. */
function adamSteps(
  p0: readonly number[],
  grads: readonly (readonly number[])[],
  hyper: readonly { lr: number; beta1: number; beta2: number; eps: number; wd: number }[],
  decoupled: boolean,
): number[][] {
  let p = [...p0];
  let m = p.map(() => 0);
  let v = p.map(() => 0);
  return grads.map((raw, step) => {
    const { lr, beta1, beta2, eps, wd } = hyper[step]!;
    const t = step + 1;
    let g = [...raw];
    if (decoupled) p = p.map((pi) => pi * (1 - lr * wd));
    else g = g.map((gi, i) => gi + wd * p[i]!);
    m = m.map((mi, i) => beta1 * mi + (1 - beta1) * g[i]!);
    v = v.map((vi, i) => beta2 * vi + (1 - beta2) * g[i]! * g[i]!);
    p = p.map((pi, i) => pi - (lr * (m[i]! / (1 - beta1 ** t))) / (Math.sqrt(v[i]! / (1 - beta2 ** t)) + eps));
    return p;
  });
}

describe("runtime hyperparameters on the reference interpreter", () => {
  test("SGD: lr set on run 2 applies from run 2 and stays (sticky); exe.hyper() reads it", async () => {
    const exe = await compileProbe(k.optim.sgd({ lr: 0.1 }));
    expect(exe.hyper()).toEqual({ lr: 0.1, weightDecay: 0 });
    await exe.run([GRADS[0]!]);
    await exe.run([GRADS[1]!], { hyper: { lr: 0.5 } });
    expect(exe.hyper()).toEqual({ lr: 0.5, weightDecay: 0 });
    await exe.run([GRADS[2]!]);
    // p3 = p0 − 0.1·g1 − 0.5·g2 − 0.5·g3
    const want = [...W0, ...B0].map((p, i) => p - 0.1 * GRADS[0]![i]! - 0.5 * GRADS[1]![i]! - 0.5 * GRADS[2]![i]!);
    expectClose(await paramsOf(exe), want, 1e-12, 1e-12);
    exe.setHyper({ lr: 0, weightDecay: 0.5 });
    const before = await paramsOf(exe);
    await exe.run([GRADS[0]!]);
    expect(await paramsOf(exe)).toEqual(before); // lr 0: nothing moves, weight decay or not
  });

  test("SGD with momentum and dampening set at run time follows torch.optim.SGD", async () => {
    const exe = await compileProbe(k.optim.sgd({ lr: 0.05, momentum: 0.9, dampening: 0.1 }));
    const steps = [
      { lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0 },
      { lr: 0.02, momentum: 0.5, dampening: 0.3, weightDecay: 0.1 },
      { lr: 0.02, momentum: 0, dampening: 0.3, weightDecay: 0.1 },
    ];
    let p = [...W0, ...B0];
    let buf: number[] | undefined;
    for (const [t, h] of steps.entries()) {
      await exe.run([GRADS[t]!], { hyper: h });
      const g = GRADS[t]!.map((gi, i) => gi + h.weightDecay * p[i]!);
      buf = buf === undefined ? [...g] : buf.map((b, i) => h.momentum * b + (1 - h.dampening) * g[i]!);
      // torch skips the buffer when momentum is 0.
      const d = h.momentum === 0 ? g : buf;
      p = p.map((pi, i) => pi - h.lr * d[i]!);
    }
    expectClose(await paramsOf(exe), p, 1e-12, 1e-12);
  });

  test("Adam: lr, betas, eps and weight decay changed between runs", async () => {
    const exe = await compileProbe(k.optim.adam({ lr: 0.1 }));
    const hyper = [
      { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0 },
      { lr: 0.05, beta1: 0.5, beta2: 0.75, eps: 1e-3, wd: 0.2 },
      { lr: 0.2, beta1: 0, beta2: 0.9, eps: 0.1, wd: 0 },
    ];
    for (const [t, h] of hyper.entries()) await exe.run([GRADS[t]!], { hyper: { lr: h.lr, betas: [h.beta1, h.beta2], eps: h.eps, weightDecay: h.wd } });
    expectClose(await paramsOf(exe), adamSteps([...W0, ...B0], GRADS, hyper, false).at(-1)!, 1e-12, 1e-12);
  });

  test("AdamW parameter groups: the bias group without weight decay and its own lr; groups inherit the rest live", async () => {
    const opt = k.optim.adamW({ lr: 0.1, weightDecay: 0.5 }, { groups: [{ name: "noDecay", params: (n) => n === "bias", weightDecay: 0, lr: 0.2 }] });
    const exe = await compileProbe(opt);
    expect(exe.hyper()).toEqual({ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.5, noDecay: { weightDecay: 0, lr: 0.2 } });
    const wSteps = [0.1, 0.1, 0.1].map((lr, t) => ({ lr, beta1: t === 2 ? 0.8 : 0.9, beta2: 0.999, eps: 1e-8, wd: 0.5 }));
    const bSteps = [0.2, 0.3, 0.3].map((lr, t) => ({ lr, beta1: t === 2 ? 0.8 : 0.9, beta2: 0.999, eps: 1e-8, wd: 0 }));
    await exe.run([GRADS[0]!]);
    await exe.run([GRADS[1]!], { hyper: { noDecay: { lr: 0.3 } } });
    await exe.run([GRADS[2]!], { hyper: { betas: [0.8, 0.999] } }); // the group follows the default group's betas
    const w = adamSteps(
      W0,
      GRADS.map((g) => g.slice(0, 3)),
      wSteps,
      true,
    ).at(-1)!;
    const b = adamSteps(
      B0,
      GRADS.map((g) => g.slice(3)),
      bSteps,
      true,
    ).at(-1)!;
    expectClose(await paramsOf(exe), [...w, ...b], 1e-12, 1e-12);
  });

  test("groups by list of names; first matching group wins", async () => {
    const opt = k.optim.sgd(
      { lr: 0.1 },
      {
        groups: [
          { params: ["bias"], lr: 1 },
          { params: () => true, lr: 0 },
        ],
      },
    );
    const exe = await compileProbe(opt);
    expect(exe.hyper()).toEqual({ lr: 0.1, weightDecay: 0, group0: { lr: 1 }, group1: { lr: 0 } });
    await exe.run([GRADS[0]!]);
    expectClose(await paramsOf(exe), [...W0, ...B0.map((p, i) => p - GRADS[0]![3 + i]!)], 1e-12, 1e-12);
  });

  test("clipGradNorm is a hyperparameter of the step", async () => {
    const exe = await compileProbe(k.optim.sgd({ lr: 1 }), "reference", { clipGradNorm: 100 });
    const g = GRADS[0]!;
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    await exe.run([g], { hyper: { clipGradNorm: 0.5 } });
    const scale = Math.min(1, 0.5 / (norm + 1e-6));
    expectClose(
      await paramsOf(exe),
      [...W0, ...B0].map((p, i) => p - scale * g[i]!),
      1e-12,
      1e-12,
    );
  });

  test("checkpoints hold parameters and optimizer state, not hyperparameters; loading one keeps them", async () => {
    const exe = await compileProbe(k.optim.adam({ lr: 0.1 }));
    await exe.run([GRADS[0]!], { hyper: { lr: 0.3 } });
    const dir = (await import("node:fs")).mkdtempSync(`${(await import("node:os")).tmpdir()}/kiln-hyper-`);
    await exe.saveState(`${dir}/ckpt.safetensors`);
    const saved = k.safetensors.read(`${dir}/ckpt.safetensors`);
    expect([...saved.tensors.keys()].sort()).toEqual(["bias", "opt.bias.exp_avg", "opt.bias.exp_avg_sq", "opt.step", "opt.w.exp_avg", "opt.w.exp_avg_sq", "w"]);
    const other = await compileProbe(k.optim.adam({ lr: 0.1 }));
    other.loadState(`${dir}/ckpt.safetensors`);
    expect(other.hyper()).toEqual({ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    expect(Object.keys(exe.state())).not.toContain("hyper");
  });
});

describe("errors", () => {
  test("an unknown hyperparameter or group, a key a group does not own, a bad value: one line naming it; nothing changes", async () => {
    const exe = await compileProbe(k.optim.adamW({ lr: 0.1 }, { groups: [{ name: "noDecay", params: ["bias"], weightDecay: 0 }] }));
    // Each names the exe.run call's line (checked at the call); the text before it is what is compared.
    const message = async (hyper: unknown) => {
      const text = (await rejectedKilnError(exe.run([GRADS[0]!], { hyper: hyper as k.HyperSettings }))).message;
      expect(text).toMatch(/ at test\/dsl\/hyper\.test\.ts:\d+:\d+$/);
      return text.replace(/ at test\/dsl\/hyper\.test\.ts:\d+:\d+$/, "");
    };
    expect(await message({ weight_decay: 0.1 })).toBe(
      "exe.run: hyper: unknown hyperparameter or group 'weight_decay' (accepted: lr, betas, eps, weightDecay, noDecay) — did you mean 'weightDecay'?",
    );
    expect(await message({ momentum: 0.9 })).toMatch(
      /^exe\.run: hyper: unknown hyperparameter or group 'momentum' \(accepted: .*\) \('momentum' is no input of this step/,
    );
    expect(await message({ nodecay: { weightDecay: 0 } })).toMatch(/unknown hyperparameter or group 'nodecay' .* did you mean 'noDecay'\?$/);
    expect(await message({ noDecay: { lr: 0.5 } })).toBe(
      "exe.run: hyper.noDecay: unknown hyperparameter 'lr' (accepted: weightDecay) ('lr' of this group follows the default group's: give the group its own lr when building the optimizer to set it apart)",
    );
    expect(await message({ lr: 0.2, betas: [0.9, 1] })).toBe("exe.run: hyper.betas must be in [0, 1), got [0.9, 1]");
    expect(await message({ lr: -1 })).toBe("exe.run: hyper.lr must be a non-negative number, got -1");
    expect(await message({ betas: 0.9 })).toBe("exe.run: hyper.betas must be a pair of numbers, got 0.9");
    expect(await message({ noDecay: 0 })).toBe("exe.run: hyper.noDecay is a parameter group: give it an object such as { weightDecay: … }");
    expect(exe.hyper()).toEqual({ lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, noDecay: { weightDecay: 0 } });
    const plain = await k.compile((x: k.Tensor) => x.mul(2), [k.f32([2])], { target: "reference" });
    // (at the caller's line)
    expect(thrownKilnError(() => plain.setHyper({ lr: 1 })).message).toMatch(
      /^exe\.setHyper: this program has no hyperparameters \(only a k\.trainStep has: lr, weightDecay, …\) at test\/dsl\/hyper\.test\.ts:\d+:\d+$/,
    );
    expect(plain.hyper()).toEqual({});
  });

  test("groups: holding no parameter, naming an unknown one, bad names and values", async () => {
    const trace = (opt: k.Optimizer) => () => k.traceFunction("t", k.trainStep(new Probe(), (o) => o.sum(), opt) as never, [k.f32([5])]);
    expect(thrownKilnError(trace(k.optim.adam({}, { groups: [{ params: (n) => n.endsWith(".bias") }] }))).message).toBe(
      "adam: group 'group0' holds no parameter (an earlier group took them, or its params match none of: w, bias)",
    );
    expect(thrownKilnError(trace(k.optim.sgd({}, { groups: [{ params: ["bais"] }] }))).message).toBe(
      "sgd: group 'group0' lists 'bais', which is not a trainable parameter — did you mean 'bias'?",
    );
    expect(thrownKilnError(trace(k.optim.sgd({}, { groups: [{ params: () => true }, { name: "late", params: ["w"] }] }))).message).toBe(
      "sgd: group 'late' holds no parameter (an earlier group took them, or its params match none of: w, bias)",
    );
    expect(() => k.optim.adamW({}, { groups: [{ params: ["w"], weight_decay: 0 } as never] })).toThrow(
      /k\.optim\.adamW \(group 0\): unknown option 'weight_decay' .* did you mean 'weightDecay'\?/,
    );
    expect(() => k.optim.adamW({}, { groups: [{ name: "lr", params: ["w"] }] })).toThrow("adamw: group name 'lr' is a hyperparameter's name; pick another");
    expect(() => k.optim.adamW({}, { groups: [{ params: ["w"], betas: [1, 0] }] })).toThrow("adamw: group 'group0': betas must be in [0, 1), got [1, 0]");
    expect(() => k.optim.sgd({ momentum: 0.9, nesterov: true }, { groups: [{ params: ["w"], momentum: 0 }] })).toThrow(
      "sgd: nesterov momentum needs momentum > 0 and dampening 0",
    );
  });
});

const gpu = await webGpuTestEnv();
const targets = ["js", "wasm", ...(gpu.available ? ["webgpu"] : [])];
const closers: (() => Promise<void> | void)[] = [];
afterAll(async () => void (await Promise.all(closers.map((c) => c()))));

describe.each(targets)("k.compile on %s", (target) => {
  test("changing lr, betas, weight decay and a group's values between runs follows the reference interpreter", async () => {
    const settings: k.HyperSettings[] = [{}, { lr: 0.05, betas: [0.8, 0.99], noDecay: { lr: 0.3 } }, { weightDecay: 0.2, eps: 1e-4 }];
    const trajectory = async (name: string) => {
      const opt = k.optim.adamW({ lr: 0.1, weightDecay: 0.5 }, { groups: [{ name: "noDecay", params: ["bias"], weightDecay: 0, lr: 0.2 }] });
      const exe = await compileProbe(opt, name, { clipGradNorm: 2 });
      const close = (exe as { close?: () => Promise<void> }).close;
      if (close) closers.push(() => close.call(exe));
      const out: number[][] = [];
      for (const [t, hyper] of settings.entries()) {
        await exe.run([GRADS[t]!], { hyper });
        out.push(await paramsOf(exe));
      }
      return out;
    };
    const want = await trajectory("reference");
    const got = await trajectory(target);
    got.forEach((p, t) => expectClose(p, want[t]!, 1e-6, 1e-5));
  });
});

/** The same optimizer with its hyperparameters as graph constants (what the step was before they became inputs). */
function withConstants(opt: k.Optimizer): k.Optimizer {
  return {
    kind: opt.kind,
    hyperparameters: () => [],
    update: (params, state) => {
      const decls = opt.hyperparameters(params.map((p) => p.name));
      return opt.update(params, state, (group) => (key) => {
        const d = decls.find((x) => x.key === key && x.group === group) ?? decls.find((x) => x.key === key && x.group === undefined)!;
        return d.feeds.map((feed) => k.scalar(feed.of(d.value), "f32"));
      });
    },
  };
}

describe("kernel counts: the hyperparameters as inputs add no kernel", () => {
  // The 784-512-512-10 MLP's Adam step, against the same step with the hyperparameters as
  // constants (WebGPU at its guaranteed limits: 8 storage buffers per stage).
  const stepGraph = (opt: k.Optimizer) => {
    const net = k.nn.sequential(k.nn.linear(784, 512), k.nn.relu(), k.nn.linear(512, 512), k.nn.relu(), k.nn.linear(512, 10));
    const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), opt);
    return k.traceFunction("step", step as never, { x: k.f32([128, 784]), y: k.i32([128]) }).graph;
  };
  const asInputs = stepGraph(k.optim.adamW({ lr: 1e-3 }));
  const asConstants = stepGraph(withConstants(k.optim.adamW({ lr: 1e-3 })));
  test("the constant variant has no hyper input; the other one f32[9] (AdamW's scalars)", () => {
    const inputNames = (g: typeof asInputs) => g.inputs.map((id) => (g.nodes.find((n) => n.id === id) as { name: string }).name);
    expect(inputNames(asConstants)).not.toContain("hyper");
    expect(asInputs.nodes.find((n) => n.op === "input" && n.name === "hyper")!.type.shape).toEqual([9]);
  });
  test.each(["js", "wasm", "cuda", "webgpu"])("%s: as many kernels as with constants", (target) => {
    const count = (g: typeof asInputs) =>
      backendOf(target).compile(g, (target === "webgpu" ? { limits: webGpuDefaultLimits } : {}) as never).artifact.kernels.length;
    const constants = count(asConstants);
    expect(constants).toBeGreaterThan(5);
    expect(count(asInputs)).toBe(constants);
  });
});
