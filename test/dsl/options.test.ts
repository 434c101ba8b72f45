// Strict options: unknown keys are errors naming the key, the accepted ones and the likely
// PyTorch-spelt intent, at the caller's line; and the options PyTorch users reach for
// (var's `unbiased`, gelu's `approximate`, softplus's `beta`/`threshold`) work, checked
// against PyTorch's formulas written out here and against finite differences.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { rejectedKilnError, thisLine, thrownKilnError } from "../util/kiln-error.ts";
import { camelCase, checkOptions, suggestOption } from "../../compiler/util/options.ts";
import { parseCommandArgs, UsageError } from "../../cli/args.ts";
import { gradcheck } from "../util/gradcheck.ts";
import { expectClose, runRef } from "../util/ref.ts";

const F = k.nn.functional;

const trace =
  (fn: (x: k.Tensor) => unknown, shape: number[] = [2, 3]) =>
  () =>
    k.traceFunction("t", fn as (...a: never[]) => unknown, [k.f32(shape)]);

describe("checkOptions / suggestOption", () => {
  test("snake_case PyTorch spellings map to camelCase", () => {
    expect(camelCase("weight_decay")).toBe("weightDecay");
    expect(camelCase("label_smoothing")).toBe("labelSmoothing");
    expect(suggestOption("weight_decay", ["lr", "weightDecay"])).toBe("weightDecay");
    expect(suggestOption("ignore_index", ["weight", "ignoreIndex", "reduction"])).toBe("ignoreIndex");
  });

  test("known aliases, case slips and typos; nothing when nothing is close", () => {
    expect(suggestOption("unbiased", ["correction", "keepdim"])).toBe("correction");
    expect(suggestOption("keepdims", ["keepdim"])).toBe("keepdim");
    expect(suggestOption("weightdecay", ["weightDecay"])).toBe("weightDecay");
    expect(suggestOption("momentun", ["lr", "momentum"])).toBe("momentum");
    expect(suggestOption("bogusKey", ["lr", "momentum"])).toBeUndefined();
    expect(suggestOption("x", ["lr"])).toBeUndefined();
  });

  test("the message names the key, the accepted keys and the suggestion", () => {
    const e = thrownKilnError(() => checkOptions("x.var", { unbiased: false }, ["correction", "keepdim"]));
    expect(e.message).toBe("x.var: unknown option 'unbiased' (accepted: correction, keepdim) — did you mean 'correction'?");
    expect(e.code).toBe("invalid-argument");
  });

  test("PyTorch-only options say what to do instead; prototype names are plain unknown keys", () => {
    expect(() => checkOptions("k.optim.adam", { foreach: true }, ["lr"])).toThrow(
      "k.optim.adam: unknown option 'foreach' (accepted: lr) — PyTorch's implementation switch: Kiln compiles every update into the step anyway",
    );
    expect(() => checkOptions("mseLoss", { size_average: false }, ["reduction"])).toThrow("— deprecated in PyTorch: use reduction");
    expect(() => checkOptions("f", { reduce: true }, ["dim"])).toThrow(/^f: unknown option 'reduce' \(accepted: dim\)$/);
    expect(() => checkOptions("f", { constructor: 1 }, ["lr"])).toThrow(/^f: unknown option 'constructor' \(accepted: lr\)$/);
  });

  test("a key set to undefined is still unknown; a non-object is refused", () => {
    expect(() => checkOptions("f", { lr: 1, bogusKey: undefined }, ["lr"])).toThrow("f: unknown option 'bogusKey' (accepted: lr)");
    expect(() => checkOptions("f", 3, ["lr"])).toThrow("f: options must be an object { lr }, got number");
    expect(() => checkOptions("f", [1], ["lr"])).toThrow("got an array");
    expect(() => checkOptions("f", null, ["lr"])).toThrow("got null");
  });
});

