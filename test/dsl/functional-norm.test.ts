// softmax, logSoftmax and layerNorm against formulas evaluated here in plain JS loops, on
// the float64 reference interpreter; stability at large logits; shape errors.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { callerLine, randomData } from "./functional-helpers.ts";

const F = k.nn.functional;

/** Softmax of each row of a [rows, cols] array, straight from the definition exp(x_i) / Σ exp(x_j). */
function softmaxRows(x: number[], cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / cols; r++) {
    const row = x.slice(r * cols, (r + 1) * cols);
    const z = row.reduce((s, v) => s + Math.exp(v), 0);
    out.push(...row.map((v) => Math.exp(v) / z));
  }
  return out;
}

describe("softmax / logSoftmax", () => {
  const xData = randomData(4 * 7, 1).map((v) => v * 3);

  test("last dim: matches the definition and rows sum to 1", () => {
    const r = runRef((x: k.Tensor) => F.softmax(x, -1), [k.f32([4, 7])], [xData]);
    expectClose(r.values, softmaxRows(xData, 7), 1e-14, 1e-12);
    for (let row = 0; row < 4; row++) expect(r.values.slice(row * 7, row * 7 + 7).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 14);
  });

  test("dim 0 of a [4,7] equals softmax over rows of its transpose", () => {
    const r = runRef((x: k.Tensor) => F.softmax(x, 0), [k.f32([4, 7])], [xData]);
    const transposed = Array.from({ length: 28 }, (_, i) => xData[(i % 4) * 7 + Math.floor(i / 4)]!);
    const expectedT = softmaxRows(transposed, 4);
    const expected = Array.from({ length: 28 }, (_, i) => expectedT[(i % 7) * 4 + Math.floor(i / 7)]!);
    expectClose(r.values, expected, 1e-14, 1e-12);
  });

  test("logSoftmax = log of the definition, middle dim of a 3-d tensor", () => {
    const data = randomData(2 * 5 * 3, 2);
    const r = runRef((x: k.Tensor) => F.logSoftmax(x, 1), [k.f32([2, 5, 3])], [data]);
    const expected = new Array<number>(30);
    for (let a = 0; a < 2; a++)
      for (let c = 0; c < 3; c++) {
        const idx = (b: number) => (a * 5 + b) * 3 + c;
        const z = [0, 1, 2, 3, 4].reduce((s, b) => s + Math.exp(data[idx(b)]!), 0);
        for (let b = 0; b < 5; b++) expected[idx(b)] = Math.log(Math.exp(data[idx(b)]!) / z);
      }
    expectClose(r.values, expected, 1e-13, 1e-12);
  });

  test("large logits do not overflow (shift by the row max)", () => {
    const r = runRef((x: k.Tensor) => [F.softmax(x, 1), F.logSoftmax(x, 1)], [k.f32([1, 3])], [[1000, 1001, 999]]);
    const e = [Math.exp(-1), 1, Math.exp(-2)];
    const z = e[0]! + e[1]! + e[2]!;
    expectClose(
      r.values,
      e.map((v) => v / z),
      1e-15,
      1e-12,
    );
    expectClose(
      Array.from(r.outputs[1]!.data),
      e.map((v) => Math.log(v / z)),
      1e-13,
      1e-12,
    );
  });

  test("bad dim is an error at the user's line", () => {
    let line = -1;
    const run = () => traceFunction("t", (x: k.Tensor) => ((line = callerLine()), F.softmax(x, 2)), [k.f32([2, 3])]);
    expect(run).toThrow(/^softmax: dim 2 out of range for a 2-d tensor at .*functional-norm\.test\.ts:\d+/);
    expect(() => run()).toThrow(`functional-norm.test.ts:${line}:`);
  });
});

describe("layerNorm", () => {
  /** Per group of `size` trailing elements: (x - mean) / sqrt(biased var + eps) * w + b. */
  function layerNormLoop(x: number[], size: number, w?: number[], b?: number[], eps = 1e-5): number[] {
    const out: number[] = [];
    for (let g = 0; g < x.length / size; g++) {
      const row = x.slice(g * size, (g + 1) * size);
      const mean = row.reduce((s, v) => s + v, 0) / size;
      const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / size;
      row.forEach((v, i) => out.push(((v - mean) / Math.sqrt(variance + eps)) * (w ? w[i]! : 1) + (b ? b[i]! : 0)));
    }
    return out;
  }

  test("last dim with weight and bias", () => {
    const x = randomData(3 * 8, 3).map((v) => v * 4 + 1);
    const w = randomData(8, 4);
    const b = randomData(8, 5);
    const r = runRef((xt: k.Tensor, wt: k.Tensor, bt: k.Tensor) => F.layerNorm(xt, [8], wt, bt), [k.f32([3, 8]), k.f32([8]), k.f32([8])], [x, w, b]);
    expectClose(r.values, layerNormLoop(x, 8, w, b), 1e-12, 1e-12);
  });

  test("two normalized dims, no affine, custom eps", () => {
    const x = randomData(2 * 3 * 4 * 5, 6);
    const r = runRef((xt: k.Tensor) => F.layerNorm(xt, [4, 5], null, null, 0.1), [k.f32([2, 3, 4, 5])], [x]);
    expectClose(r.values, layerNormLoop(x, 20, undefined, undefined, 0.1), 1e-12, 1e-12);
  });

  test("shape errors", () => {
    const trace = (fn: (x: k.Tensor, w: k.Tensor) => unknown, ws: number[]) => () => traceFunction("t", fn, [k.f32([2, 6]), k.f32(ws)]);
    expect(trace((x) => F.layerNorm(x, [5]), [6])).toThrow(/^shape mismatch in layerNorm: input \[2,6\] does not end with normalizedShape \[5\] at /);
    expect(trace((x, w) => F.layerNorm(x, 6, w), [5])).toThrow("shape mismatch in layerNorm: weight [5] must equal normalizedShape [6]");
  });
});

