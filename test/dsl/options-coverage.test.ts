// Every public function of `kiln` that takes an options object refuses an unknown key: a
// table calls each with `{ bogusKey: 1 }` and expects a KilnError naming 'bogusKey'; a second
// test reads the public surface's types (options-surface.ts, ts-morph) and fails when a
// function with an options parameter is missing from the table, or the table names one
// that no longer exists.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { KilnError } from "../../compiler/util/errors.ts";
import { publicOptionsFunctions } from "./options-surface.ts";

const F = k.nn.functional;
const BOGUS = { bogusKey: 1 } as never;

/** Runs `fn` inside a trace on f32 inputs of these shapes (ops need a traced context). */
const traced =
  (shapes: number[][], fn: (...xs: k.Tensor[]) => unknown, ints: number[][] = []) =>
  (): unknown =>
    k.traceFunction("t", ((...xs: k.Tensor[]) => (fn(...xs), xs[0]!)) as (...a: never[]) => unknown, [
      ...shapes.map((s) => k.f32(s)),
      ...ints.map((s) => k.i32(s)),
    ]);
const onX = (fn: (x: k.Tensor) => unknown) => traced([[2, 3]], fn);
const onImage = (fn: (x: k.Tensor) => unknown) => traced([[1, 2, 4, 4]], fn);
const onLogits = (fn: (x: k.Tensor, y: k.Tensor) => unknown) => traced([[2, 3]], fn, [[2]]);
const onPair = (fn: (x: k.Tensor, y: k.Tensor) => unknown) =>
  traced(
    [
      [2, 3],
      [2, 3],
    ],
    fn,
  );
const id = (x: k.Tensor) => x.mul(2);

