// CUDA rendering decisions, checked on the source text: literals that name the f32 the graph
// means, launch bounds and __restrict__ (absent where an in-place update aliases two
// parameters), the reduction strategy per section (thread, warp or shared-memory block) and
// the launch shape it implies.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileCuda } from "../../targets/cuda.ts";
import { cudaDialect } from "../../codegen/cuda/dialect.ts";
import { GraphBuilder } from "../../compiler/ir/graph.ts";

const trace = (fn: (...x: k.Tensor[]) => unknown, specs: readonly k.InputSpec[]) => k.traceFunction("t", fn as never, specs).graph;

describe("cuda dialect", () => {
  test("f32 literals parse back to the f32 nearest the graph's value", () => {
    for (const v of [0.1, 1 / 3, Math.PI, 1e-30, 3.4e38, -2.5, 16777217, 1.4426950408889634, 5e-45]) {
      const text = cudaDialect.literal(v, "f32").replace(/[()f]/g, "");
      expect(Math.fround(Number(text))).toBe(Math.fround(v));
    }
    expect(cudaDialect.literal(Infinity, "f32")).toBe("INFINITY");
    expect(cudaDialect.literal(-Infinity, "f32")).toBe("(-INFINITY)");
    expect(cudaDialect.literal(NaN, "f32")).toBe("NAN");
    expect(cudaDialect.literal(-0, "f32")).toBe("-0.0f");
  });

  test("i32 literals, including INT32_MIN (not a valid C literal on its own)", () => {
    expect(cudaDialect.literal(-2147483648, "i32")).toBe("(-2147483647 - 1)");
    expect(cudaDialect.literal(-7, "i32")).toBe("(-7)");
    expect(cudaDialect.literal(1, "bool")).toBe("true");
  });

  test("i32 add/mul wrap through unsigned arithmetic; f32 max propagates NaN", () => {
    expect(cudaDialect.binary.add("a", "b", "i32")).toBe("(int)((unsigned)a + (unsigned)b)");
    expect(cudaDialect.binary.max("a", "b", "f32")).toBe("kiln_fmax(a, b)");
    expect(cudaDialect.cast("x", "f32", "i32")).toBe("kiln_f2i(x)");
  });
});

describe("cuda kernels", () => {
  test("an elementwise chain: one kernel, a thread per element, launch bounds, restrict pointers", () => {
    const a = compileCuda(trace((x) => x.mul(2).add(1).relu(), [k.f32([1000])])).artifact;
    expect(a.kernels.length).toBe(1);
    const src = a.kernels[0]!.source;
    expect(src).toContain("__launch_bounds__(256)");
    expect(src).toMatch(/const float\* __restrict__ b0, float\* __restrict__ b1\)/);
    expect(src).toContain("a thread per point");
    expect(a.kernels[0]!.launch).toEqual({ grid: [4, 1, 1], block: [256, 1, 1], sharedBytes: 0 }); // ceil(1000 / 256)
  });

  test("softmax over long rows: a warp per row, shuffles, the row loop split across lanes", () => {
    const a = compileCuda(trace((x) => x.softmax(-1), [k.f32([6, 300])])).artifact;
    const src = a.kernels[0]!.source;
    expect(src).toContain("a warp per point");
    expect(src).toContain("kiln_warp_max_f(");
    expect(src).toContain("kiln_warp_sum_f(");
    expect(src).toMatch(/for \(int o1 = lane; o1 < 300; o1 \+= 32\)/);
    expect(a.kernels[0]!.launch.grid).toEqual([1, 1, 1]); // 6 rows x 32 lanes fit one block
  });

  test("a large matmul: 16x16-thread blocks of 4x4 register tiles, operands staged in shared memory", () => {
    const g = trace((x, w) => x.matmul(w), [k.f32([1024, 64]), k.f32([64, 1024])]);
    const big = compileCuda(g).artifact.kernels[0]!;
    expect(big.source).toContain("register tile 4x4");
    expect(big.source).toContain("operands staged in shared memory");
    expect(big.source.match(/__shared__ float s\d+\[16\]\[17\];/g)?.length).toBe(8); // 4 row + 4 column loads per tile
    expect(big.source.match(/__syncthreads\(\);/g)?.length).toBe(2);
    expect(big.launch.grid).toEqual([256, 1, 1]); // (256 / 16) x (256 / 16) blocks of tiles
    const serial = compileCuda(g, { reduction: "serial" }).artifact.kernels[0]!;
    expect(serial.source).toContain("a thread per point");
    expect(serial.launch.grid).toEqual([256, 1, 1]); // 256 x 256 tiles / 256 threads
  });

  test("a small matmul with a long reduction: a warp per register tile", () => {
    const small = compileCuda(trace((x, w) => x.matmul(w), [k.f32([512, 64]), k.f32([64, 512])])).artifact.kernels[0]!;
    expect(small.source).toContain("a warp per point"); // 16,384 tiles, each a 64-long reduction
    expect(small.launch.grid).toEqual([2048, 1, 1]); // 16,384 warps x 32 lanes / 256
  });

  test("an in-place update: the aliased parameters lose __restrict__", () => {
    const b = new GraphBuilder("inplace");
    const w = b.input("w", { dtype: "f32", shape: [8] });
    const two = b.add({ op: "const", value: 2 }, { dtype: "f32", shape: [8] });
    const next = b.add({ op: "mul", x: w, y: two });
    const a = compileCuda(b.build([{ name: "w_new", value: next, aliases: "w" }])).artifact;
    const inSlot = a.buffers.find((x) => x.name === "w")!.slot;
    const outSlot = a.buffers.find((x) => x.name === "w_new")!.slot;
    expect(outSlot).toBe(inSlot);
    expect(a.kernels[0]!.source).not.toContain("__restrict__");
  });

  test("forced strategies and a symbol prefix", () => {
    const g = trace((x) => x.sum(1), [k.f32([4, 100])]);
    expect(compileCuda(g, { reduction: "serial" }).artifact.kernels[0]!.source).not.toContain("lane");
    const warp = compileCuda(g, { reduction: "warp", symbolPrefix: "p1_" }).artifact.kernels[0]!;
    expect(warp.source).toContain("kiln_warp_sum_f(");
    expect(warp.name).toMatch(/^p1_k0_/);
    expect(warp.source).toContain(`void __launch_bounds__(256) ${warp.name}(`);
  });
});
