// The js runtime and its artifact: the copied threefry agrees with the compiler's, the
// helpers keep the IR's integer semantics, artifacts for another target or format are
// refused, in-place parameter updates are safe, and dumps show groups, kernel IR and sources.

import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileJs } from "../../targets/js.ts";
import { GraphBuilder } from "../../compiler/ir/graph.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { floorDivI32, floorModI32, floatToI32 } from "../../compiler/ir/interpret-compute.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { parseKernelProgram } from "../../compiler/kernel/parser.ts";
import { setLogSink } from "../../compiler/debug.ts";
import { rngValueAt } from "../../compiler/util/threefry.ts";
import { jsKernelRuntime } from "../../runtime/js/helpers.ts";
import type { Artifact } from "../../runtime/artifact/format.ts";
import { JsArtifactRunner } from "../../runtime/js/run-artifact.ts";
import { folderDumpSink } from "../../dsl/dump-folder.ts";

describe("runtime helpers", () => {
  test("rng agrees with compiler/util/threefry.ts bit for bit", () => {
    for (const [seed, stream] of [
      [0, 0],
      [42, 3],
      [-1, 7],
      [2 ** 31 - 1, 0],
    ] as const)
      for (let i = 0; i < 200; i += 7) expect(jsKernelRuntime.rng(seed, stream, i)).toBe(rngValueAt(seed, stream, i));
  });

  test("floor div/mod and f32 -> i32 follow the interpreter", () => {
    for (const a of [-7, -1, 0, 5, 7, -2147483648])
      for (const b of [-3, -2, 1, 2, 3, -1]) {
        expect(jsKernelRuntime.idiv(a, b)).toBe(floorDivI32(a, b));
        expect(jsKernelRuntime.imod(a, b)).toBe(floorModI32(a, b));
      }
    for (const v of [NaN, 1e10, -1e10, 2.7, -2.7, -0.5]) expect(jsKernelRuntime.f2i(v)).toBe(floatToI32(v));
  });
});

