// The subgroup matmul form at subgroup sizes other than lavapipe's 8 (no device): a GPU's
// fixed 32 or 64 lanes (NVIDIA, Apple, AMD wave64) where the caller forces the form, or a CPU
// adapter reporting them, must render (rows and threads multiples of the size) instead of
// failing with an internal error; bad subgroup options are the caller's error, named.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import type { Graph } from "../../compiler/ir/types.ts";

const f = k.f32;
const mm = (m: number, kk: number, n: number): Graph =>
  k.traceFunction("mm", ((a: k.Tensor, b: k.Tensor) => a.matmul(b)) as never, [f([m, kk]), f([kk, n])]).graph;

/** The rows, threads and lanes a rendered subgroup matmul says it has. */
function subgroupShape(source: string): { rows: number; threads: number; lanes: number } {
  const head = /subgroup matmul, (\d+)x\d+ outputs per thread/.exec(source);
  const lanes = /requires subgroups of size (\d+)/.exec(source);
  const threads = /@workgroup_size\((\d+)\)/.exec(source);
  if (!head || !lanes || !threads) throw new Error(`not a subgroup matmul:\n${source.slice(0, 400)}`);
  return { rows: Number(head[1]), threads: Number(threads[1]), lanes: Number(lanes[1]) };
}

describe("subgroup matmul sizes (no device)", () => {
  for (const size of [4, 8, 16, 32, 64, 128])
    test(`subgroups of ${size}: rows and threads are multiples of it (a CPU adapter's default and a forced form on a GPU)`, () => {
      for (const opts of [{ tuning: { kind: "cpu" as const } }, { tuning: { kind: "discrete" as const }, matmulForm: "subgroup" as const }])
        for (const g of [mm(128, 64, 96), mm(40, 33, 9)]) {
          const source = compileWebGpu(g, { ...opts, subgroupSize: size, tiledMatmul: "always" }).artifact.kernels.find((kk) =>
            kk.source.includes("subgroup matmul"),
          )!.source;
          const s = subgroupShape(source);
          expect(s.lanes).toBe(size);
          expect(s.rows % size).toBe(0);
          expect(s.threads % size).toBe(0);
        }
    });

  test("bad subgroup options are invalid-argument errors naming the option", () => {
    const g = mm(16, 8, 16);
    for (const [opts, named] of [
      [{ subgroupSize: 0 }, "subgroupSize 0"],
      [{ subgroupSize: 12 }, "subgroupSize 12"],
      [{ subgroupSize: -8 }, "subgroupSize -8"],
      [{ matmulForm: "subgroup" }, 'matmulForm "subgroup"'],
      [{ matmulForm: "subgroup", subgroupSize: 32, matmulParams: { rows: 16, cols: 4, threads: 64, unroll: 1 } }, "multiples of the subgroup size 32"],
      [{ kVectors: "on" }, "kVectors 'on'"],
    ] as const)
      expect(() => compileWebGpu(g, { tuning: { kind: "cpu" }, ...(opts as object) })).toThrow(
        expect.objectContaining({ code: "invalid-argument", message: expect.stringContaining(named) }),
      );
  });
});
