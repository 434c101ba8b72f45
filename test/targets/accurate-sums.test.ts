// Long f32 reductions on every target against float64 (compiler/kernel/block-sum.ts): sums of
// 1M–100M elements (positive, mixed-sign, offset data), the composites built on sums (mean,
// var, logsumexp, softmax, a norm), column sums split across wasm threads, and sums that
// cross 2^24 and 2^29 (where a lone f32 accumulator stops growing). References are float64
// loops over the same f32 inputs, written here. Data of 100M elements is generated in the
// graph from a small pattern broadcast over rows, so no target needs a 400 MB input buffer
// (WebGPU could not bind one: 128 MiB per binding); `npm run test:full` adds a real 100M
// host buffer on js and wasm, and the mixed and offset data at 16M.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { compileJs } from "../../targets/js.ts";
import { compileWasm } from "../../targets/wasm.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { traceFunction, type Specs } from "../../dsl/trace.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { FULL } from "../util/full.ts";
import { emulateCuda, hasCxx } from "../util/nvcc.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const M = 1 << 20;
const PATTERN = 16384;

// ---- data and float64 references ----

/** Uniform-ish values in [0, 1) with 14-bit fractions (LCG), so `1000 + u` is exact in f32. */
function uniform(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = (s >>> 18) / 16384;
  }
  return x;
}
function shifted(x: Float32Array, by: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + by;
  return out;
}

/** Neumaier-compensated float64 sum of f(x_i): exact to far below the f32 errors measured. */
function sum64(n: number, f: (i: number) => number): number {
  let s = 0;
  let c = 0;
  for (let i = 0; i < n; i++) {
    const v = f(i);
    const t = s + v;
    c += Math.abs(s) >= Math.abs(v) ? s - t + v : v - t + s;
    s = t;
  }
  return s + c;
}

// ---- targets ----