/** name (as options-surface.ts spells it) -> a call with an unknown option. */
const calls: Readonly<Record<string, () => unknown>> = {
  "k.compile": () => k.compile(id, [k.f32([2])], BOGUS),
  "k.Executable.run": async () => (await k.compile(id, [k.f32([2])], { target: "reference" })).run([[1, 2]], BOGUS),
  "k.Executable.profile": async () => (await k.compile(id, [k.f32([2])], { target: "js" })).profile([[1, 2]], BOGUS),
  "k.formatProfile": () =>
    k.formatProfile(
      { target: "js", device: "d", steps: 1, clock: "host", stepMs: 1, kernelMs: 0, host: { inputMs: 0, readbackMs: 0, otherMs: 1 }, kernels: [] },
      BOGUS,
    ),
  "k.program": () => k.program(id, [k.f32([2])], BOGUS),
  "k.grad": () => k.grad((x: k.Tensor) => x.sum(), BOGUS),
  "k.valueAndGrad": () => k.valueAndGrad((x: k.Tensor) => x.sum(), BOGUS),
  "k.trainStep": () => k.trainStep(k.nn.linear(3, 1), (o) => o.sum(), k.optim.sgd(), BOGUS),
  "k.f32": () => k.f32(["batch", 2], BOGUS),
  "k.f16": () => k.f16(["batch", 2], BOGUS),
  "k.bf16": () => k.bf16(["batch", 2], BOGUS),
  "k.i32": () => k.i32(["batch"], BOGUS),
  "k.bool": () => k.bool([2], BOGUS),
  "k.printGraph": () => k.printGraph(k.traceFunction("t", id, [k.f32([2])]).graph, BOGUS),
  "k.printModule": () => k.printModule([k.traceFunction("t", id, [k.f32([2])]).graph], BOGUS),
  "k.registerTarget": () => k.registerTarget("bogus-target", () => ({ run: async () => ({}) }), BOGUS),
  "k.Executable.loadState": async () =>
    (
      await k.compile(
        k.trainStep(k.nn.linear(2, 1), (o) => o.sum(), k.optim.sgd()),
        [k.f32([1, 2])],
        { target: "reference" },
      )
    ).loadState({}, BOGUS),
  "k.compileModel": () => k.compileModel(k.nn.linear(2, 1), { predict: (x: k.Tensor) => x }, [k.f32([1, 2])], BOGUS),
  "k.ModelBase.loadState": async () =>
    (await k.compileModel(k.nn.linear(2, 1), { predict: (x: k.Tensor) => x }, [k.f32([1, 2])], { target: "reference" })).loadState({}, BOGUS),
  "k.nn.Module.loadStateDict": () => k.nn.linear(2, 1).loadStateDict({}, BOGUS),

  "k.data.batches": () => k.data.batches([[1, 2]], BOGUS),
  "k.lossCurveSvg": () => k.lossCurveSvg([1, 2], BOGUS),
  "new k.data.Batches": () => new k.data.Batches([[1, 2]], BOGUS),
  "k.data.charCorpus": () => k.data.charCorpus("abc", BOGUS),
  "new k.data.CharCorpus": () => new k.data.CharCorpus("abc", BOGUS),
  "k.data.CharCorpus.windows": () => k.data.charCorpus("abcdef").windows("train", BOGUS),
  "k.data.mnist": () => k.data.mnist("test", BOGUS),

  "k.optim.sgd": () => k.optim.sgd(BOGUS),
  "k.optim.adam": () => k.optim.adam(BOGUS),
  "k.optim.adamW": () => k.optim.adamW(BOGUS),
  "k.optim.schedule.constant": () => k.optim.schedule.constant(BOGUS),

  // Tensor methods and their k.* twins.
  "k.Tensor.sum": onX((x) => x.sum(0, BOGUS)),
  "k.Tensor.mean": onX((x) => x.mean(0, BOGUS)),
  "k.Tensor.max": onX((x) => x.max(0, BOGUS)),
  "k.Tensor.min": onX((x) => x.min(0, BOGUS)),
  "k.Tensor.any": onX((x) => x.any(0, BOGUS)),
  "k.Tensor.all": onX((x) => x.all(0, BOGUS)),
  "k.Tensor.argmax": onX((x) => x.argmax(0, BOGUS)),
  "k.Tensor.argmin": onX((x) => x.argmin(0, BOGUS)),
  "k.Tensor.logsumexp": onX((x) => x.logsumexp(0, BOGUS)),
  "k.Tensor.var": onX((x) => x.var(0, BOGUS)),
  "k.Tensor.std": onX((x) => x.std(0, BOGUS)),
  "k.Tensor.gelu": onX((x) => x.gelu(BOGUS)),
  "k.Tensor.leakyRelu": onX((x) => x.leakyRelu(BOGUS)),
  "k.Tensor.softplus": onX((x) => x.softplus(BOGUS)),
  "k.sum": onX((x) => k.sum(x, 0, BOGUS)),
  "k.mean": onX((x) => k.mean(x, 0, BOGUS)),
  "k.max": onX((x) => k.max(x, 0, BOGUS)),
  "k.amax": onX((x) => k.amax(x, 0, BOGUS)),
  "k.amin": onX((x) => k.amin(x, 0, BOGUS)),
  "k.Tensor.amax": onX((x) => x.amax(0, BOGUS)),
  "k.Tensor.amin": onX((x) => x.amin(0, BOGUS)),
  "k.topk": onX((x) => k.topk(x, 1, BOGUS)),
  "k.Tensor.topk": onX((x) => x.topk(1, BOGUS)),
  "k.multinomial": onX((x) => k.multinomial(x.abs(), 1, BOGUS)),
  "k.categorical": onX((x) => k.categorical(x, BOGUS)),
  "k.nn.functional.pad": onX((x) => F.pad(x, [1, 1], BOGUS)),
  "k.min": onX((x) => k.min(x, 0, BOGUS)),
  "k.any": onX((x) => k.any(x, 0, BOGUS)),
  "k.all": onX((x) => k.all(x, 0, BOGUS)),
  "k.argmax": onX((x) => k.argmax(x, 0, BOGUS)),
  "k.argmin": onX((x) => k.argmin(x, 0, BOGUS)),
  "k.logsumexp": onX((x) => k.logsumexp(x, 0, BOGUS)),
  "k.var": onX((x) => k.var(x, 0, BOGUS)),
  "k.std": onX((x) => k.std(x, 0, BOGUS)),
  "k.gelu": onX((x) => k.gelu(x, BOGUS)),
  "k.clamp": onX((x) => k.clamp(x, BOGUS)),
  "k.Tensor.clamp": onX((x) => x.clamp(BOGUS)),
  "k.leakyRelu": onX((x) => k.leakyRelu(x, BOGUS)),
  "k.softplus": onX((x) => k.softplus(x, BOGUS)),

  // k.nn.functional.
  "k.nn.functional.gelu": onX((x) => F.gelu(x, BOGUS)),
  "k.nn.functional.dropout": onX((x) => F.dropout(x, BOGUS)),
  "k.nn.functional.leakyRelu": onX((x) => F.leakyRelu(x, BOGUS)),
  "k.nn.functional.softplus": onX((x) => F.softplus(x, BOGUS)),
  "k.nn.functional.conv2d": traced(
    [
      [1, 2, 4, 4],
      [2, 2, 3, 3],
    ],
    (x, w) => F.conv2d(x, w, null, BOGUS),
  ),
  "k.nn.functional.convTranspose2d": traced(
    [
      [1, 2, 4, 4],
      [2, 2, 3, 3],
    ],
    (x, w) => F.convTranspose2d(x, w, null, BOGUS),
  ),
  "k.nn.functional.maxPool2d": onImage((x) => F.maxPool2d(x, 2, BOGUS)),
  "k.nn.functional.avgPool2d": onImage((x) => F.avgPool2d(x, 2, BOGUS)),
  "k.nn.functional.batchNorm": onImage((x) => F.batchNorm(x, null, null, BOGUS)),
  "k.nn.functional.scaledDotProductAttention": traced([[2, 3]], (q) => F.scaledDotProductAttention(q, q, q, BOGUS)),
  "k.nn.functional.crossEntropy": onLogits((x, y) => F.crossEntropy(x, y, BOGUS)),
  "k.nn.functional.nllLoss": onLogits((x, y) => F.nllLoss(x, y, BOGUS)),
  "k.nn.functional.mseLoss": onPair((x, y) => F.mseLoss(x, y, BOGUS)),
  "k.nn.functional.l1Loss": onPair((x, y) => F.l1Loss(x, y, BOGUS)),
  "k.nn.functional.binaryCrossEntropyWithLogits": onPair((x, y) => F.binaryCrossEntropyWithLogits(x, y, BOGUS)),
  "k.nn.crossEntropy": onLogits((x, y) => k.nn.crossEntropy(x, y, BOGUS)),
  "k.nn.nllLoss": onLogits((x, y) => k.nn.nllLoss(x, y, BOGUS)),
  "k.nn.mseLoss": onPair((x, y) => k.nn.mseLoss(x, y, BOGUS)),
  "k.nn.l1Loss": onPair((x, y) => k.nn.l1Loss(x, y, BOGUS)),
  "k.nn.binaryCrossEntropyWithLogits": onPair((x, y) => k.nn.binaryCrossEntropyWithLogits(x, y, BOGUS)),

  // Modules: checked when built.
  "k.nn.linear": () => k.nn.linear(2, 2, BOGUS),
  "k.nn.conv2d": () => k.nn.conv2d(1, 1, 3, BOGUS),
  "k.nn.convTranspose2d": () => k.nn.convTranspose2d(1, 1, 3, BOGUS),
  "k.nn.layerNorm": () => k.nn.layerNorm(2, BOGUS),
  "k.nn.batchNorm1d": () => k.nn.batchNorm1d(2, BOGUS),
  "k.nn.batchNorm2d": () => k.nn.batchNorm2d(2, BOGUS),
  "new k.nn.BatchNorm1d": () => new k.nn.BatchNorm1d(2, BOGUS),
  "new k.nn.BatchNorm2d": () => new k.nn.BatchNorm2d(2, BOGUS),
  "k.nn.maxPool2d": () => k.nn.maxPool2d(2, BOGUS),
  "k.nn.avgPool2d": () => k.nn.avgPool2d(2, BOGUS),
  "k.nn.gelu": () => k.nn.gelu(BOGUS),
  "k.nn.dropout": () => k.nn.dropout(BOGUS),
  "new k.nn.Dropout": () => new k.nn.Dropout(BOGUS),
  "k.nn.leakyRelu": () => k.nn.leakyRelu(BOGUS),
  "k.nn.softplus": () => k.nn.softplus(BOGUS),
  "new k.nn.Linear": () => new k.nn.Linear(2, 2, BOGUS),
  "new k.nn.MultiheadAttention": () => new k.nn.MultiheadAttention(4, 2, BOGUS),
  "k.nn.multiheadAttention": () => k.nn.multiheadAttention(4, 2, BOGUS),
  "k.nn.MultiheadAttention.attention": traced([[3, 4]], (x) => new k.nn.MultiheadAttention(4, 2).attention(x, x, x, BOGUS)),
  "new k.nn.Conv2d": () => new k.nn.Conv2d(1, 1, 3, BOGUS),
  "new k.nn.ConvTranspose2d": () => new k.nn.ConvTranspose2d(1, 1, 3, BOGUS),
  "new k.nn.LayerNorm": () => new k.nn.LayerNorm(2, BOGUS),
  "new k.nn.MaxPool2d": () => new k.nn.MaxPool2d(2, BOGUS),
  "new k.nn.AvgPool2d": () => new k.nn.AvgPool2d(2, BOGUS),
  "new k.nn.GELU": () => new k.nn.GELU(BOGUS),
  "new k.nn.LeakyReLU": () => new k.nn.LeakyReLU(BOGUS),
  "new k.nn.Softplus": () => new k.nn.Softplus(BOGUS),
};

/** Functions with an options parameter that users do not call, and why. */
const notCalledByUsers: Readonly<Record<string, string>> = {
  "k.Executor.run": "the interface a target implements; k.compile calls it with options it builds itself",
};

describe("every public options object is strict", () => {
  test.each(Object.entries(calls))("%s({ bogusKey: 1 }) throws naming the key", async (_name, call) => {
    let error: unknown;
    try {
      await call();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).message).toMatch(/unknown option 'bogusKey' \(accepted: [^)]+\)/);
    expect((error as KilnError).code).toBe("invalid-argument");
  });

  test("the table covers every exported function, method and constructor with an options parameter", { timeout: 120_000 }, () => {
    const found = publicOptionsFunctions();
    // The reader must see the surface at all: a broken type walk would find nothing and pass.
    expect(found).toContain("k.optim.sgd");
    expect(found).toContain("k.Tensor.var");
    const covered = new Set([...Object.keys(calls), ...Object.keys(notCalledByUsers)]);
    expect(
      found.filter((name) => !covered.has(name)),
      "functions taking options with no bogus-key call in the table",
    ).toEqual([]);
    expect(
      [...covered].filter((name) => !found.includes(name)),
      "table entries for functions the surface no longer has",
    ).toEqual([]);
  });
});
