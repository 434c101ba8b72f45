// The shape of elementwise dispatches (codegen/wgsl/dispatch.ts's ElementwiseShape): on a CPU
// adapter 256 invocations a workgroup, each taking 4 flat indices a workgroup's size apart;
// 64 and 1 on a hardware GPU and for kernels with loops. Without a device: which dispatches
// take it, the cut to keep 64 workgroups, the per-kind defaults, a bad option refused. On the
// device: matches with the float64 interpreter where the last workgroup is partial — vec4
// chains, an odd length (one element per thread), broadcasts, two sections of different sizes
// in one dispatch, a folded dispatch — and under a symbolic batch, where the runner dispatches
// only the workgroups of the run's rows.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu, createWebGpuExecutor, type WebGpuOptions } from "../../targets/webgpu.ts";
import { defaultElementwiseShape } from "../../targets/webgpu-tune.ts";
import { ELEMENTWISE_MIN_WORKGROUPS, elementwiseShapeFor } from "../../codegen/wgsl/dispatch.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { webGpuDefaultLimits } from "../../codegen/wgsl/layout.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { graphInputs } from "../util/graph-inputs.ts";
import { thrownKilnError } from "../util/kiln-error.ts";

const env = await webGpuTestEnv();
const f = k.f32;
type Fn = (...xs: k.Tensor[]) => unknown;

const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("ew", fn as never, specs).graph;
const chain: Fn = (x, y) => x.mul(2).add(1).relu().mul(y).sigmoid();
/** Threads a vec4 dispatch of 256 x 4 needs 64 workgroups for: 65,536 vec4s. */
const FULL = 4 * 256 * 4 * ELEMENTWISE_MIN_WORKGROUPS;

const kernelsOf = (g: Graph, opts: WebGpuOptions = {}) => compileWebGpu(g, opts).artifact.kernels;

describe("elementwise dispatch shape (no device)", () => {
  test("a CPU adapter's elementwise kernel: 256 invocations of 4 indices, 1024 indices a workgroup", () => {
    const [kernel] = kernelsOf(trace(chain, [f([FULL]), f([FULL])]));
    expect(kernel!.source).toContain("@workgroup_size(256)");
    expect(kernel!.source).toContain("for (var kiln_k = 0; kiln_k < 4 + kiln_zero; kiln_k++) { // 4 indices per thread, 256 apart");
    expect(kernel!.source).toContain("let tid = kiln_first + kiln_k * 256;");
    expect(kernel!.source).toContain(", 4 elements per thread (vec4)");
    expect(kernel!.workgroups).toEqual([FULL / 4 / 1024, 1, 1]);
  });

  test("a hardware GPU keeps 64 invocations of one index each", () => {
    for (const kind of ["discrete", "integrated"] as const) {
      const [kernel] = kernelsOf(trace(chain, [f([FULL]), f([FULL])]), { tuning: { kind } });
      expect(kernel!.source).toContain("@workgroup_size(64)");
      expect(kernel!.source).not.toContain("kiln_k");
      expect(kernel!.workgroups).toEqual([FULL / 4 / 64, 1, 1]);
    }
    expect(defaultElementwiseShape("discrete")).toEqual({ threads: 64, perThread: 1 });
    expect(defaultElementwiseShape("cpu")).toEqual({ threads: 256, perThread: 4 });
  });

  test("a kernel with a reduction keeps 64 invocations of one output each", () => {
    const [kernel] = kernelsOf(trace((x) => x.sum(-1), [f([FULL, 8])]));
    expect(kernel!.source).toContain("@workgroup_size(64)");
    expect(kernel!.source).not.toContain("kiln_k");
  });

  test("the shape is cut (indices a thread, then threads) to keep 64 workgroups", () => {
    const most = { threads: 256, perThread: 4 };
    expect(elementwiseShapeFor(64 * 1024, most)).toEqual(most);
    expect(elementwiseShapeFor(64 * 1024 - 1, most)).toEqual(most); // the 64th workgroup partial
    expect(elementwiseShapeFor(63 * 1024, most)).toEqual({ threads: 256, perThread: 2 });
    expect(elementwiseShapeFor(64 * 256, most)).toEqual({ threads: 256, perThread: 1 });
    expect(elementwiseShapeFor(64 * 128, most)).toEqual({ threads: 128, perThread: 1 });
    expect(elementwiseShapeFor(100, most)).toEqual({ threads: 64, perThread: 1 });
    expect(elementwiseShapeFor(100, { threads: 32, perThread: 1 })).toEqual({ threads: 32, perThread: 1 });
    // a small chain renders as before
    const [small] = kernelsOf(trace(chain, [f([64]), f([64])]));
    expect(small!.source).toContain("@workgroup_size(64)");
    expect(small!.workgroups).toEqual([1, 1, 1]);
  });

  test("the elementwiseShape option sets the most a dispatch takes; a bad one is refused, naming it", () => {
    const g = trace(chain, [f([FULL]), f([FULL])]);
    const [kernel] = kernelsOf(g, { elementwiseShape: { threads: 128, perThread: 2 } });
    expect(kernel!.source).toContain("@workgroup_size(128)");
    expect(kernel!.workgroups).toEqual([FULL / 4 / 256, 1, 1]);
    // a hardware adapter's loops keep their constant trip count (codegen/wgsl/dialect.ts's OPAQUE_ZERO is for CPU adapters)
    const [unrolled] = kernelsOf(g, { tuning: { kind: "discrete" }, elementwiseShape: { threads: 256, perThread: 4 } });
    expect(unrolled!.source).toContain("for (var kiln_k = 0; kiln_k < 4; kiln_k++) {");
    expect(unrolled!.source).not.toContain("kiln_zero");
    const err = thrownKilnError(() => compileWebGpu(g, { elementwiseShape: { threads: 100, perThread: 1 } }));
    expect(err.diag.code).toBe("invalid-argument");
    expect(err.message).toMatch(/elementwiseShape \{ threads: 100, perThread: 1 \}: threads must be a power of two from 1 to 256/);
  });
});

