// maxPool2d and avgPool2d against explicit window loops written here, on the float64
// reference interpreter (padding, dilation, non-square kernels, countIncludePad, errors).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { at4, callerLine, numelOf, randomData } from "./functional-helpers.ts";

const F = k.nn.functional;
type Pair = [number, number];

interface PoolCase {
  name: string;
  x: [number, number, number, number];
  kernel: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

/** Visits each output position with the in-bounds input values of its window. */
function poolLoop(x: number[], c: PoolCase, combine: (values: number[], windowSize: number) => number): { out: number[]; shape: number[] } {
  const [n, ch, h, w] = c.x;
  const [kh, kw] = c.kernel;
  const [sh, sw] = c.stride ?? c.kernel;
  const [ph, pw] = c.padding ?? [0, 0];
  const [dh, dw] = c.dilation ?? [1, 1];
  const oh = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  const shape = [n, ch, oh, ow];
  const out = new Array<number>(numelOf(shape));
  for (let b = 0; b < n; b++)
    for (let cc = 0; cc < ch; cc++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          const values: number[] = [];
          for (let a = 0; a < kh; a++)
            for (let e = 0; e < kw; e++) {
              const y = i * sh - ph + a * dh;
              const z = j * sw - pw + e * dw;
              if (y >= 0 && y < h && z >= 0 && z < w) values.push(x[at4(c.x, b, cc, y, z)]!);
            }
          out[at4(shape, b, cc, i, j)] = combine(values, kh * kw);
        }
  return { out, shape };
}

const cases: PoolCase[] = [
  { name: "2x2, default stride = kernel", x: [2, 3, 6, 8], kernel: [2, 2] },
  { name: "3x3, stride 2, padding 1 (odd input)", x: [1, 2, 7, 7], kernel: [3, 3], stride: [2, 2], padding: [1, 1] },
  { name: "non-square 3x2, stride (1,2), padding (1,0)", x: [2, 1, 5, 6], kernel: [3, 2], stride: [1, 2], padding: [1, 0] },
  { name: "kernel 2 stride 3 (gaps between windows, leftover rows)", x: [1, 2, 8, 7], kernel: [2, 2], stride: [3, 3] },
];

describe("maxPool2d", () => {
  const withDilation: PoolCase[] = [
    ...cases,
    { name: "dilation (2,1), padding (2,1)", x: [1, 2, 9, 6], kernel: [3, 3], stride: [2, 1], padding: [2, 1], dilation: [2, 1] },
  ];
  test.each(withDilation)("$name", (c) => {
    const xData = randomData(numelOf(c.x), 7);
    const r = runRef(
      (x: k.Tensor) => F.maxPool2d(x, c.kernel, { stride: c.stride ?? null, padding: c.padding ?? 0, dilation: c.dilation ?? 1 }),
      [k.f32(c.x)],
      [xData],
    );
    const expected = poolLoop(xData, c, (v) => Math.max(...v));
    expect(r.shape).toEqual(expected.shape);
    expectClose(r.values, expected.out, 0, 0);
  });

  test("padding never wins over negative values (pads with -inf)", () => {
    const r = runRef((x: k.Tensor) => F.maxPool2d(x, 3, { stride: 1, padding: 1 }), [k.f32([1, 1, 2, 2])], [[-5, -6, -7, -8]]);
    expect(r.values).toEqual([-5, -5, -5, -5]);
  });

  test("unbatched [C,H,W] and i32 input", () => {
    const xData = randomData(2 * 4 * 4, 8).map((v) => Math.round(v * 100));
    const r = runRef((x: k.Tensor) => F.maxPool2d(x, 2), [k.i32([2, 4, 4])], [xData]);
    expect(r.shape).toEqual([2, 2, 2]);
    expect(r.outputs[0]!.dtype).toBe("i32");
    expect(r.values).toEqual(poolLoop(xData, { name: "", x: [1, 2, 4, 4], kernel: [2, 2] }, (v) => Math.max(...v)).out);
  });
});

describe("avgPool2d", () => {
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  test.each(cases)("$name (countIncludePad: zeros count)", (c) => {
    const xData = randomData(numelOf(c.x), 9);
    const r = runRef((x: k.Tensor) => F.avgPool2d(x, c.kernel, { stride: c.stride ?? null, padding: c.padding ?? 0 }), [k.f32(c.x)], [xData]);
    const expected = poolLoop(xData, c, (v, size) => v.reduce((a, b) => a + b, 0) / size);
    expect(r.shape).toEqual(expected.shape);
    expectClose(r.values, expected.out, 1e-12, 1e-12);
  });

  test.each(cases.filter((c) => c.padding))("$name (countIncludePad false: mean of real elements)", (c) => {
    const xData = randomData(numelOf(c.x), 10);
    const r = runRef(
      (x: k.Tensor) => F.avgPool2d(x, c.kernel, { stride: c.stride ?? null, padding: c.padding ?? 0, countIncludePad: false }),
      [k.f32(c.x)],
      [xData],
    );
    expectClose(r.values, poolLoop(xData, c, mean).out, 1e-12, 1e-12);
  });

  test("divisorOverride", () => {
    const c: PoolCase = { name: "", x: [1, 1, 4, 4], kernel: [2, 2], padding: [1, 1] };
    const xData = randomData(16, 11);
    const r = runRef((x: k.Tensor) => F.avgPool2d(x, 2, { padding: 1, divisorOverride: 3 }), [k.f32(c.x)], [xData]);
    expectClose(r.values, poolLoop(xData, c, (v) => v.reduce((a, b) => a + b, 0) / 3).out, 1e-12, 1e-12);
  });

  test("i32 input averages to f32", () => {
    const r = runRef((x: k.Tensor) => F.avgPool2d(x, 2), [k.i32([1, 1, 2, 2])], [[1, 2, 3, 5]]);
    expect(r.outputs[0]!.dtype).toBe("f32");
    expect(r.values).toEqual([2.75]);
  });
});

describe("pool errors", () => {
  test("too much padding, too small input, bad rank, ceilMode; at the user's line", () => {
    let line = -1;
    const trace = (fn: (x: k.Tensor) => unknown, shape: number[]) => () => traceFunction("t", fn, [k.f32(shape)]);
    expect(trace((x) => F.maxPool2d(x, 2, { padding: 2 }), [1, 1, 8, 8])).toThrow(
      /^maxPool2d: padding 2 should be at most half of the kernel size 2 at .*functional-pool\.test\.ts:\d+:\d+/,
    );
    expect(trace((x) => F.avgPool2d(x, 5), [1, 1, 4, 8])).toThrow(/^shape mismatch in avgPool2d: input \[1,1,4,8\] is smaller than the kernel 5x5/);
    expect(trace((x) => F.maxPool2d(x, 2, { ceilMode: true }), [1, 1, 4, 4])).toThrow("maxPool2d: ceilMode=true is not supported");
    const bad = trace((x) => ((line = callerLine()), F.maxPool2d(x, 2)), [4, 4]);
    expect(bad).toThrow("shape mismatch in maxPool2d: input must be [N,C,H,W] or [C,H,W], got [4,4]");
    try {
      bad();
    } catch (e) {
      expect((e as k.KilnError).diag.loc?.line).toBe(line);
    }
  });
});