describe("artifacts", () => {
  const b = new GraphBuilder("update");
  const p = b.input("p", { dtype: "f32", shape: [4] });
  const gr = b.input("g", { dtype: "f32", shape: [4] });
  const lr = b.add({ op: "const", value: 0.5 }, { dtype: "f32", shape: [4] });
  const step = b.add({ op: "mul", x: gr, y: lr });
  const np = b.add({ op: "add", x: p, y: step });
  const rev = b.add({ op: "flip", x: p, axes: [0] });
  const g = b.build([
    { name: "p_new", value: np, aliases: "p" },
    { name: "p_rev", value: rev },
  ]);

  test("an aliased output written at its own index reuses its input's slot", () => {
    const a = compileJs({ ...g, outputs: [g.outputs[0]!] }).artifact;
    const slotOf = (name: string) => a.buffers.find((x) => x.name === name)!.slot;
    expect(slotOf("p_new")).toBe(slotOf("p"));
  });

  test("a group reading an input another group updates gets its own kernel, so the update stays in place", () => {
    const a = compileJs(g).artifact;
    expect(a.kernels.map((kk) => kk.name)).toEqual(["k0_flip", "k1_mul_add"]); // the reader first, never side by side
    const slotOf = (name: string) => a.buffers.find((x) => x.name === name)!.slot;
    expect(slotOf("p_new")).toBe(slotOf("p"));
    const inputs = {
      p: { dtype: "f32" as const, shape: [4], data: Float64Array.of(1, 2, 3, 4) },
      g: { dtype: "f32" as const, shape: [4], data: Float64Array.of(2, 2, -2, 0) },
    };
    const out = new JsArtifactRunner(a).run(inputs);
    expect(Array.from(out["p_new"]!.data)).toEqual([2, 3, 2, 4]);
    expect(Array.from(out["p_rev"]!.data)).toEqual([4, 3, 2, 1]);
    expect(interpret(g, inputs)["p_new"]!.data).toEqual(Float64Array.of(2, 3, 2, 4));
  });

  test("a kernel that reads the old value at another index forces a copy instead of an in-place write", () => {
    const b2 = new GraphBuilder("shift");
    const x = b2.input("x", { dtype: "f32", shape: [4] });
    const flipped = b2.add({ op: "flip", x, axes: [0] });
    const g2 = b2.build([{ name: "x_new", value: flipped, aliases: "x" }]);
    const a = compileJs(g2).artifact;
    expect(a.buffers.find((x) => x.name === "x_new")!.slot).not.toBe(a.buffers.find((x) => x.name === "x")!.slot);
    const out = new JsArtifactRunner(a).run({ x: { dtype: "f32", shape: [4], data: Float32Array.of(1, 2, 3, 4) } });
    expect(Array.from(out["x_new"]!.data)).toEqual([4, 3, 2, 1]);
  });

  test("a wrong target or format is refused with the artifact's name", () => {
    const a = compileJs(g).artifact;
    expect(() => new JsArtifactRunner({ ...a, target: "webgpu" } as unknown as Artifact)).toThrow(/artifact update: built for target 'webgpu'/);
    expect(() => new JsArtifactRunner({ ...a, version: 99 })).toThrow(/artifact update: version is 99, this loader reads version 2/);
  });

  test("the kernel IR prints canonically (same graph, same text)", () => {
    const text1 = printKernelProgram(compileJs(g).program);
    const text2 = printKernelProgram(compileJs(g).program);
    expect(text1).toBe(text2);
    expect(text1).toContain("store b");
    expect(text1).toContain("load f32 b0[-1*o0 + 3]"); // the flip folded into the index
  });

  test("KILN_DEBUG level 3 logs every stage: graph passes, fuse, lower, each kernel pass, the memory plan", () => {
    const lines: string[] = [];
    const previous = setLogSink((line) => lines.push(line));
    try {
      const { graph } = k.traceFunction("lin3", (x: k.Tensor, w: k.Tensor) => x.matmul(w).relu(), [k.f32([4, 8]), k.f32([8, 4])]);
      compileJs(graph, { debug: 3 });
    } finally {
      setLogSink(previous);
    }
    const stages = lines.filter((l) => l.startsWith("[kiln:3] after ")).map((l) => /^\[kiln:3\] after ([\w-]+):/.exec(l)![1]);
    expect(stages).toEqual(["simplify", "fuse", "lower", "tile", "memory-plan"]);
    // The kernel stages print kernel IR, which parses back.
    const lowerLog = lines.find((l) => l.startsWith("[kiln:3] after lower:"))!;
    expect(parseKernelProgram(lowerLog.slice(lowerLog.indexOf("\n") + 1)).name).toBe("lin3");
  });

  test("dumps: fusion groups with byte scores, kernel IR after lowering and each kernel pass, the memory plan and one source file per kernel", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-js-"));
    const { graph } = k.traceFunction("lin", (x: k.Tensor, w: k.Tensor) => x.matmul(w).relu().mul(2), [k.f32([4, 8]), k.f32([8, 4])]);
    const { artifact } = compileJs(graph, { dumpAfter: ["fuse", "lower", "tile", "memory-plan", "render"], dump: folderDumpSink(dir) });
    const files = readdirSync(dir).sort();
    expect(files).toEqual(["02-fuse.groups.txt", "03-lower.kir", "04-tile.kir", "05-memory-plan.txt", "06-render"]);
    const groups = readFileSync(path.join(dir, "02-fuse.groups.txt"), "utf8");
    expect(groups).toMatch(/fused: saves \d/);
    expect(readFileSync(path.join(dir, "03-lower.kir"), "utf8")).not.toMatch(/ tile\(/);
    expect(readFileSync(path.join(dir, "04-tile.kir"), "utf8")).toMatch(/ tile\(o0: 4, o1: 4\)/);
    expect(readFileSync(path.join(dir, "05-memory-plan.txt"), "utf8")).toMatch(/^memory @lin: \d+ slots/);
    expect(readdirSync(path.join(dir, "06-render"))).toEqual(["k0_dot_max_mul.js"]);
    expect(readFileSync(path.join(dir, "06-render", "k0_dot_max_mul.js"), "utf8")).toBe(artifact.kernels[0]!.source);
  });
});