/** Sines with a NaN every 13th element (max and relu must propagate it). */
function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  return graphInputs(g, ({ count }) => Float64Array.from({ length: count }, (_, j) => (j % 13 === 7 ? NaN : Math.fround(2 * Math.sin(++n * 0.61)))));
}

describe.skipIf(!env.available)("elementwise dispatch shape on the device", () => {
  const V = FULL + 4 * 100; // vec4s: 64 full workgroups and one of 100 threads
  const cases: [string, Fn, k.InputSpec[], string, WebGpuOptions?][] = [
    ["the bench's chain, a partial last workgroup (vec4)", chain, [f([V]), f([V])], "4 indices per thread"],
    ["an odd length: one element per thread", chain, [f([FULL + 3]), f([FULL + 3])], "4 indices per thread"],
    [
      "a row-vector bias (vec4) and a column (splatted) over 129 rows",
      (x, b, c) => x.add(b).mul(c).maximum(x.neg()),
      [f([129, 2048]), f([2048]), f([129, 1])],
      "4 indices per thread",
    ],
    ["an odd row length with a broadcast row", (x, b) => x.sub(b).exp(), [f([257, 1023]), f([1023])], "4 indices per thread"],
    ["two sections of different sizes in one dispatch", (x, y) => [x.mul(3), y.add(1).sqrt()], [f([V]), f([1000])], "4 indices per thread"],
    [
      "a folded dispatch (16 workgroups per dimension)",
      chain,
      [f([V]), f([V])],
      "4 indices per thread",
      { limits: { ...webGpuDefaultLimits, maxComputeWorkgroupsPerDimension: 16 } },
    ],
  ];
  test.each(cases)("%s", async (_what, fn, specs, note, opts) => {
    const g = trace(fn, specs);
    const compiled = compileWebGpu(g, { verify: true, limits: env.context!.limits, ...opts });
    expect(compiled.artifact.kernels.some((kk) => kk.source.includes(note))).toBe(true);
    await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g), { nanMatches: true });
  });

  test("under a symbolic batch: the interpreter's results at every size, fewer workgroups for fewer rows", async () => {
    const MAX = 512;
    const fn = ({ x, b }: { x: k.Tensor; b: k.Tensor }) => x.mul(2).add(b).relu().mul(x);
    const g = k.traceFunction("ew", fn as never, { x: f(["batch", 1024], { max: { batch: MAX } }), b: f([1024]) }).graph;
    const exe = await createWebGpuExecutor(g);
    expect(exe.artifact.kernels.some((kk) => kk.source.includes("4 indices per thread"))).toBe(true);
    const b = Float32Array.from({ length: 1024 }, (_, i) => Math.cos(i * 0.3));
    const work: Record<number, number> = {};
    for (const rows of [MAX, 37, 1]) {
      const x = Float32Array.from({ length: rows * 1024 }, (_, i) => Math.sin(i * 0.77 + rows));
      const padded = Float32Array.from({ length: MAX * 1024 }, (_, i) => (i < x.length ? x[i]! : 99));
      const before = exe.runner.dispatchStats.workgroups;
      const got = await exe.run({
        x: { dtype: "f32", shape: [MAX, 1024], data: padded },
        b: { dtype: "f32", shape: [1024], data: b },
        batch: { dtype: "i32", shape: [], data: Int32Array.of(rows) },
      });
      work[rows] = exe.runner.dispatchStats.workgroups - before;
      const want = interpret(g, {
        x: { dtype: "f32", shape: [rows, 1024], data: x },
        b: { dtype: "f32", shape: [1024], data: b },
        batch: { dtype: "i32", shape: [], data: Int32Array.of(rows) },
      });
      const name = g.outputs[0]!.name;
      const a = got[name]!.data;
      const e = want[name]!.data;
      for (let j = 0; j < e.length; j++)
        if (Math.abs(a[j]! - e[j]!) > 1e-5 + 1e-4 * Math.abs(e[j]!)) throw new Error(`rows ${rows}, [${j}]: ${a[j]} vs ${e[j]}`);
    }
    // 1024 indices a workgroup: the max's 512 rows of 256 vec4s take 128, 37 rows 10, one row 1.
    expect(work).toEqual({ [MAX]: 128, 37: 10, 1: 1 });
    exe.runner.destroy();
  });
});