interface Target {
  readonly name: string;
  /** Largest host input it takes (WebGPU: 128 MiB per binding). */
  readonly maxInput: number;
  /** Largest in-graph reduction it runs in a test's time. */
  readonly maxInGraph: number;
  run(g: Graph, inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
}

const wasmRunners: WasmArtifactRunner[] = [];
afterAll(async () => void (await Promise.all(wasmRunners.map((r) => r.close()))));

const wasmTarget = (threads: number): Target => ({
  name: `wasm (${threads} thread${threads > 1 ? "s" : ""})`,
  maxInput: FULL && threads === 1 ? 128 * M : 16 * M,
  maxInGraph: 128 * M,
  run: async (g, inputs) => {
    const runner = await WasmArtifactRunner.create(compileWasm(g).artifact, { threads, minParallelWork: 0 });
    wasmRunners.push(runner);
    return runner.run(inputs);
  },
});

const targets: Target[] = [
  { name: "js", maxInput: FULL ? 128 * M : 16 * M, maxInGraph: 128 * M, run: async (g, inputs) => new JsArtifactRunner(compileJs(g).artifact).run(inputs) },
  wasmTarget(1),
  wasmTarget(2),
];

const gpu = await webGpuTestEnv();
if (gpu.context) {
  const device = gpu.context;
  targets.push({
    name: "webgpu",
    maxInput: 16 * M,
    maxInGraph: 128 * M,
    run: async (g, inputs) => {
      const runner = await WebGpuArtifactRunner.create(device.device, compileWebGpu(g, { limits: device.limits }).artifact);
      try {
        return await runner.run(inputs);
      } finally {
        runner.destroy();
      }
    },
  });
}

// ---- cases ----

interface Case {
  readonly name: string;
  readonly graph: Graph;
  readonly inputs: Record<string, HostTensor>;
  /** Float64 values of the outputs, in output order. */
  readonly want: readonly number[];
  /** Error allowed, relative to `scale` (Σ|terms| for a sum). */
  readonly rtol: number;
  readonly scale: readonly number[];
  /** Elements reduced (host input or in-graph), to skip sizes a target cannot hold. */
  readonly hostElements: number;
  readonly inGraphElements: number;
}

const f32Input = (data: Float32Array): HostTensor => ({ dtype: "f32", shape: [data.length], data });
const trace = (name: string, fn: (...xs: k.Tensor[]) => k.Tensor | k.Tensor[], specs: Specs): Graph => traceFunction(name, fn as never, specs).graph;

function sumCase(label: string, x: Float32Array): Case {
  const n = x.length;
  return {
    name: `sum of ${n} ${label}`,
    graph: trace("sum", (t) => t.sum(), [k.f32([n])]),
    inputs: { t: f32Input(x) },
    want: [sum64(n, (i) => x[i]!)],
    rtol: 1e-6,
    scale: [sum64(n, (i) => Math.abs(x[i]!))],
    hostElements: n,
    inGraphElements: 0,
  };
}

/** exp-sum, mean, var, logsumexp, a softmax entry and an L2 norm of one vector. */
function compositeCases(x: Float32Array): Case[] {
  const n = x.length;
  const mean = sum64(n, (i) => x[i]!) / n;
  const expSum = sum64(n, (i) => Math.exp(x[i]!));
  const variance = sum64(n, (i) => (x[i]! - mean) ** 2) / (n - 1);
  const max = x.reduce((a, v) => Math.max(a, v), -Infinity);
  const norm = Math.sqrt(sum64(n, (i) => x[i]! * x[i]!));
  return [
    {
      name: `exp-sum, mean, var, logsumexp, softmax[7], norm of ${n} mixed-sign values`,
      graph: trace("composites", (t) => [t.exp().sum(), t.mean(), t.var(), t.logsumexp(0), t.softmax(0).slice([7, 8]).sum(), t.square().sum().sqrt()], [
        k.f32([n]),
      ]),
      inputs: { t: f32Input(x) },
      want: [expSum, mean, variance, Math.log(expSum), Math.exp(x[7]!) / expSum, norm],
      // exp and log each add an ulp or so of their own per element, hence 2e-6 there.
      rtol: 2e-6,
      scale: [expSum, sum64(n, (i) => Math.abs(x[i]!)) / n, variance, Math.abs(Math.log(expSum)) + max, Math.exp(x[7]!) / expSum, norm],
      hostElements: n,
      inGraphElements: 0,
    },
  ];
}

/**
 * rows × PATTERN elements that need no big buffer: a small pattern (a host input) broadcast
 * over rows in the graph, then summed as is, shifted by -0.5 and by +1000 (exact in f32).
 * Every row being equal, a target may compute a block once and add it up the tree (the
 * scheduler hoists loop-invariant sums): the rounding checked is the whole tree's, and its
 * equal-sized partial sums are the hardest case for rounding to stay unbiased.
 */
function broadcastCases(rows: number): Case[] {
  const pattern = uniform(PATTERN, rows);
  const n = rows * PATTERN;
  const positive = rows * sum64(PATTERN, (i) => pattern[i]!);
  return [
    {
      name: `sum of ${n} values broadcast in the graph (positive, and shifted by -0.5 and +1000)`,
      graph: trace(
        "broadcast",
        (t) => {
          const x = t.expand([rows, PATTERN]);
          return [x.sum(), x.sub(0.5).sum(), x.add(1000).sum()];
        },
        [k.f32([PATTERN])],
      ),
      inputs: { t: f32Input(pattern) },
      want: [positive, positive - 0.5 * n, positive + 1000 * n],
      rtol: 1e-6,
      scale: [positive, rows * sum64(PATTERN, (i) => Math.abs(pattern[i]! - 0.5)), positive + 1000 * n],
      hostElements: 0,
      inGraphElements: n,
    },
  ];
}

/**
 * Blocked sums over what lowering composes into their index: two non-adjacent axes (tails on
 * the inner one), a pad with a non-zero fill, a gather, and logsumexp rows (row kernels).
 */
function structureCases(): Case[] {
  const x = shifted(uniform(180_000, 5), -0.25);
  const idx = Int32Array.from(uniform(30_000, 6), (u) => Math.floor(u * 20_000));
  const at = (a: number, b: number, c: number): number => x[(a * 3 + b) * 200 + c]!;
  const axes02 = [0, 1, 2].map((b) => sum64(300 * 200, (i) => at(Math.floor(i / 200), b, i % 200)));
  const rowLse = [0, 1, 2].map((r) => Math.log(sum64(20_000, (i) => Math.exp(x[r * 20_000 + i]!))));
  const vec = x.subarray(0, 20_000);
  return [
    {
      name: "sum over axes 0 and 2 of [300, 3, 200]; padded sum; gathered sum; logsumexp of [3, 20000] rows",
      graph: trace(
        "structure",
        (t, i) => [
          t.reshape([300, 3, 200]).sum([0, 2]),
          t.slice([0, 20_000]).pad([5, 7], 1.5).sum(),
          t.slice([0, 20_000]).indexSelect(0, i!).sum(),
          t.slice([0, 60_000]).reshape([3, 20_000]).logsumexp(1),
        ],
        [k.f32([180_000]), k.i32([30_000])],
      ),
      inputs: { t: f32Input(x), i: { dtype: "i32", shape: [30_000], data: idx } },
      want: [...axes02, sum64(20_000, (i) => vec[i]!) + 12 * 1.5, sum64(30_000, (i) => vec[idx[i]!]!), ...rowLse],
      rtol: 1e-6,
      scale: [
        ...[0, 1, 2].map((b) => sum64(300 * 200, (i) => Math.abs(at(Math.floor(i / 200), b, i % 200)))),
        sum64(20_000, (i) => Math.abs(vec[i]!)) + 18,
        sum64(30_000, (i) => Math.abs(vec[idx[i]!]!)),
        ...rowLse.map((v) => Math.abs(v) + 1),
      ],
      hostElements: 180_000,
      inGraphElements: 0,
    },
  ];
}

/** c·ones(n) summed, with c a graph input (so simplify cannot fold it): n·c is exact. */
function saturationCase(n: number, c: number): Case {
  return {
    name: `sum(${c}·ones(${n})) = ${n * c} (past 2^${Math.floor(Math.log2(n * c))})`,
    graph: trace("ones", (t) => t.expand([n]).sum(), [k.f32([1])]),
    inputs: { t: f32Input(new Float32Array([c])) },
    want: [n * c],
    rtol: 0,
    scale: [n * c],
    hostElements: 0,
    inGraphElements: n,
  };
}

/** Column sums of [rows, 4]: the four outputs split across wasm threads, each a blocked sum. */
function columnCase(rows: number): Case {
  const x = uniform(rows * 4, 99);
  const cols = [0, 1, 2, 3];
  return {
    name: `column sums of [${rows}, 4]`,
    graph: trace("columns", (t) => t.reshape([rows, 4]).sum(0), [k.f32([rows * 4])]),
    inputs: { t: f32Input(x) },
    want: cols.map((c) => sum64(rows, (r) => x[r * 4 + c]!)),
    rtol: 1e-6,
    scale: cols.map((c) => sum64(rows, (r) => x[r * 4 + c]!)),
    hostElements: rows * 4,
    inGraphElements: 0,
  };
}

let cases: Case[] = [];
beforeAll(() => {
  cases = [];
  // `npm test`: every kind of data at 1M, positive at 16M; test:full adds the other 16M kinds and a 100M host buffer (js, wasm).
  for (const n of FULL ? [M, 16 * M] : [M]) {
    const u = uniform(n, n);
    cases.push(sumCase("positive values", u), sumCase("mixed-sign values", shifted(u, -0.5)), sumCase("values offset by 1000", shifted(u, 1000)));
  }
  if (!FULL) cases.push(sumCase("positive values", uniform(16 * M, 16 * M)));
  if (FULL) cases.push(sumCase("positive values", uniform(100_000_000, 3)));
  cases.push(...compositeCases(shifted(uniform(M, 7), -0.5).map((v) => v * 4)));
  cases.push(columnCase(M / 4), ...structureCases());
  cases.push(...broadcastCases(Math.ceil(100_000_000 / PATTERN)), ...broadcastCases(Math.ceil(20_000_000 / PATTERN)));
  cases.push(saturationCase(20_000_000, 1), saturationCase(16 * M, 64));
});

function check(c: Case, got: Record<string, HostTensor>): string[] {
  const values = Object.values(got).flatMap((t) => [...t.data]);
  return c.want.flatMap((w, i) => {
    const err = Math.abs(values[i]! - w) / c.scale[i]!;
    return err <= c.rtol ? [] : [`${c.name}: output ${i} = ${values[i]}, want ${w} (error ${err.toExponential(2)} of the scale, allowed ${c.rtol})`];
  });
}

describe.each(targets)("$name", (target) => {
  test("long sums and the composites built on them stay within 1e-6 of float64", async () => {
    const problems: string[] = [];
    for (const c of cases) {
      if (c.hostElements > target.maxInput || c.inGraphElements > target.maxInGraph) continue;
      problems.push(...check(c, await target.run(c.graph, c.inputs)));
    }
    expect(problems).toEqual([]);
  }, 120_000);
});

describe.runIf(hasCxx())("cuda (emulated on the CPU)", () => {
  test("long sums and the composites built on them stay within 1e-6 of float64", () => {
    // Emulated threads are slow: 1M-element inputs and 20M-element in-graph sums.
    const small = cases.filter((c) => c.hostElements <= M && c.inGraphElements <= 20_000_000);
    const compiled = small.map((c, i) => compileCuda(c.graph, { symbolPrefix: `s${i}_` }).artifact);
    const results = emulateCuda(small.map((c, i) => ({ artifact: compiled[i]!, inputs: c.inputs })));
    expect(small.flatMap((c, i) => check(c, results[i]!))).toEqual([]);
  }, 120_000);
});
