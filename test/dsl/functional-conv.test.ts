// conv2d, convTranspose2d and linear against explicit loops written here, on the float64
// reference interpreter; plus graph size and error-location checks.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { KilnError } from "../../compiler/util/errors.ts";
import { traceFunction } from "../../dsl/trace.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { at4, callerLine, numelOf, randomData } from "./functional-helpers.ts";

const F = k.nn.functional;
type Pair = [number, number];

interface ConvCase {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride?: Pair;
  padLow?: Pair;
  padHigh?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** Direct definition: out[n,o,i,j] = b[o] + Σ x[n, g*Cg+c, i*s - p + kh*d, ...] * w[o, c, kh, kw]. */
function conv2dLoop(x: number[], w: number[], b: number[] | undefined, c: ConvCase): { out: number[]; shape: number[] } {
  const [n, , h, wd] = c.x;
  const [o, cg, kh, kw] = c.w;
  const [sh, sw] = c.stride ?? [1, 1];
  const [pt, pl] = c.padLow ?? [0, 0];
  const [pb, pr] = c.padHigh ?? c.padLow ?? [0, 0];
  const [dh, dw] = c.dilation ?? [1, 1];
  const groups = c.groups ?? 1;
  const oh = Math.floor((h + pt + pb - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((wd + pl + pr - dw * (kw - 1) - 1) / sw) + 1;
  const shape = [n, o, oh, ow];
  const out = new Array<number>(numelOf(shape)).fill(0);
  for (let bi = 0; bi < n; bi++)
    for (let oc = 0; oc < o; oc++) {
      const g = Math.floor(oc / (o / groups));
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let acc = b ? b[oc]! : 0;
          for (let ci = 0; ci < cg; ci++)
            for (let a = 0; a < kh; a++)
              for (let e = 0; e < kw; e++) {
                const ih = i * sh - pt + a * dh;
                const iw = j * sw - pl + e * dw;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += x[at4(c.x, bi, g * cg + ci, ih, iw)]! * w[at4(c.w, oc, ci, a, e)]!;
              }
          out[at4(shape, bi, oc, i, j)] = acc;
        }
    }
  return { out, shape };
}

const convCases: (ConvCase & { padding?: k.nn.functional.Conv2dOptions["padding"] })[] = [
  { name: "3x3, batch 2, no padding", x: [2, 3, 7, 6], w: [4, 3, 3, 3], bias: true },
  { name: "stride 2, padding 1, non-square kernel", x: [1, 2, 8, 7], w: [3, 2, 3, 2], stride: [2, 2], padLow: [1, 1] },
  { name: "dilation 2, padding (2,1), stride (1,2)", x: [2, 2, 9, 8], w: [2, 2, 3, 3], stride: [1, 2], padLow: [2, 1], dilation: [2, 2], bias: true },
  { name: "groups 2, mixed stride/dilation", x: [2, 4, 7, 9], w: [6, 2, 2, 3], stride: [2, 1], padLow: [1, 1], dilation: [1, 2], groups: 2, bias: true },
  { name: "depthwise (groups = channels), 1x1 kernel", x: [1, 3, 4, 5], w: [3, 1, 1, 1], groups: 3 },
  { name: "depthwise 3x3 stride 3", x: [2, 3, 7, 7], w: [6, 1, 3, 3], stride: [3, 3], groups: 3 },
  {
    name: 'padding "same" with an even kernel (extra pad on the high side)',
    x: [1, 2, 5, 6],
    w: [2, 2, 4, 2],
    padLow: [1, 0],
    padHigh: [2, 1],
    padding: "same",
  },
];

describe("conv2d", () => {
  test.each(convCases)("$name", (c) => {
    const xData = randomData(numelOf(c.x), 1);
    const wData = randomData(numelOf(c.w), 2);
    const bData = randomData(c.w[0], 3);
    const padding = c.padding ?? c.padLow ?? 0;
    const opts = { stride: c.stride ?? 1, padding, dilation: c.dilation ?? 1, groups: c.groups ?? 1 };
    const r = c.bias
      ? runRef((x: k.Tensor, w: k.Tensor, b: k.Tensor) => F.conv2d(x, w, b, opts), [k.f32(c.x), k.f32(c.w), k.f32([c.w[0]])], [xData, wData, bData])
      : runRef((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, opts), [k.f32(c.x), k.f32(c.w)], [xData, wData]);
    const expected = conv2dLoop(xData, wData, c.bias ? bData : undefined, c);
    expect(r.shape).toEqual(expected.shape);
    expectClose(r.values, expected.out, 1e-12, 1e-12);
  });

  test("unbatched [C,H,W] input gives [O,OH,OW]", () => {
    const c: ConvCase = { name: "", x: [1, 2, 5, 5], w: [3, 2, 3, 3], padLow: [1, 1] };
    const xData = randomData(50, 4);
    const wData = randomData(54, 5);
    const r = runRef((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, { padding: 1 }), [k.f32([2, 5, 5]), k.f32(c.w)], [xData, wData]);
    expect(r.shape).toEqual([3, 5, 5]);
    expectClose(r.values, conv2dLoop(xData, wData, undefined, c).out, 1e-12, 1e-12);
  });

  test("the graph is a handful of movement nodes and one dot", () => {
    const { graph } = traceFunction("conv", (x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, { stride: 2, padding: 1, dilation: 2, groups: 2 }), [
      k.f32([2, 4, 16, 16]),
      k.f32([8, 2, 3, 3]),
    ]);
    const ops = graph.nodes.map((n) => n.op);
    expect(ops.filter((op) => op === "dot")).toHaveLength(1);
    expect(ops.filter((op) => ["reduce_sum", "reduce_max", "mul", "add"].includes(op))).toHaveLength(0);
    expect(graph.nodes.length).toBeLessThanOrEqual(25);
  });
});

/** Scatter definition: every input pixel adds x * w[c, o, kh, kw] at (i*s - p + kh*d, …). */
function convTranspose2dLoop(
  x: number[],
  w: number[],
  b: number[] | undefined,
  xs: number[],
  ws: number[],
  o: { stride: Pair; padding: Pair; outputPadding: Pair; dilation: Pair; groups: number },
): { out: number[]; shape: number[] } {
  const [n, cin, h, wd] = xs as [number, number, number, number];
  const [, og, kh, kw] = ws as [number, number, number, number];
  const g = o.groups;
  const oh = (h - 1) * o.stride[0] - 2 * o.padding[0] + o.dilation[0] * (kh - 1) + o.outputPadding[0] + 1;
  const ow = (wd - 1) * o.stride[1] - 2 * o.padding[1] + o.dilation[1] * (kw - 1) + o.outputPadding[1] + 1;
  const shape = [n, og * g, oh, ow];
  const out = new Array<number>(numelOf(shape)).fill(0);
  for (let bi = 0; bi < n; bi++)
    for (let c = 0; c < cin; c++) {
      const group = Math.floor(c / (cin / g));
      for (let i = 0; i < h; i++)
        for (let j = 0; j < wd; j++)
          for (let oc = 0; oc < og; oc++)
            for (let a = 0; a < kh; a++)
              for (let e = 0; e < kw; e++) {
                const y = i * o.stride[0] - o.padding[0] + a * o.dilation[0];
                const z = j * o.stride[1] - o.padding[1] + e * o.dilation[1];
                if (y < 0 || y >= oh || z < 0 || z >= ow) continue;
                out[at4(shape, bi, group * og + oc, y, z)]! += x[at4(xs, bi, c, i, j)]! * w[at4(ws, c, oc, a, e)]!;
              }
    }
  if (b) for (let i = 0; i < out.length; i++) out[i]! += b[Math.floor(i / (oh * ow)) % (og * g)]!;
  return { out, shape };
}

describe("convTranspose2d", () => {
  const cases = [
    {
      name: "stride 1, no padding",
      x: [1, 2, 4, 3],
      w: [2, 3, 3, 3],
      stride: [1, 1],
      padding: [0, 0],
      outputPadding: [0, 0],
      dilation: [1, 1],
      groups: 1,
      bias: true,
    },
    {
      name: "stride 2, padding 1, outputPadding 1, batch 2",
      x: [2, 3, 4, 5],
      w: [3, 2, 3, 3],
      stride: [2, 2],
      padding: [1, 1],
      outputPadding: [1, 1],
      dilation: [1, 1],
      groups: 1,
      bias: false,
    },
    {
      name: "groups 2, stride (2,3), dilation (2,1), non-square kernel",
      x: [2, 4, 3, 4],
      w: [4, 3, 3, 2],
      stride: [2, 3],
      padding: [0, 1],
      outputPadding: [1, 2],
      dilation: [2, 1],
      groups: 2,
      bias: true,
    },
    {
      name: "padding beyond dilation*(k-1) crops the border",
      x: [1, 1, 5, 4],
      w: [1, 2, 2, 2],
      stride: [2, 2],
      padding: [2, 1],
      outputPadding: [0, 0],
      dilation: [1, 1],
      groups: 1,
      bias: false,
    },
  ] as const;
  test.each(cases)("$name", (c) => {
    const o = {
      stride: [...c.stride] as Pair,
      padding: [...c.padding] as Pair,
      outputPadding: [...c.outputPadding] as Pair,
      dilation: [...c.dilation] as Pair,
      groups: c.groups,
    };
    const xData = randomData(numelOf(c.x), 11);
    const wData = randomData(numelOf(c.w), 12);
    const outChannels = c.w[1] * c.groups;
    const bData = randomData(outChannels, 13);
    const r = c.bias
      ? runRef((x: k.Tensor, w: k.Tensor, b: k.Tensor) => F.convTranspose2d(x, w, b, o), [k.f32(c.x), k.f32(c.w), k.f32([outChannels])], [xData, wData, bData])
      : runRef((x: k.Tensor, w: k.Tensor) => F.convTranspose2d(x, w, null, o), [k.f32(c.x), k.f32(c.w)], [xData, wData]);
    const expected = convTranspose2dLoop(xData, wData, c.bias ? bData : undefined, [...c.x], [...c.w], o);
    expect(r.shape).toEqual(expected.shape);
    expectClose(r.values, expected.out, 1e-12, 1e-12);
  });

  test("is the adjoint of conv2d: <conv(x), y> = <x, convT(y)> with the same weight", () => {
    const opts = { stride: 2, padding: 1, dilation: 1, groups: 1 };
    const xData = randomData(2 * 7 * 7, 21);
    const wData = randomData(3 * 2 * 3 * 3, 22);
    const yData = randomData(3 * 4 * 4, 23);
    const conv = runRef((x: k.Tensor, w: k.Tensor) => F.conv2d(x, w, null, opts), [k.f32([1, 2, 7, 7]), k.f32([3, 2, 3, 3])], [xData, wData]);
    const convT = runRef((y: k.Tensor, w: k.Tensor) => F.convTranspose2d(y, w, null, opts), [k.f32([1, 3, 4, 4]), k.f32([3, 2, 3, 3])], [yData, wData]);
    expect(conv.shape).toEqual([1, 3, 4, 4]);
    expect(convT.shape).toEqual([1, 2, 7, 7]);
    const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
    expect(dot(conv.values, yData)).toBeCloseTo(dot(xData, convT.values), 10);
  });
});

describe("linear", () => {
  test("y = x W^T + b on a batch of 3-d input", () => {
    const xData = randomData(2 * 3 * 4, 31);
    const wData = randomData(5 * 4, 32);
    const bData = randomData(5, 33);
    const r = runRef((x: k.Tensor, w: k.Tensor, b: k.Tensor) => F.linear(x, w, b), [k.f32([2, 3, 4]), k.f32([5, 4]), k.f32([5])], [xData, wData, bData]);
    const expected: number[] = [];
    for (let row = 0; row < 6; row++)
      for (let o = 0; o < 5; o++) {
        let acc = bData[o]!;
        for (let i = 0; i < 4; i++) acc += xData[row * 4 + i]! * wData[o * 4 + i]!;
        expected.push(acc);
      }
    expect(r.shape).toEqual([2, 3, 5]);
    expectClose(r.values, expected, 1e-12, 1e-12);
  });
});

describe("errors name the user's line", () => {
  function traceError(run: () => unknown): { error: KilnError } {
    try {
      run();
    } catch (e) {
      if (e instanceof KilnError) return { error: e };
      throw e;
    }
    throw new Error("expected a KilnError");
  }
  const traced = (body: (x: k.Tensor, w: k.Tensor) => unknown, xs: number[], ws: number[]) => () => traceFunction("t", body, [k.f32(xs), k.f32(ws)]);

  test("conv2d channel mismatch", () => {
    let line = -1;
    const { error } = traceError(traced((x, w) => ((line = callerLine()), F.conv2d(x, w)), [1, 3, 8, 8], [16, 4, 3, 3]));
    expect(error.message).toContain("shape mismatch in conv2d: input [1,3,8,8] has 3 channels but weight [16,4,3,3] expects 4 (groups=1)");
    expect(error.diag.code).toBe("shape-mismatch");
    expect(error.diag.loc?.file).toMatch(/functional-conv\.test\.ts$/);
    expect(error.diag.loc?.line).toBe(line);
  });

  test("conv2d groups that do not divide the output channels", () => {
    const { error } = traceError(traced((x, w) => F.conv2d(x, w, null, { groups: 2 }), [1, 4, 8, 8], [5, 2, 3, 3]));
    expect(error.message).toMatch(
      /^shape mismatch in conv2d: weight \[5,2,3,3\] has 5 output channels, not divisible by groups=2 at .*functional-conv\.test\.ts:\d+:\d+/,
    );
  });

  test("conv2d kernel larger than the padded input", () => {
    const { error } = traceError(traced((x, w) => F.conv2d(x, w, null, { dilation: 3 }), [1, 1, 5, 5], [1, 1, 3, 3]));
    expect(error.message).toContain("shape mismatch in conv2d: input [1,1,5,5] (padded to 5x5) is smaller than the kernel 3x3 with dilation [3,3]");
  });

  test("convTranspose2d channel mismatch and bad outputPadding", () => {
    const a = traceError(traced((x, w) => F.convTranspose2d(x, w), [1, 3, 4, 4], [4, 2, 3, 3]));
    expect(a.error.message).toContain("shape mismatch in convTranspose2d: input [1,3,4,4] has 3 channels but weight [4,2,3,3] expects 4");
    const b = traceError(traced((x, w) => F.convTranspose2d(x, w, null, { stride: 2, outputPadding: 2 }), [1, 4, 4, 4], [4, 2, 3, 3]));
    expect(b.error.message).toContain("outputPadding 2 must be smaller than stride or dilation");
  });

  test("linear feature mismatch and bad bias", () => {
    const a = traceError(traced((x, w) => F.linear(x, w), [8, 3], [5, 4]));
    expect(a.error.message).toContain("shape mismatch in linear: input [8,3] has 3 features but weight [5,4] expects 4");
    let line = -1;
    const b = traceError(() =>
      traceFunction("t", (x: k.Tensor, w: k.Tensor, bias: k.Tensor) => ((line = callerLine()), F.linear(x, w, bias)), [
        k.f32([2, 4]),
        k.f32([5, 4]),
        k.f32([4]),
      ]),
    );
    expect(b.error.message).toContain("shape mismatch in linear: bias [4] must be [5]");
    expect(b.error.diag.loc?.line).toBe(line);
  });
});