describe("var/std: correction, unbiased (PyTorch's older keyword) and keepdim", () => {
  const rows = [[1, 2, 3, 4, 2, 4, 6, 9]];
  // Row [1,2,3,4]: mean 2.5, Σ(x-mean)² = 5; row [2,4,6,9]: mean 5.25, Σ = 26.75.
  const biased = [5 / 4, 26.75 / 4];
  const unbiased = [5 / 3, 26.75 / 3];
  const run = (fn: (x: k.Tensor) => k.Tensor) => runRef(fn, [k.f32([2, 4])], rows).values;

  test("{ unbiased: false } divides by N (it returned the N-1 variance before)", () => {
    expectClose(
      run((x) => x.var(1, { unbiased: false })),
      biased,
      1e-12,
    );
    expectClose(
      run((x) => k.var(x, 1, { unbiased: false })),
      biased,
      1e-12,
    );
    expectClose(
      run((x) => x.std(1, { unbiased: false })),
      biased.map(Math.sqrt),
      1e-12,
    );
  });

  test("{ unbiased: true }, the default and a positional boolean (torch.var(x, 1, False))", () => {
    expectClose(
      run((x) => x.var(1, { unbiased: true })),
      unbiased,
      1e-12,
    );
    expectClose(
      run((x) => x.var(1)),
      unbiased,
      1e-12,
    );
    expectClose(
      run((x) => k.var(x, 1, false)),
      biased,
      1e-12,
    );
    expectClose(
      run((x) => k.std(x, 1, true)),
      unbiased.map(Math.sqrt),
      1e-12,
    );
  });

  test("keepdim inside the options; correction and unbiased together are refused", () => {
    expect(runRef((x: k.Tensor) => x.var(1, { unbiased: false, keepdim: true }), [k.f32([2, 4])], rows).shape).toEqual([2, 1]);
    expect(() => trace((x) => x.var(1, { unbiased: false, correction: 0 }))()).toThrow("x.var: give correction or unbiased, not both");
  });

  test("an unknown key names itself and the caller's line", () => {
    const line = thisLine() + 1;
    const e = thrownKilnError(trace((x) => x.var(1, { unbaised: false } as never)));
    expect(e.message).toMatch(/^x\.var: unknown option 'unbaised' \(accepted: correction, unbiased, keepdim\) — did you mean 'unbiased'\?/);
    expect(e.diag.loc?.file).toBe("test/dsl/options.test.ts");
    expect(e.diag.loc?.line).toBe(line);
  });
});

describe("keepdim as PyTorch's keyword", () => {
  test("x.sum(1, { keepdim: true }) keeps the dim; a misspelt key or a non-boolean is an error", () => {
    const r = runRef((x: k.Tensor) => x.sum(1, { keepdim: true }), [k.f32([2, 3])], [[1, 2, 3, 4, 5, 6]]);
    expect(r.shape).toEqual([2, 1]);
    expectClose(r.values, [6, 15]);
    expect(() => trace((x) => x.mean(1, { keepdims: true } as never))()).toThrow(
      "mean: unknown option 'keepdims' (accepted: keepdim) — did you mean 'keepdim'?",
    );
    expect(() => trace((x) => x.max(1, 1 as never))()).toThrow("max: keepdim must be a boolean or { keepdim }, got 1");
  });
});

// PyTorch's tanh GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
// torch.nn.functional.softplus: (1/β)·log(1 + exp(β·x)), and x itself where β·x > threshold.
const softplusRef = (x: number, beta: number, threshold: number): number => (beta * x > threshold ? x : Math.log1p(Math.exp(beta * x)) / beta);

const XS = [-3, -1.5, -0.5, 0, 0.25, 1, 2, 3.5];

describe("gelu approximate: 'tanh'", () => {
  test("every spelling gives the tanh form (the options object gave exact GELU before)", () => {
    const expected = XS.map(geluTanh);
    // At x = 1 the two forms differ by 1.5e-4: far above the tolerance, so exact GELU fails here.
    expect(Math.abs(geluTanh(1) - 0.8413447460685429)).toBeGreaterThan(1e-4);
    for (const fn of [
      (x: k.Tensor) => F.gelu(x, { approximate: "tanh" }),
      (x: k.Tensor) => x.gelu({ approximate: "tanh" }),
      (x: k.Tensor) => x.gelu("tanh"),
      (x: k.Tensor) => k.nn.gelu({ approximate: "tanh" }).call(x),
      (x: k.Tensor) => new k.nn.GELU({ approximate: "tanh" }).call(x),
    ])
      expectClose(runRef(fn, [k.f32([XS.length])], [XS]).values, expected, 1e-12, 1e-12);
  });

  test("a bad value or key is refused", () => {
    expect(() => trace((x) => F.gelu(x, { approximate: "fast" } as never))()).toThrow('gelu: approximate must be "none" or "tanh", got "fast"');
    expect(() => trace((x) => F.gelu(x, { approx: "tanh" } as never))()).toThrow("gelu: unknown option 'approx' (accepted: approximate)");
    expect(() => new k.nn.GELU({ approxmate: "tanh" } as never)).toThrow(
      "k.nn.GELU: unknown option 'approxmate' (accepted: approximate) — did you mean 'approximate'?",
    );
  });

  test("gradcheck", () => {
    gradcheck((x: k.Tensor) => F.gelu(x, { approximate: "tanh" }), [k.f32([XS.length])], [XS.map((x) => x + 0.1)]);
  });
});

