// The wasm target on the shared op table (test/targets/op-cases.ts: the op surface,
// composites, gradients, larger shapes, models), each case compared with the float64
// interpreter at its f32 tolerances, in three configurations: scalar lowering, SIMD without
// relaxed SIMD on one thread, and SIMD (with relaxed-SIMD FMA where the engine has it) split
// across two threads (every section split, however small). Then
// wasm-only checks: an Adam and a wide SGD step, k.compile, the cpu alias, runner errors.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWasm, type WasmCompileOptions } from "../../targets/wasm.ts";
import { nodeOf } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { formatFusionPlan } from "../../compiler/passes/fuse.ts";
import { WasmArtifactRunner, type WasmRunOptions } from "../../runtime/wasm/run-artifact.ts";
import { describeOpSuite, runCaseOnTarget, type OpCase, type TestTarget } from "./op-cases.ts";

interface Config {
  readonly name: string;
  readonly compile: WasmCompileOptions;
  readonly run: WasmRunOptions;
}

const CONFIGS: readonly Config[] = [
  { name: "scalar", compile: { simd: false }, run: { threads: 1 } },
  { name: "simd without relaxed SIMD, 1 thread", compile: { relaxedSimd: false }, run: { threads: 1 } },
  // relaxed SIMD (FMA in contractions) where the engine has it, as by default
  { name: "simd, 2 threads", compile: {}, run: { threads: 2, minParallelWork: 0 } },
];

const f = k.f32;
const i = k.i32;
const F = k.nn.functional;

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

function wasmTestTarget(config: Config): TestTarget {
  return {
    name: "wasm",
    label: `wasm target (${config.name})`,
    compile: (g: Graph, opts) => {
      const compiled = compileWasm(g, { ...opts, ...config.compile });
      return {
        run: async (inputs) => {
          const runner = await WasmArtifactRunner.create(compiled.artifact, config.run);
          runners.push(runner);
          return runner.run(inputs);
        },
        explain: () => formatFusionPlan(compiled.graph, compiled.plan),
      };
    },
  };
}

for (const config of CONFIGS) {
  const target = wasmTestTarget(config);
  describeOpSuite(target);

  describe(`wasm target (${config.name}): training steps`, () => {
    test("one Adam step of a small MLP matches the interpreter (loss and every new parameter)", async () => {
      const net = k.nn.sequential(k.nn.linear(12, 16), k.nn.relu(), k.nn.linear(16, 4));
      const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.adam({ lr: 1e-2 }));
      const c: OpCase = { group: "models", name: "mlp adam step", fn: step as unknown as OpCase["fn"], specs: [f([8, 12]), i([8])] };
      await runCaseOnTarget(c, target);
    });

    test("one SGD step of a small CNN (convolutions and their gradients as packed GEMMs, max-pools) matches the interpreter", async () => {
      k.manualSeed(3);
      const net = k.nn.sequential(
        k.nn.conv2d(1, 8, 3, { padding: 1 }),
        k.nn.relu(),
        k.nn.maxPool2d(2),
        k.nn.conv2d(8, 16, 3, { padding: 1 }),
        k.nn.relu(),
        k.nn.maxPool2d(2),
        k.nn.flatten(),
        k.nn.linear(16 * 3 * 3, 10),
      );
      const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
      const c: OpCase = {
        group: "models",
        name: "cnn sgd step",
        fn: step as unknown as OpCase["fn"],
        specs: [f([8, 1, 12, 12]), i([8])],
        intRange: 10,
        atol: 2e-5,
        rtol: 2e-4,
      };
      await runCaseOnTarget(c, target);
    });

    test("one SGD step of a wider MLP (blocked contractions forward and backward) matches the interpreter", async () => {
      const net = k.nn.sequential(k.nn.linear(96, 64), k.nn.relu(), k.nn.linear(64, 32), k.nn.relu(), k.nn.linear(32, 10));
      const step = k.trainStep(net, (logits, y) => F.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
      const c: OpCase = {
        group: "models",
        name: "wide mlp sgd step",
        fn: step as unknown as OpCase["fn"],
        specs: [f([16, 96]), i([16])],
        intRange: 10,
        atol: 2e-5,
        rtol: 2e-4,
      };
      await runCaseOnTarget(c, target);
    });
  });
}

