// Losses against hand formulas evaluated here: cross entropy as -log softmax at the target
// (label smoothing per the PyTorch docs, ignoreIndex, class weights, soft targets), nllLoss,
// mseLoss, and BCE-with-logits against the direct -[y log σ + (1-y) log(1-σ)].

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { callerLine, randomData } from "./functional-helpers.ts";

const F = k.nn.functional;
const N = 5;
const C = 4;
const logits = randomData(N * C, 1).map((v) => v * 3);
const targets = [2, 0, -100, 3, 1];

/** -log p[i, c] from the definition p = exp(x) / Σ exp(x), over rows of a [rows, C] array. */
const negLogProb = (x: number[], row: number, c: number): number => {
  const z = [0, 1, 2, 3].reduce((s, j) => s + Math.exp(x[row * C + j]!), 0);
  return -Math.log(Math.exp(x[row * C + c]!) / z);
};
const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
const ceRef = (opts: k.nn.functional.CrossEntropyOptions) => (x: k.Tensor, t: k.Tensor) => F.crossEntropy(x, t, opts);
const runCe = (opts: k.nn.functional.CrossEntropyOptions, x = logits, t = targets) => runRef(ceRef(opts), [k.f32([N, C]), k.i32([N])], [x, t]);

describe("crossEntropy with class indices", () => {
  const valid = [0, 1, 3, 4];

  test("mean skips ignoreIndex (-100 by default)", () => {
    const expected = sum(valid.map((i) => negLogProb(logits, i, targets[i]!))) / valid.length;
    expectClose(runCe({}).values, [expected], 1e-13, 1e-12);
    expect(runCe({}).shape).toEqual([]);
  });

  test("reduction none gives 0 at ignored rows; sum adds them", () => {
    const perRow = targets.map((t, i) => (t === -100 ? 0 : negLogProb(logits, i, t)));
    expectClose(runCe({ reduction: "none" }).values, perRow, 1e-13, 1e-12);
    expectClose(runCe({ reduction: "sum" }).values, [sum(perRow)], 1e-13, 1e-12);
  });

  test("label smoothing: (1-ε)·nll + ε·mean_c(-log p_c)", () => {
    const eps = 0.2;
    const perRow = valid.map((i) => (1 - eps) * negLogProb(logits, i, targets[i]!) + (eps * sum([0, 1, 2, 3].map((c) => negLogProb(logits, i, c)))) / C);
    expectClose(runCe({ labelSmoothing: eps }).values, [sum(perRow) / valid.length], 1e-13, 1e-12);
  });

  test("an ignoreIndex that is a real class", () => {
    const t = [1, 0, 2, 3, 1];
    const expected = (negLogProb(logits, 1, 0) + negLogProb(logits, 2, 2) + negLogProb(logits, 3, 3)) / 3;
    expectClose(runCe({ ignoreIndex: 1 }, logits, t).values, [expected], 1e-13, 1e-12);
  });

  test("class weights: mean divides by the summed target weights (with and without smoothing)", () => {
    const w = [0.5, 2, 1.5, 0.25];
    const run = (eps: number) =>
      runRef(
        (x: k.Tensor, t: k.Tensor, wt: k.Tensor) => F.crossEntropy(x, t, { weight: wt, labelSmoothing: eps }),
        [k.f32([N, C]), k.i32([N]), k.f32([C])],
        [logits, targets, w],
      );
    const weightSum = sum(valid.map((i) => w[targets[i]!]!));
    const nll = sum(valid.map((i) => w[targets[i]!]! * negLogProb(logits, i, targets[i]!))) / weightSum;
    expectClose(run(0).values, [nll], 1e-13, 1e-12);
    // PyTorch: (1-ε)·weighted nll + ε/C · Σ_i Σ_c w_c·(-log p_ic) / Σ_i w_{t_i}
    const smooth = sum(valid.map((i) => sum([0, 1, 2, 3].map((c) => w[c]! * negLogProb(logits, i, c))))) / weightSum;
    expectClose(run(0.1).values, [0.9 * nll + (0.1 / C) * smooth], 1e-13, 1e-12);
  });

  test("spatial logits [N, C, d] with targets [N, d]", () => {
    const x = randomData(2 * C * 3, 2);
    const t = [0, 3, 1, 2, 2, -100];
    const r = runRef((xt: k.Tensor, tt: k.Tensor) => F.crossEntropy(xt, tt, { reduction: "none" }), [k.f32([2, C, 3]), k.i32([2, 3])], [x, t]);
    // Move the class axis last to reuse the row formula.
    const rows = Array.from({ length: 6 * C }, (_, i) => {
      const [pos, c] = [Math.floor(i / C), i % C];
      return x[(Math.floor(pos / 3) * C + c) * 3 + (pos % 3)]!;
    });
    expect(r.shape).toEqual([2, 3]);
    expectClose(
      r.values,
      t.map((tc, pos) => (tc === -100 ? 0 : negLogProb(rows, pos, tc))),
      1e-13,
      1e-12,
    );
  });

  test("unbatched [C] logits with a scalar target", () => {
    const r = runRef((x: k.Tensor, t: k.Tensor) => F.crossEntropy(x, t), [k.f32([C]), k.i32([])], [logits.slice(0, C), [3]]);
    expectClose(r.values, [negLogProb(logits, 0, 3)], 1e-13, 1e-12);
  });

  test("k.nn.crossEntropy is the same function", () => {
    expect(k.nn.crossEntropy).toBe(F.crossEntropy);
  });
});