describe("softplus beta and threshold", () => {
  test("{ beta: 2 } matches (1/β)log(1+exp(βx)) (it returned NaN before)", () => {
    expectClose(
      runRef((x: k.Tensor) => F.softplus(x, { beta: 2 }), [k.f32([XS.length])], [XS]).values,
      XS.map((x) => softplusRef(x, 2, 20)),
      1e-12,
      1e-12,
    );
  });

  test("the threshold switches to x where βx > threshold, in every spelling", () => {
    const expected = XS.map((x) => softplusRef(x, 2, 3));
    // At x = 2 (βx = 4 > 3) the answer is 2, not the smooth 2.009: the threshold matters.
    expect(Math.abs(softplusRef(2, 2, 3) - Math.log1p(Math.exp(4)) / 2)).toBeGreaterThan(1e-3);
    for (const fn of [
      (x: k.Tensor) => F.softplus(x, { beta: 2, threshold: 3 }),
      (x: k.Tensor) => x.softplus({ beta: 2, threshold: 3 }),
      (x: k.Tensor) => x.softplus(2, 3),
      (x: k.Tensor) => k.nn.softplus({ beta: 2, threshold: 3 }).call(x),
    ])
      expectClose(runRef(fn, [k.f32([XS.length])], [XS]).values, expected, 1e-12, 1e-12);
  });

  test("bad values and keys are refused", () => {
    expect(() => trace((x) => F.softplus(x, { beta: 0 }))()).toThrow("softplus: beta must be non-zero");
    expect(() => trace((x) => F.softplus(x, { beta: "2" } as never))()).toThrow('softplus: beta must be a finite number, got "2"');
    expect(() => trace((x) => F.softplus(x, { Beta: 2 } as never))()).toThrow(
      "softplus: unknown option 'Beta' (accepted: beta, threshold) — did you mean 'beta'?",
    );
  });

  test("gradcheck with beta 2, away from the threshold switch", () => {
    gradcheck((x: k.Tensor) => F.softplus(x, { beta: 2, threshold: 5 }), [k.f32([6])], [[-2, -0.7, 0.1, 0.9, 1.7, 4]]);
  });
});

describe("leakyRelu negativeSlope", () => {
  test("positional or { negativeSlope }", () => {
    const expected = XS.map((x) => (x > 0 ? x : 0.2 * x));
    expectClose(runRef((x: k.Tensor) => F.leakyRelu(x, { negativeSlope: 0.2 }), [k.f32([XS.length])], [XS]).values, expected, 1e-12);
    expectClose(runRef((x: k.Tensor) => x.leakyRelu(0.2), [k.f32([XS.length])], [XS]).values, expected, 1e-12);
    expect(() => new k.nn.LeakyReLU({ negative_slope: 0.2 } as never)).toThrow("did you mean 'negativeSlope'?");
  });
});

describe("clamp and dropout take PyTorch's keywords", () => {
  test("x.clamp({ min }) and k.clamp(x, { min, max }) (an object was silently ignored before)", () => {
    expectClose(
      runRef((x: k.Tensor) => x.clamp({ min: 0 }), [k.f32([XS.length])], [XS]).values,
      XS.map((x) => Math.max(x, 0)),
    );
    expectClose(
      runRef((x: k.Tensor) => k.clamp(x, { min: -1, max: 1 }), [k.f32([XS.length])], [XS]).values,
      XS.map((x) => Math.min(Math.max(x, -1), 1)),
    );
    expect(() => trace((x) => x.clamp({ minimum: 0 } as never))()).toThrow("clamp: unknown option 'minimum' (accepted: min, max)");
  });

  test("F.dropout(x, { p, training }) and k.nn.dropout({ p })", () => {
    // p = 1 zeroes everything; training: false is the identity.
    expectClose(
      runRef((x: k.Tensor) => F.dropout(x, { p: 1 }), [k.f32([XS.length])], [XS]).values,
      XS.map(() => 0),
    );
    expectClose(runRef((x: k.Tensor) => F.dropout(x, { p: 1, training: false }), [k.f32([XS.length])], [XS]).values, XS);
    expect(k.nn.dropout({ p: 0.25 }).p).toBe(0.25);
    expect(() => trace((x) => F.dropout(x, { rate: 0.1 } as never))()).toThrow("dropout: unknown option 'rate' (accepted: p, training)");
  });
});