describe("wasm target through k.compile", () => {
  test("target wasm runs and reports the same stats as js", async () => {
    const exe = await k.compile((x: k.Tensor, w: k.Tensor) => x.matmul(w).relu(), [f([2, 3]), f([3, 2])], { target: "wasm", threads: 1 });
    const out = (await exe.run([
      [1, 2, 3, 4, 5, 6],
      [1, -1, 0, 2, -1, 0.5],
    ])) as { data: ArrayLike<number> };
    // [1,2,3]·[1,0,-1] = -2 → 0, [1,2,3]·[-1,2,0.5] = 4.5; [4,5,6]·[1,0,-1] = -2 → 0, [4,5,6]·[-1,2,0.5] = 9
    expect(Array.from(out.data)).toEqual([0, 4.5, 0, 9]);
    expect(exe.stats).toMatchObject({ kernels: 1, bytesRead: 48, bytesWritten: 16 });
  });
});

describe("the cpu target", () => {
  test("resolves to wasm here, is not listed twice among available targets, and runs", async () => {
    expect(await k.availableTargets()).toContain("wasm");
    expect(await k.availableTargets()).not.toContain("cpu");
    const exe = await k.compile((x: k.Tensor) => x.mul(2).add(1), [f([5])], { target: "cpu", threads: 1 });
    const out = (await exe.run([[0, 1, 2, 3, -4]])) as { data: ArrayLike<number> };
    expect(Array.from(out.data)).toEqual([1, 3, 5, 7, -7]);
  });
});

describe("wasm runner errors", () => {
  test("an out-of-range gather traps on the workers and the caller alike: the run throws (no hang) and the pool still works", async () => {
    const g = k.traceFunction("gather_oob", ((x: k.Tensor, idx: k.Tensor) => x.gather(0, idx)) as never, [f([4, 64]), i([4, 64])]).graph;
    const runner = await WasmArtifactRunner.create(compileWasm(g).artifact, { threads: 2, minParallelWork: 0 });
    runners.push(runner);
    const [xName, idxName] = g.inputs.map((id) => (nodeOf(g, id) as { name: string }).name) as [string, string];
    const x = { dtype: "f32" as const, shape: [4, 64], data: Float64Array.from({ length: 256 }, (_, j) => j) };
    const bad = { dtype: "i32" as const, shape: [4, 64], data: new Int32Array(256).fill(1_000_000) }; // 256 MB past the start: outside the memory
    expect(() => runner.run({ [xName]: x, [idxName]: bad })).toThrow();
    // Only row 1 traps (4 rows over 2 threads, one-row chunks): whichever thread claimed it
    // (every chunk is claimed, none set aside), the run throws and the next one runs clean.
    const badRow = { dtype: "i32" as const, shape: [4, 64], data: Int32Array.from({ length: 256 }, (_, j) => (j >= 64 && j < 128 ? 1_000_000 : 0)) };
    for (let t = 0; t < 4; t++) expect(() => runner.run({ [xName]: x, [idxName]: badRow })).toThrow(/a worker thread trapped|out of bounds/);
    const good = { dtype: "i32" as const, shape: [4, 64], data: Int32Array.from({ length: 256 }, (_, j) => j % 4) };
    const out = Object.values(runner.run({ [xName]: x, [idxName]: good }))[0]!.data;
    // out[r, c] = x[idx[r, c], c] = (j % 4) * 64 + c with j = 64r + c
    expect(Array.from(out)).toEqual(Array.from({ length: 256 }, (_, j) => (j % 4) * 64 + (j % 64)));
  });
});