describe("groupNorm / batchNorm", () => {
  const [n, c, h, w] = [2, 4, 2, 3];
  const x = randomData(n * c * h * w, 7).map((v) => v * 2 + 0.5);
  const gamma = randomData(c, 8);
  const beta = randomData(c, 9);
  const idx = (b: number, ch: number, s: number) => (b * c + ch) * h * w + s;
  /** Writes the standardized values of x at the listed flat positions into `out`. */
  const normalizeGroup = (out: number[], positions: number[], eps: number) => {
    const mean = positions.reduce((a, p) => a + x[p]!, 0) / positions.length;
    const variance = positions.reduce((a, p) => a + (x[p]! - mean) ** 2, 0) / positions.length;
    for (const p of positions) out[p] = (x[p]! - mean) / Math.sqrt(variance + eps);
  };
  const affine = (out: number[]) => out.map((v, p) => v * gamma[Math.floor(p / (h * w)) % c]! + beta[Math.floor(p / (h * w)) % c]!);

  test("groupNorm: 2 groups of 2 channels, each over its channels and all pixels", () => {
    const out = new Array<number>(x.length);
    for (let b = 0; b < n; b++)
      for (let g = 0; g < 2; g++) {
        const positions: number[] = [];
        for (let ch = g * 2; ch < g * 2 + 2; ch++) for (let s = 0; s < h * w; s++) positions.push(idx(b, ch, s));
        normalizeGroup(out, positions, 1e-5);
      }
    const r = runRef((xt: k.Tensor, g: k.Tensor, bt: k.Tensor) => F.groupNorm(xt, 2, g, bt), [k.f32([n, c, h, w]), k.f32([c]), k.f32([c])], [x, gamma, beta]);
    expectClose(r.values, affine(out), 1e-12, 1e-12);
  });

  test("batchNorm in training: per channel over batch and pixels", () => {
    const out = new Array<number>(x.length);
    for (let ch = 0; ch < c; ch++) {
      const positions: number[] = [];
      for (let b = 0; b < n; b++) for (let s = 0; s < h * w; s++) positions.push(idx(b, ch, s));
      normalizeGroup(out, positions, 1e-3);
    }
    const r = runRef(
      (xt: k.Tensor, g: k.Tensor, bt: k.Tensor) => F.batchNorm(xt, null, null, { weight: g, bias: bt, training: true, eps: 1e-3 }),
      [k.f32([n, c, h, w]), k.f32([c]), k.f32([c])],
      [x, gamma, beta],
    );
    expectClose(r.values, affine(out), 1e-12, 1e-12);
  });

  test("batchNorm in eval uses the running statistics", () => {
    const mean = [0.1, -0.2, 0.3, 0];
    const variance = [1.5, 0.5, 2, 1];
    const r = runRef((xt: k.Tensor, m: k.Tensor, v: k.Tensor) => F.batchNorm(xt, m, v), [k.f32([n, c, h, w]), k.f32([c]), k.f32([c])], [x, mean, variance]);
    const ch = (p: number) => Math.floor(p / (h * w)) % c;
    expectClose(
      r.values,
      x.map((v, p) => (v - mean[ch(p)]!) / Math.sqrt(variance[ch(p)]! + 1e-5)),
      1e-12,
      1e-12,
    );
  });

  test("channel errors", () => {
    expect(() => traceFunction("t", (xt: k.Tensor) => F.groupNorm(xt, 3), [k.f32([2, 4, 5])])).toThrow(
      "shape mismatch in groupNorm: input [2,4,5] has 4 channels, not divisible into 3 groups",
    );
    expect(() => traceFunction("t", (xt: k.Tensor, m: k.Tensor) => F.batchNorm(xt, m, m), [k.f32([2, 4, 5]), k.f32([3])])).toThrow(
      "shape mismatch in batchNorm: runningMean [3] must be [4], one per channel",
    );
  });
});