describe("an options object where a tensor goes", () => {
  test("F.layerNorm(x, shape, { eps }) names the positional signature (it crashed with a TypeError before)", () => {
    expect(trace((x) => F.layerNorm(x, [3], { eps: 1e-6 } as never))).toThrow(
      "layerNorm: weight must be a tensor or null, got an object (the arguments are positional: layerNorm(x, normalizedShape, weight?, bias?, eps?))",
    );
    expect(trace((x) => F.groupNorm(x, 1, null, { eps: 1e-6 } as never))).toThrow("groupNorm: bias must be a tensor or null, got an object");
    expect(() => k.traceFunction("t", (x: k.Tensor, w: k.Tensor) => F.linear(x, w, { bias: false } as never), [k.f32([2, 3]), k.f32([4, 3])])).toThrow(
      "linear: bias must be a tensor or null, got an object",
    );
  });
});

describe("optimizers", () => {
  test("sgd({ weight_decay }) is refused with the camelCase name (it applied no decay before)", () => {
    const line = thisLine() + 1;
    const e = thrownKilnError(() => k.optim.sgd({ lr: 0.1, weight_decay: 0.5 } as never));
    expect(e.message).toMatch(
      /^k\.optim\.sgd: unknown option 'weight_decay' \(accepted: lr, momentum, dampening, weightDecay, nesterov\) — did you mean 'weightDecay'\?/,
    );
    expect(e.diag.loc).toEqual({ file: "test/dsl/options.test.ts", line, col: expect.any(Number) });
  });

  test("adamW({ weight_decay: 0 }) is refused (it kept the 0.01 default before); adam too", () => {
    expect(() => k.optim.adamW({ weight_decay: 0 } as never)).toThrow(
      "k.optim.adamW: unknown option 'weight_decay' (accepted: lr, betas, eps, weightDecay, amsgrad) — did you mean 'weightDecay'?",
    );
    expect(() => k.optim.adam({ betas: [0.9, 0.99], beta1: 0.9 } as never)).toThrow(
      "k.optim.adam: unknown option 'beta1' (accepted: lr, betas, eps, weightDecay, amsgrad) — did you mean 'betas'?",
    );
  });

  test("weightDecay: 0.5 does decay: one SGD step is p − lr·(g + wd·p)", async () => {
    // loss = Σ w·x, so g = x; p = [1, -2], x = [0.5, 0.25], lr 0.1, wd 0.5.
    const w = new k.nn.Parameter("w", [2], [1, -2]);
    class Probe extends k.nn.Module {
      constructor() {
        super();
        this.registerParameter("w", w);
      }
      forward(x: k.Tensor): k.Tensor {
        return w.tensor().mul(x);
      }
    }
    const exe = await k.compile(
      k.trainStep(new Probe(), (out) => out.sum(), k.optim.sgd({ lr: 0.1, weightDecay: 0.5 })),
      [k.f32([2])],
      { target: "reference" },
    );
    await exe.run([[0.5, 0.25]]);
    const expected = [1 - 0.1 * (0.5 + 0.5 * 1), -2 - 0.1 * (0.25 + 0.5 * -2)];
    expectClose(exe.state()["w"]!.data, expected, 1e-12);
  });
});

describe("modules, losses, composites", () => {
  test("module constructors check their options where the model is built", () => {
    expect(() => k.nn.linear(3, 4, { bias: false, biass: true } as never)).toThrow(
      "k.nn.Linear: unknown option 'biass' (accepted: bias) — did you mean 'bias'?",
    );
    expect(() => k.nn.conv2d(1, 2, 3, { padding_mode: "zeros" } as never)).toThrow("k.nn.Conv2d: unknown option 'padding_mode'");
    expect(() => k.nn.layerNorm(4, { elementwise_affine: false } as never)).toThrow("did you mean 'elementwiseAffine'?");
    expect(() => k.nn.maxPool2d(2, { ceil_mode: false } as never)).toThrow("k.nn.MaxPool2d: unknown option 'ceil_mode'");
  });

  test("losses name PyTorch's snake_case keywords", () => {
    const ce = (opts: object) => () => k.traceFunction("t", (x: k.Tensor, y: k.Tensor) => k.nn.crossEntropy(x, y, opts as never), [k.f32([2, 3]), k.i32([2])]);
    expect(ce({ ignore_index: 1 })).toThrow(
      "crossEntropy: unknown option 'ignore_index' (accepted: weight, ignoreIndex, reduction, labelSmoothing) — did you mean 'ignoreIndex'?",
    );
    expect(ce({ label_smoothing: 0.1 })).toThrow("did you mean 'labelSmoothing'?");
  });

  test("F.conv2d(x, w, { stride }) (options where the bias goes) is refused", () => {
    const f = () => k.traceFunction("t", (x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, { stride: 2 } as never), [k.f32([1, 1, 4, 4]), k.f32([1, 1, 3, 3])]);
    expect(f).toThrow(
      "conv2d: bias must be a tensor or null, got an object (the arguments are positional: conv2d(x, w, bias | null, { stride, padding, dilation, groups }))",
    );
  });
});

