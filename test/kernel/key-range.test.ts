// Causal skip (compiler/kernel/key-range.ts): the reductions of a fused causal attention loop
// only over the keys a query sees (attention_dq and the forward: keys 0..i) and the queries
// that see a key (attention_dkv: queries j..L-1); a mask that is no causal triangle, or one
// that hides a whole row, gets no range. Checked on the loop ranges found, the js, cuda and
// webgpu loops, and js and wasm gradients against the float64 interpreter of the unfused graph.

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileJs } from "../../targets/js.ts";
import { compileCuda } from "../../targets/cuda.ts";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { reduceRange } from "../../compiler/kernel/key-range.ts";
import { scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { indexKey } from "../../compiler/kernel/index-expr.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { expectClose, runRef } from "../util/ref.ts";
import { randomF32 } from "../util/random-graph.ts";

const F = k.nn.functional;
const L = 7;
const specs = [k.f32([2, L, 3]), k.f32([2, L, 3]), k.f32([2, L, 3]), k.f32([2, L, 3])];
const step =
  (opts: { isCausal?: boolean; mask?: () => k.Tensor }) =>
  (q: k.Tensor, kk: k.Tensor, v: k.Tensor, w: k.Tensor): k.Tensor[] =>
    k
      .valueAndGrad(
        (a: k.Tensor, b: k.Tensor, c: k.Tensor) =>
          F.scaledDotProductAttention(a, b, c, { ...(opts.isCausal ? { isCausal: true } : {}), ...(opts.mask ? { attnMask: opts.mask() } : {}) })
            .mul(w)
            .sum(),
        { argnums: [0, 1, 2] },
      )(q, kk, v)
      .flat() as k.Tensor[];

/** Each key-length loop of each attention section: its range as "[lo, hi)" ("-" for none). */
function ranges(p: KernelProgram): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const kernel of p.kernels)
    for (const s of kernel.sections.filter((x) => x.form?.kind === "attention")) {
      const walk = (items: readonly ScheduleItem[]): void => {
        for (const it of items) {
          if (it.kind === "reduce" && it.vars.some((v) => v.extent === L)) {
            const r = reduceRange(s, it.vars, it.reduces);
            const name = kernel.name.replace(/^k\d+_/, "");
            out.set(name, [...(out.get(name) ?? []), r ? `[${r.lo ? indexKey(r.lo) : "0"}, ${r.hi ? indexKey(r.hi) : "end"})` : "-"]);
          }
          if (it.kind !== "expr" && it.kind !== "store") walk(it.body);
        }
      };
      walk(scheduleSection(s));
    }
  return out;
}

const compiled = (fn: ReturnType<typeof step>) => compileJs(k.traceFunction("step", fn, specs).graph, { verify: true, fuseAttention: true });

describe("causal skip", () => {
  test("the causal forward, dQ and dK/dV loops run over the keys a query sees, the queries a key is seen by", () => {
    const r = ranges(compiled(step({ isCausal: true })).program);
    const loops = [...r.values()].flat();
    // The forward's online softmax (it keeps the row max and sum for the backward), dQ's two
    // passes (Σ dP·P; dQ), dK/dV's one.
    expect(loops.filter((x) => x === "[0, o1 + 1)").length).toBe(3);
    expect(loops.filter((x) => x === "[o1, end)").length).toBe(1);
    expect(loops.filter((x) => x === "-").length).toBe(0);
  });

  test("a forward block of four query rows loops up to its last row's keys", () => {
    const s8 = [k.f32([2, 8, 3]), k.f32([2, 8, 3]), k.f32([2, 8, 3])];
    const fn = (q: k.Tensor, kk: k.Tensor, v: k.Tensor) => F.scaledDotProductAttention(q, kk, v, { isCausal: true });
    const p = compileJs(k.traceFunction("fwd", fn, s8).graph, { verify: true, fuseAttention: true }).program;
    const found = p.kernels.flatMap((kernel) =>
      kernel.sections.flatMap((s) =>
        scheduleSection(s).flatMap(function walk(it: ScheduleItem): string[] {
          if (it.kind === "expr" || it.kind === "store") return [];
          const here = it.kind === "reduce" && it.vars.some((v) => v.extent === 8) ? [reduceRange(s, it.vars, it.reduces)] : [];
          return [...here.map((r) => (r?.hi ? `[0, ${indexKey(r.hi)})` : "-")), ...it.body.flatMap(walk)];
        }),
      ),
    );
    expect(found).toEqual(["[0, 4*o1 + 4)"]);
  });

  test("no range without a causal triangle, nor for one that hides a whole row (j < i)", () => {
    for (const opts of [{}, { mask: () => k.tril(k.full([L, L], 1), -1).gt(0.5) }]) {
      const loops = [...ranges(compiled(step(opts)).program).values()].flat();
      expect(loops.length).toBeGreaterThan(0);
      expect(loops.every((x) => x === "-")).toBe(true);
    }
  });

  test("cuda and webgpu loops start and end at the range (their runs: test/targets/attention-backward.test.ts)", () => {
    const g = k.traceFunction("step", step({ isCausal: true }), specs).graph;
    const cuda = compileCuda(g, { fuseAttention: true })
      .artifact.kernels.map((kk) => kk.source)
      .join("\n");
    expect(cuda.match(/for \(int r\d+ = 0; r\d+ < \(\(o1 \+ 1\) < 7 \? \(o1 \+ 1\) : 7\); r\d+\+\+\)/g)?.length).toBe(3);
    expect(cuda).toMatch(/for \(int r\d+ = max\(0, \(o1\)\); r\d+ < 7; r\d+\+\+\)/);
    const wgsl = compileWebGpu(g, { fuseAttention: true })
      .artifact.kernels.map((kk) => kk.source)
      .join("\n");
    expect(wgsl.match(/for \(var r\d+: i32 = 0; r\d+ < select\(7, \(o1 \+ 1\), \(o1 \+ 1\) < 7\); r\d+\+\+\)/g)?.length).toBe(3);
    expect(wgsl).toMatch(/for \(var r\d+: i32 = max\(0, \(o1\)\); r\d+ < 7; r\d+\+\+\)/);
  });

  test("js loops start and end at the range; js and wasm match the interpreter", async () => {
    const fn = step({ isCausal: true });
    const { artifact } = compiled(fn);
    const source = artifact.kernels.map((kk) => (kk as { source?: string }).source ?? "").join("\n");
    expect(source).toMatch(/for \(let r\d+ = 0; r\d+ < Math\.min\(7, o1 \+ 1\); r\d+\+\+\)/);
    expect(source).toMatch(/for \(let r\d+ = Math\.max\(0, o1\); r\d+ < 7; r\d+\+\+\)/);
    const data = specs.map((s, i) =>
      randomF32(
        s.shape.reduce((a, b) => a * b, 1),
        40 + i,
      ),
    );
    const expected = runRef(fn, specs, data).outputs.map((o) => Array.from(o.data));
    for (const target of ["js", "wasm"]) {
      const exe = await k.compile(fn, specs, { target, fuseAttention: true });
      const got = (await exe.run(data)) as { data: ArrayLike<number> }[];
      got.forEach((g, i) => expectClose(g.data, expected[i]!, 2e-5, 2e-4));
      await exe.close?.();
    }
  });
});
