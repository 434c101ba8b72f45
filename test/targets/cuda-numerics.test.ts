// The NaN finder and the skipNonFinite guard on the cuda target, where no GPU is at hand: the
// guarded and the checking builds of a training step are rendered to CUDA, their kernels run
// on the CPU through the emulation of test/util/nvcc.ts (one g++ build), and compile with
// nvcc -ptx where nvcc is installed (under npm run test:full). The guard keeps every state value on a NaN batch and applies the
// update (equal to the float64 interpreter's) on a finite one; the check names the node.

import { HyperStore } from "../../dsl/hyper.ts";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { CUDA_PRELUDE } from "../../codegen/cuda/prelude.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { FINITE_OUTPUT, exposeValues, findFirstNonFinite, guardStateUpdates } from "../../dsl/numerics.ts";
import { traceFunction } from "../../dsl/trace.ts";
import { FULL } from "../util/full.ts";
import { emulateCuda, findNvcc, hasCxx, nvccPtx } from "../util/nvcc.ts";

function stepGraph() {
  k.manualSeed(2);
  const model = k.nn.sequential(k.nn.linear(3, 4), k.nn.tanh(), k.nn.linear(4, 1));
  const loss = (pred: k.Tensor, y: k.Tensor) => {
    const p = pred.reshape([8]);
    return p.sub(y).pow(2).mean().add(y.add(2).log().mean().mul(0.001));
  };
  const step = k.trainStep(model, loss, k.optim.adamW({ lr: 0.05 }), { clipGradNorm: 1 });
  return traceFunction("trainStep", step as never, { x: k.f32([8, 3]), y: k.f32([8]) });
}

function inputsFor(
  traced: ReturnType<typeof stepGraph>,
  x: Float32Array,
  y = Float32Array.from({ length: 8 }, (_, i) => (i % 3) - 1),
): Record<string, HostTensor> {
  const state = Object.fromEntries([...traced.state].map(([name, init]) => [name, init()]));
  return { ...state, ...new HyperStore(traced.hyper).inputs(), x: { dtype: "f32", shape: [8, 3], data: x }, y: { dtype: "f32", shape: [8], data: y } };
}

const finiteX = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i));
const nanX = finiteX.slice();
nanX[4] = Number.NaN;
// y[2] = -5: log(y + 2) is NaN at position 2, before anything else goes wrong.
const badY = Float32Array.from({ length: 8 }, (_, i) => (i === 2 ? -5 : (i % 3) - 1));

describe.runIf(hasCxx())("numerics on cuda (kernels emulated on the CPU)", () => {
  const traced = stepGraph();
  const guarded = guardStateUpdates(traced.graph, traced.userOutputCount);
  const exposed = exposeValues(traced.graph);
  const checking = guardStateUpdates(exposed.graph, traced.userOutputCount);
  // One artifact per emulated case: the emulation links every case's kernels into one program.
  const guardedCuda = compileCuda(guarded, { symbolPrefix: "guarded_" }).artifact;
  const guardedCuda2 = compileCuda(guarded, { symbolPrefix: "guarded2_" }).artifact;
  const checkingCuda = compileCuda(checking, { symbolPrefix: "checking_" }).artifact;
  const stateOutputs = traced.graph.outputs.filter((o) => o.aliases !== undefined);
  const finite = inputsFor(traced, finiteX);
  const bad = inputsFor(traced, nanX);
  let emulated: Record<string, HostTensor>[] | undefined;
  const results = (): Record<string, HostTensor>[] =>
    (emulated ??= emulateCuda([
      { artifact: guardedCuda, inputs: finite },
      { artifact: guardedCuda2, inputs: bad },
      { artifact: checkingCuda, inputs: inputsFor(traced, finiteX, badY) },
    ]));

  test("the guard applies a finite step and keeps every state value on a NaN batch", () => {
    const [ok, skipped] = results();
    const want = interpret(traced.graph, finite);
    expect(Array.from(ok![FINITE_OUTPUT]!.data)).toEqual([1]);
    for (const o of stateOutputs) {
      const got = Array.from(ok![o.name]!.data);
      Array.from(want[o.name]!.data).forEach((v, i) => expect(got[i]!).toBeCloseTo(v, 4));
    }
    expect(Array.from(skipped![FINITE_OUTPUT]!.data)).toEqual([0]);
    expect(Number.isNaN(skipped!["loss"]!.data[0])).toBe(true);
    for (const o of stateOutputs) expect(Array.from(skipped![o.name]!.data), o.name).toEqual(Array.from(bad[o.aliases!]!.data, Math.fround));
  });

  test("the checking build names the first non-finite node and its kernel", () => {
    const result = results()[2];
    const error = findFirstNonFinite(traced.graph, exposed.checks, result!, new Set(), checkingCuda);
    expect(error?.message).toMatch(
      /^checkNumerics: log2 produced NaN at position 2 of f32\[8\], the first non-finite value in program order \(kernel checking_k\d+_\S+\)/,
    );
    expect(error?.diag.loc?.file).toMatch(/cuda-numerics\.test\.ts$/);
  });

  const nvcc = findNvcc();
  test.runIf(FULL && nvcc !== undefined)(
    "both builds compile with nvcc -ptx (sm_80)",
    () => {
      const source = [CUDA_PRELUDE, ...guardedCuda.kernels.map((kk) => kk.source), ...checkingCuda.kernels.map((kk) => kk.source)].join("\n");
      const r = nvccPtx(nvcc!, source, "sm_80");
      if (!r.ok) throw new Error(`nvcc failed:\n${r.log.slice(0, 3000)}`);
      expect(r.ptx.match(/^\.visible \.entry /gm)?.length).toBe(guardedCuda.kernels.length + checkingCuda.kernels.length);
    },
    120_000,
  );
});