describe("k.compile and exe.run", () => {
  const id = (x: k.Tensor) => x.mul(2);

  test("an unknown compile option is refused before tracing, at the caller's line", async () => {
    const line = thisLine() + 1;
    const e = await rejectedKilnError(k.compile(id, [k.f32([2])], { target: "reference", targt: "js" }));
    expect(e.message).toMatch(/^k\.compile \(target 'reference'\): unknown option 'targt' \(accepted: target, name, checkNumerics\) — did you mean 'target'\?/);
    expect(e.diag.loc?.line).toBe(line);
  });

  test("an option of another target names that target", async () => {
    const e = await rejectedKilnError(k.compile(id, [k.f32([2])], { target: "js", threads: 2 }));
    expect(e.message).toContain("k.compile (target 'js'): unknown option 'threads'");
    expect(e.message).toContain("'threads' is an option of target wasm");
  });

  test("wasm threads must be a whole number ≥ 1 (was floored, or NaN through)", async () => {
    for (const threads of [0, 2.5, Number.NaN, "2" as unknown as number]) {
      const line = thisLine() + 1;
      const e = await rejectedKilnError(k.compile(id, [k.f32([2])], { target: "wasm", threads }));
      expect(e.message).toContain(`wasm option threads: must be a whole number ≥ 1, got ${String(threads)}`);
      expect(e.diag.loc?.line).toBe(line);
    }
  });

  test("an unknown or unavailable target names the k.compile / k.compileModel call's line", async () => {
    const line = thisLine() + 1;
    const e = await rejectedKilnError(k.compile(id, [k.f32([2])], { target: "tpu" }));
    expect(e.message).toContain("unknown target 'tpu'");
    expect(e.diag.loc?.line).toBe(line);
    const net = k.nn.linear(2, 2);
    const modelLine = thisLine() + 1;
    const m = await rejectedKilnError(k.compileModel(net, { f: (x: k.Tensor) => net.call(x) }, [k.f32([1, 2])], { target: "tpu" }));
    expect(m.message).toContain("unknown target 'tpu'");
    expect(m.diag.loc?.line).toBe(modelLine);
  });

  test("auto accepts any target's options; exe.run checks its own", async () => {
    const exe = await k.compile(id, [k.f32([2])], { target: "reference" });
    expect((await exe.run([[1, 2]], { seed: 3 })) as unknown).toMatchObject({ shape: [2] });
    await expect(exe.run([[1, 2]], { sead: 3 } as never)).rejects.toThrow(
      "exe.run: unknown option 'sead' (accepted: seed, skipNonFinite, out, keep, hyper, timeIo) — did you mean 'seed'?",
    );
  });

  test("k.program, k.grad and trainStep", () => {
    expect(() => k.program(id, [k.f32([2])], { nmae: "f" } as never)).toThrow("k.program: unknown option 'nmae' (accepted: name) — did you mean 'name'?");
    expect(() => k.grad((x: k.Tensor) => x.sum(), { has_aux: true } as never)).toThrow(
      "grad: unknown option 'has_aux' (accepted: argnums, hasAux) — did you mean 'hasAux'?",
    );
    expect(() => k.trainStep(k.nn.linear(2, 1), (o) => o.sum(), k.optim.sgd(), { max_norm: 1 } as never)).toThrow(
      "trainStep: unknown option 'max_norm' (accepted: clipGradNorm, mixed, lossScale)",
    );
  });
});

describe("CLI flags", () => {
  test("an unknown flag close to a known one gets a suggestion", () => {
    const flags = { target: { type: "string" }, "dump-dir": { type: "string" } } as const;
    expect(() => parseCommandArgs(["--targt", "js"], flags, "usage")).toThrow(UsageError);
    expect(() => parseCommandArgs(["--targt", "js"], flags, "usage")).toThrow(/^unknown option '--targt' \(did you mean '--target'\?\)$/);
    expect(() => parseCommandArgs(["--dump_dir", "d"], flags, "usage")).toThrow("(did you mean '--dump-dir'?)");
    expect(() => parseCommandArgs(["--bogus"], flags, "usage")).toThrow(/^unknown option '--bogus'$/);
  });
});
