// Chained chunks (compiler/kernel/chunk-chain.ts): which reads of a column-chunked GEMM's output
// are chunk-exact (hand-derived index decompositions), and a small CNN's SGD step compiled for
// wasm under test chunk limits — its conv outputs and patch gradient read back chunk by chunk —
// against the same step unchained (the same arithmetic reordered: equal bit for bit, on 1 and
// 2 threads, with relaxed SIMD and without) and against the float64 interpreter.

import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { columnCoef } from "../../compiler/kernel/chunk-chain.ts";
import { addIndex, cond, constIndex, divIndex, fromAtom, indexVar, modIndex, mulIndex } from "../../compiler/kernel/index-expr.ts";
import { gemmChunkTestHooks } from "../../compiler/kernel/block-contraction.ts";
import { compileWasm } from "../../targets/wasm.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { WasmArtifactRunner } from "../../runtime/wasm/run-artifact.ts";
import type { WasmArtifact } from "../../runtime/artifact/format.ts";
import { asStored, caseInputs, firstMismatch, traceCase, type OpCase } from "../targets/op-cases.ts";

const v = (name: string, extent: number) => fromAtom(indexVar(name, extent));

describe("columnCoef", () => {
  const o1 = v("o1", 288);
  const o2 = indexVar("o2", 12544);
  test("a GEMM's store [row][column]: a = 1, the period one row", () => {
    expect(columnCoef(addIndex(mulIndex(o1, 12544), fromAtom(o2)), [], o2)).toEqual({ a: 1, R: 12544 });
  });
  test("a reader at 196·n plus a row term and an in-image offset below 196 (under its mask)", () => {
    const n = indexVar("n", 64);
    const h = v("h", 16);
    const r = v("r", 3);
    const w = v("w", 14);
    // 14·((h + 16r) mod 17) + w reaches 237 unmasked, 195 where (h + 16r) mod 17 < 14
    const row = modIndex(addIndex(h, mulIndex(r, 16)), 17);
    const index = addIndex(
      mulIndex(divIndex(addIndex(h, mulIndex(r, 16)), 17), 1204224),
      mulIndex(row, 14),
      mulIndex(fromAtom(n), 196),
      mulIndex(o1, 12544),
      w,
    );
    expect(columnCoef(index, cond(row, "lt", 14), n, 12544)).toEqual({ a: 196, R: 12544 });
    expect(columnCoef(index, [], n, 12544)).toBeUndefined();
  });
  test("an offset that leaves the variable's column span, or a variable under a division, is no decomposition", () => {
    const n = indexVar("n", 64);
    expect(columnCoef(addIndex(mulIndex(fromAtom(n), 196), constIndex(196)), [], n, 12544)).toBeUndefined();
    expect(columnCoef(addIndex(mulIndex(fromAtom(n), 196), constIndex(-1)), [], n, 12544)).toBeUndefined();
    expect(columnCoef(mulIndex(divIndex(fromAtom(o2), 2), 1), [], o2)).toBeUndefined();
    // 196·64 spans more than a period of 12000
    expect(columnCoef(mulIndex(fromAtom(n), 196), [], n, 12000)).toBeUndefined();
  });
});

const runners: WasmArtifactRunner[] = [];
afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

describe("a CNN's SGD step with chained chunks", () => {
  k.manualSeed(3);
  const net = k.nn.sequential(
    k.nn.conv2d(1, 8, 3, { padding: 1 }),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.conv2d(8, 16, 3, { padding: 1 }),
    k.nn.relu(),
    k.nn.maxPool2d(2),
    k.nn.flatten(),
    k.nn.linear(16 * 4 * 4, 10),
  );
  const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
  const c: OpCase = { group: "models", name: "cnn sgd step", fn: step as unknown as OpCase["fn"], specs: [k.f32([8, 1, 16, 16]), k.i32([8])], intRange: 10 };
  const g = traceCase(c);
  const inputs = caseInputs(g, c);
  const compile = (relaxedSimd: boolean, chain: boolean): WasmArtifact => {
    const limits = { ...gemmChunkTestHooks };
    // conv 1's GEMM (8 rows, k = 9: 36 B a column) in chunks of 4 images of 256 columns, conv 2's
    // forward (k = 72) and its patch gradient (72 rows) in chunks of 2 images of 64
    Object.assign(gemmChunkTestHooks, { minBytes: 1 << 14, maxBytes: 1024 * 36, chain });
    try {
      return compileWasm(g, { relaxedSimd }).artifact;
    } finally {
      Object.assign(gemmChunkTestHooks, limits);
    }
  };
  const run = async (artifact: WasmArtifact, threads: number) => {
    const r = await WasmArtifactRunner.create(artifact, { threads, minParallelWork: 0 });
    runners.push(r);
    return r.run(inputs);
  };

  test.each([true, false])(
    "relaxed SIMD %s: chained equals unchained bit for bit on 1 and 2 threads, and the interpreter within f32 tolerance",
    async (relaxed) => {
      const chained = compile(relaxed, true);
      const plain = compile(relaxed, false);
      const links = chained.kernels.filter((kk) => /_i\d+$/.test(kk.name)).map((kk) => kk.name.replace(/_i\d+$/, ""));
      // the pool after conv 1's forward GEMM (2 chunks) and after conv 2's (4), and conv 2's input
      // gradient's two overlap-add stages and the pool and ReLU gradient after its patch GEMM (4 each)
      expect(links.length).toBe(2 + 4 + 3 * 4);
      expect(new Set(links).size).toBe(5);
      expect(plain.kernels.some((kk) => /_i\d+$/.test(kk.name))).toBe(false);
      const want = interpret(g, inputs);
      const base = await run(plain, 1);
      for (const threads of [1, 2]) {
        const got = await run(chained, threads);
        for (const o of g.outputs) {
          expect(Array.from(got[o.name]!.data as Float32Array), o.name).toEqual(Array.from(base[o.name]!.data as Float32Array));
          expect(firstMismatch(got[o.name]!.data as Float32Array, asStored(want[o.name]!), 2e-5, 2e-4, "wasm"), o.name).toBeUndefined();
        }
      }
    },
  );
});
