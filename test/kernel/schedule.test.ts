// Lowering and scheduling on small hand-built graphs: what the loop tree looks like for a
// row kernel (reductions hoisted per row), a register-tiled matmul (one k loop feeding 16
// accumulators), a zero pad (a masked load) and a gather (an indirect index).

import { describe, expect, test } from "vitest";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { scheduleSection, type ScheduleItem } from "../../compiler/kernel/schedule.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";

const f32 = (...shape: number[]) => ({ dtype: "f32" as const, shape });

/** The tree as nested strings: loops by variable, reductions by their variables, exprs elided. */
function outline(items: readonly ScheduleItem[]): unknown[] {
  const out: unknown[] = [];
  for (const it of items) {
    if (it.kind === "loop") out.push({ [`for ${it.v.name}<${it.v.extent}`]: outline(it.body) });
    else if (it.kind === "reduce") out.push({ [`reduce ${it.vars.map((v) => v.name).join(",")} x${it.reduces.length}`]: outline(it.body) });
    else if (it.kind === "store") out.push("store");
  }
  return out;
}

const lower = (g: Graph) => lowerProgram(g, planFusion(g));

describe("schedule", () => {
  test("softmax over rows: max and sum run once per row, before the loop over the row", () => {
    const b = new GraphBuilder("softmax");
    const x = b.input("x", f32(3, 5));
    const mx = b.add({ op: "reduce_max", x, axes: [1] });
    const shifted = b.add({ op: "add", x, y: b.add({ op: "neg", x: b.add({ op: "expand", x: mx }, f32(3, 5)) }) });
    const e = b.add({ op: "exp2", x: shifted });
    const s = b.add({ op: "reduce_sum", x: e, axes: [1] });
    const out = b.add({ op: "mul", x: e, y: b.add({ op: "expand", x: b.add({ op: "recip", x: s }) }, f32(3, 5)) });
    const p = lower(b.build([{ name: "y", value: out }]));
    expect(p.kernels).toHaveLength(1);
    expect(outline(scheduleSection(p.kernels[0]!.sections[0]!))).toEqual([
      { "for o0<3": [{ "reduce r0 x1": [] }, { "reduce r1 x1": [] }, { "for o1<5": ["store"] }] },
    ]);
  });

  test("a register-tiled 8x8 matmul: 2x2 tile origins, one k loop with 16 accumulators", () => {
    const b = new GraphBuilder("mm");
    const a = b.input("a", f32(8, 6));
    const w = b.input("w", f32(6, 8));
    const p = lower(b.build([{ name: "c", value: b.add({ op: "dot", lhs: a, rhs: w }) }]));
    const s = p.kernels[0]!.sections[0]!;
    expect(s.tile).toEqual({ rowVar: "o0", colVar: "o1", rows: 4, cols: 4 });
    expect(outline(scheduleSection(s))).toEqual([{ "for o0<2": [{ "for o1<2": [{ "reduce r0 x16": [] }, ...Array(16).fill("store")] }] }]);
    // 4 loads of a and 4 of w per k step: the tile's operands are shared by its 16 products.
    expect(s.exprs.filter((e) => e.op === "load")).toHaveLength(8);
  });

  test("zero padding is a masked load; gather is an indirect index", () => {
    const b = new GraphBuilder("pad_gather");
    const x = b.input("x", f32(4));
    const idx = b.input("idx", { dtype: "i32", shape: [3] });
    const padded = b.add({ op: "pad", x, low: [1], high: [1], value: 0 });
    const picked = b.add({ op: "gather", x, index: idx, axis: 0 });
    const text = printKernelProgram(
      lower(
        b.build([
          { name: "padded", value: padded },
          { name: "picked", value: picked },
        ]),
      ),
    );
    expect(text).toContain("load f32 b0[o0 + -1] if o0 + -1 < 4 && o0 + -1 >= 0");
    expect(text).toMatch(/%0 = load i32 b1\[o0\]\n\s+%1 = load f32 b0\[data\(%0, 0, 3\)\]/);
  });
});
