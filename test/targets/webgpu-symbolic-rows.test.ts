// A symbolic batch on WebGPU costs what the program fixed at the run's batch costs: every loop
// that steps the batch's rows (reductions over the batch, the matmuls' k loops over it, in
// the plain, row-kernel, register and workgroup-tile forms) stops at the run's rows, read
// from the size buffer, and the symbolic-rows kernel pass drops the row masks. Checked
// against the float64 interpreter at the actual size (no padding, no masks) with NaN in every
// padding row, so a loop that read one would show, at batches 1, 7 and the maximum.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { HyperStore } from "../../dsl/hyper.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { WebGpuArtifactRunner } from "../../runtime/webgpu/run-artifact.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";
import { FULL } from "../util/full.ts";
import { rowMasks } from "../util/row-masks.ts";

const env = await webGpuTestEnv();
const MAX = 64;

/** A training step's graph and its initial state (hyperparameters included). */
function stepOf(name: string, net: k.nn.Module, width: number, rowShape: readonly (number | string)[]) {
  const step = k.trainStep(net, (logits, y) => k.nn.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
  const t = k.traceFunction(name, step as never, { x: k.f32(["batch", ...rowShape] as never, { max: { batch: MAX } }), y: k.i32(["batch"]) });
  const state: Record<string, HostTensor> = {};
  for (const [n, init] of t.state) state[n] = init();
  Object.assign(state, new HyperStore(t.hyper).inputs());
  return { g: t.graph, state, width, rowShape: rowShape as readonly number[] };
}

/** Runs the compiled program at batches 1, 7 and MAX with NaN (labels -1) in every padding row, against the interpreter at the actual size. */
async function matchesInterpreter(
  g: Graph,
  state: Record<string, HostTensor>,
  width: number,
  rowShape: readonly number[],
  opts: { matmulForm?: "registers" | "workgroup" } = {},
): Promise<number[]> {
  const compiled = compileWebGpu(g, { limits: env.context!.limits, ...opts });
  expect(rowMasks(compiled.program)).toBe(0);
  const runner = await WebGpuArtifactRunner.create(env.context!.device, compiled.artifact);
  const workgroups: number[] = [];
  const labelled = g.inputs.some((id) => (g.nodes[id] as { name?: string }).name === "y");
  try {
    for (const b of [1, 7, MAX]) {
      const x = Float32Array.from({ length: b * width }, (_, i) => Math.sin(i * 0.37 + b));
      const y = Int32Array.from({ length: b }, (_, i) => (i * 7 + b) % 10);
      const padded: Record<string, HostTensor> = {
        x: { dtype: "f32", shape: [MAX, ...rowShape], data: Float32Array.from({ length: MAX * width }, (_, i) => (i < b * width ? x[i]! : Number.NaN)) },
        batch: { dtype: "i32", shape: [], data: Int32Array.of(b) },
        ...(labelled ? { y: { dtype: "i32", shape: [MAX], data: Int32Array.from({ length: MAX }, (_, i) => (i < b ? y[i]! : -1)) } } : {}),
        ...state,
      };
      const actual: Record<string, HostTensor> = {
        ...padded,
        x: { dtype: "f32", shape: [b, ...rowShape], data: x },
        ...(labelled ? { y: { dtype: "i32", shape: [b], data: y } } : {}),
      };
      const want = interpret(g, actual);
      const before = runner.dispatchStats.workgroups;
      const got = await runner.run(padded);
      workgroups.push(runner.dispatchStats.workgroups - before);
      for (const o of g.outputs) {
        const w = want[o.name]!.data;
        const a = got[o.name]!.data;
        for (let i = 0; i < w.length; i++)
          if (!(Math.abs(a[i]! - w[i]!) <= 1e-4 * (1 + Math.abs(w[i]!)))) expect.fail(`${o.name}[${i}] at batch ${b}: webgpu ${a[i]}, interpreter ${w[i]}`);
      }
    }
  } finally {
    runner.destroy();
  }
  return workgroups;
}

describe.skipIf(!env.available)("symbolic batch rows on webgpu", () => {
  const mlp = () => {
    k.manualSeed(3);
    return stepOf("mlp_rows", k.nn.sequential(k.nn.linear(64, 32), k.nn.relu(), k.nn.linear(32, 10)), 64, [64]);
  };

  test("an MLP SGD step drops every mask and matches the interpreter at batches 1, 7, max with NaN padding (register matmuls)", async () => {
    const { g, state, width, rowShape } = mlp();
    await matchesInterpreter(g, state, width, rowShape);
  }, 120_000);

  // 6 s of pipelines on lavapipe: the full suite (wgsl-summed-dot.test.ts checks its kernel IR without a device).
  test.runIf(FULL)(
    "a linear over [batch, time, features]: its weight gradient, a batched matmul over the batch's rows then summed, matches the interpreter",
    async () => {
      k.manualSeed(5);
      const net = k.nn.sequential(k.nn.linear(64, 64), k.nn.relu(), k.nn.flatten(), k.nn.linear(8 * 64, 10));
      const { g, state, width, rowShape } = stepOf("seq_rows", net, 8 * 64, [8, 64]);
      await matchesInterpreter(g, state, width, rowShape);
    },
    120_000,
  );

  // Each program costs seconds of pipeline creation on lavapipe: the other forms run in the full suite.
  test.runIf(FULL)(
    "the same step with workgroup-tile matmuls (the k loop over the batch bounded uniformly, between barriers)",
    async () => {
      const { g, state, width, rowShape } = mlp();
      await matchesInterpreter(g, state, width, rowShape, { matmulForm: "workgroup" });
    },
    120_000,
  );

  test("a matmul over the batch's rows dispatches only their blocks, in both matmul forms", async () => {
    const f = ({ x, w }: { x: k.Tensor; w: k.Tensor }) => ({ out: x.matmul(w).relu() });
    const g = k.traceFunction("rows_matmul", f as never, { x: k.f32(["batch", 64], { max: { batch: MAX } }), w: k.f32([64, 256]) }).graph;
    const w: HostTensor = { dtype: "f32", shape: [64, 256], data: Float32Array.from({ length: 64 * 256 }, (_, i) => Math.cos(i)) };
    for (const matmulForm of ["registers", "workgroup"] as const) {
      const compiled = compileWebGpu(g, { limits: env.context!.limits, matmulForm });
      expect(compiled.artifact.kernels.every((kk) => kk.symbolic !== undefined)).toBe(true);
      // batches 1, 7, 64 of 64: the rows' blocks only. A register block holds a few rows (the adapter's
      // parameters), so 1 and 7 rows need fewer workgroups than 64; a workgroup tile holds all 64 rows.
      const [one, seven, max] = await matchesInterpreter(g, { w }, 64, [64], { matmulForm });
      if (matmulForm === "registers") {
        expect(one!).toBeLessThan(max!);
        expect(seven!).toBeLessThan(max!);
        expect(one!).toBeLessThanOrEqual(seven!);
      } else expect([one, seven]).toEqual([max, max]);
    }
  }, 120_000);

  test.runIf(FULL)(
    "a CNN SGD step (conv, relu, max-pool, linear) drops every mask and matches the interpreter",
    async () => {
      k.manualSeed(4);
      const net = k.nn.sequential(k.nn.conv2d(1, 4, 3), k.nn.relu(), k.nn.maxPool2d(2), k.nn.flatten(), k.nn.linear(36, 10));
      const { g, state } = stepOf("cnn_rows", net, 64, [1, 8, 8]);
      await matchesInterpreter(g, state, 64, [1, 8, 8]);
    },
    120_000,
  );

  test("softmax rows summed over the batch, and a sum over the batch of the input itself (a row kernel, reductions over the batch), match the interpreter", async () => {
    // exp(x) summed over the batch reads x's NaN padding rows directly: only a bounded loop keeps it out.
    const f = ({ x }: { x: k.Tensor }) => ({ out: x.softmax(1).sum(0), direct: x.exp().sum(0) });
    const g = k.traceFunction("rows_then_batch", f as never, { x: k.f32(["batch", 512], { max: { batch: MAX } }) }).graph;
    await matchesInterpreter(g, {}, 512, [512]);
  }, 120_000);
});