describe("crossEntropy with probability targets, nllLoss", () => {
  test("soft targets: -Σ_c t_c log p_c, mean over rows; label smoothing mixes in ε/C", () => {
    const probs = randomData(N * C, 3).map((v) => Math.abs(v));
    for (let i = 0; i < N; i++) {
      const z = sum(probs.slice(i * C, i * C + C));
      for (let c = 0; c < C; c++) probs[i * C + c]! /= z;
    }
    const loss = (eps: number) =>
      sum(Array.from({ length: N * C }, (_, j) => ((1 - eps) * probs[j]! + eps / C) * negLogProb(logits, Math.floor(j / C), j % C))) / N;
    const run = (eps: number) =>
      runRef((x: k.Tensor, t: k.Tensor) => F.crossEntropy(x, t, { labelSmoothing: eps }), [k.f32([N, C]), k.f32([N, C])], [logits, probs]);
    expectClose(run(0).values, [loss(0)], 1e-13, 1e-12);
    expectClose(run(0.3).values, [loss(0.3)], 1e-13, 1e-12);
  });

  test("nllLoss picks -input at the target", () => {
    const r = runRef((x: k.Tensor, t: k.Tensor) => F.nllLoss(x, t, { reduction: "none" }), [k.f32([N, C]), k.i32([N])], [logits, targets]);
    expectClose(
      r.values,
      targets.map((t, i) => (t === -100 ? 0 : -logits[i * C + t]!)),
      0,
      0,
    );
  });
});

describe("mseLoss", () => {
  const a = randomData(12, 4);
  const b = randomData(12, 5);
  const sq = a.map((v, i) => (v - b[i]!) ** 2);
  const run = (reduction: k.nn.functional.Reduction) =>
    runRef((x: k.Tensor, y: k.Tensor) => F.mseLoss(x, y, { reduction }), [k.f32([3, 4]), k.f32([3, 4])], [a, b]);
  test("mean, sum, none", () => {
    expectClose(run("mean").values, [sum(sq) / 12], 1e-14, 1e-12);
    expectClose(run("sum").values, [sum(sq)], 1e-14, 1e-12);
    expectClose(run("none").values, sq, 1e-14, 1e-12);
  });
});

describe("binaryCrossEntropyWithLogits", () => {
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  const x = randomData(8, 6).map((v) => v * 4);
  const y = [0, 1, 1, 0, 0.3, 1, 0, 0.8];
  const direct = (pw = 1) => x.map((v, i) => -(pw * y[i]! * Math.log(sigmoid(v)) + (1 - y[i]!) * Math.log(1 - sigmoid(v))));

  test("matches -[y log σ(x) + (1-y) log(1-σ(x))] on moderate values", () => {
    const r = runRef((xt: k.Tensor, yt: k.Tensor) => F.binaryCrossEntropyWithLogits(xt, yt, { reduction: "none" }), [k.f32([8]), k.f32([8])], [x, y]);
    expectClose(r.values, direct(), 1e-12, 1e-10);
    const mean = runRef((xt: k.Tensor, yt: k.Tensor) => F.binaryCrossEntropyWithLogits(xt, yt), [k.f32([8]), k.f32([8])], [x, y]);
    expectClose(mean.values, [sum(direct()) / 8], 1e-12, 1e-10);
  });

  test("posWeight scales the positive term; weight scales each element", () => {
    const pw = 2.5;
    const w = randomData(8, 7);
    const r = runRef(
      (xt: k.Tensor, yt: k.Tensor, p: k.Tensor, wt: k.Tensor) => F.binaryCrossEntropyWithLogits(xt, yt, { posWeight: p, weight: wt, reduction: "sum" }),
      [k.f32([2, 4]), k.f32([2, 4]), k.f32([4]), k.f32([2, 4])],
      [x, y, [pw, pw, pw, pw], w],
    );
    expectClose(r.values, [sum(direct(pw).map((v, i) => v * w[i]!))], 1e-12, 1e-10);
  });

  test("stable at large logits (the naive form overflows)", () => {
    const r = runRef(
      (xt: k.Tensor, yt: k.Tensor) => F.binaryCrossEntropyWithLogits(xt, yt, { reduction: "none" }),
      [k.f32([4]), k.f32([4])],
      [
        [800, -800, 800, -800],
        [0, 1, 1, 0],
      ],
    );
    expectClose(r.values, [800, 800, 0, 0], 1e-12, 1e-12);
  });
});

describe("loss errors name the user's line", () => {
  test("target shape and dtype mismatches", () => {
    let line = -1;
    const ce = () => traceFunction("t", (x: k.Tensor, t: k.Tensor) => ((line = callerLine()), F.crossEntropy(x, t)), [k.f32([8, 10]), k.i32([4])]);
    expect(ce).toThrow(/^shape mismatch in crossEntropy: input \[8,10\] needs target \[8\], got \[4\] at .*functional-loss\.test\.ts:\d+/);
    expect(ce).toThrow(`functional-loss.test.ts:${line}:`);
    const bool = () => traceFunction("t", (x: k.Tensor, t: k.Tensor) => F.crossEntropy(x, t), [k.f32([8, 10]), k.bool([8])]);
    expect(bool).toThrow("dtype mismatch in crossEntropy: class-index target must be i32, got bool[8]");
    const mse = () => traceFunction("t", (x: k.Tensor, t: k.Tensor) => F.mseLoss(x, t), [k.f32([8, 1]), k.f32([8])]);
    expect(mse).toThrow("shape mismatch in mseLoss: input [8,1] and target [8] differ");
    const smoothing = () => traceFunction("t", (x: k.Tensor, t: k.Tensor) => F.crossEntropy(x, t, { labelSmoothing: 1.5 }), [k.f32([8, 10]), k.i32([8])]);
    expect(smoothing).toThrow("crossEntropy: labelSmoothing must be in [0, 1], got 1.5");
  });
});
