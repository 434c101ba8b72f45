// Cross-referenced dumps: a fusion group, its kernel and its generated source name each other.
// Groups in NN-fuse.groups.txt name their roots as the graph dump prints them; sections of the
// kernel IR and comments of the JS, WGSL and CUDA sources (a custom section of wasm modules) carry the user's lines (loc) and the
// module path (scope) they were traced from. Line numbers are found by searching the model's
// source text here, not taken from the compiler.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { parseModule } from "../../compiler/ir/parser.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { parseKernelModule } from "../../compiler/kernel/parser.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import { dumpProgram } from "../../compiler/pipeline.ts";
import { renderCudaKernel } from "../../codegen/cuda/render-cuda.ts";
import { traceProgram } from "../../dsl/program.ts";
import { forward, trainStep } from "../../examples/mlp.ts";
import { webGpuTestEnv } from "../util/webgpu-env.ts";

const thisFile = "test/kernel/xref.test.ts";
/** 1-based line of the first line of `file` containing `marker`. */
function lineOf(file: string, marker: string): number {
  const i = readFileSync(file, "utf8")
    .split("\n")
    .findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`${file}: no line contains '${marker}'`);
  return i + 1;
}

class Mlp extends k.nn.Module {
  fc1 = k.nn.linear(8, 16);
  fc2 = k.nn.linear(16, 4);
  forward(x: k.Tensor): k.Tensor {
    const h = this.fc1.call(x).relu(); // xref: fc1 line
    return this.fc2.call(h); // xref: fc2 line
  }
}

const small = k.program((x: k.Tensor) => new Mlp().call(x), [k.f32([32, 8])], { name: "small" });

describe("cross-referenced dumps", () => {
  test("fusion groups name their roots as the graph dump prints them, with the group's lines and scopes", () => {
    const { graph } = traceProgram(trainStep);
    const { files } = dumpProgram(graph, { all: true });
    const groups = files.find((f) => f.name.endsWith("-fuse.groups.txt"))!.text;
    const fused = files.find((f) => f.name.endsWith("-fuse.kir"))!.text;
    // The fuse step dumps the graph it planned on: every root is a value defined there.
    const defined = new Set([...fused.matchAll(/^\s+(%\S+) = /gm)].map((m) => m[1]!));
    const roots = [...groups.matchAll(/roots=(\S+)/g)].flatMap((m) => m[1]!.split(","));
    expect(roots.length).toBeGreaterThan(5);
    for (const r of roots) expect(defined.has(r) || fused.includes(`(${r}:`) || fused.includes(`, ${r}:`), `root ${r}`).toBe(true);
    // The first layer's matmul group names module "0" (k.nn.sequential's first child).
    const parsed = parseModule(fused)[0]!;
    expect(parsed.nodes.some((n) => n.op === "dot" && n.scope === "0")).toBe(true);
    expect(groups).toMatch(/\[dot_add_max\] \[128,256\] roots=[%\d,]+ .*scope\("0"\)/);
  });

  test("kernel IR sections and JS, WGSL and CUDA sources carry the module's lines and scope", async () => {
    const fc1Line = lineOf(thisFile, "// xref: fc1 line");
    const fc2Line = lineOf(thisFile, "// xref: fc2 line");
    const { graph } = traceProgram(small);
    const program = lowerProgram(graph, planFusion(graph));
    const fc1Kernel = program.kernels.find((kk) => kk.sections.some((s) => s.scopes?.includes("fc1")))!;
    expect(fc1Kernel, "a kernel from module fc1").toBeDefined();
    const section = fc1Kernel.sections.find((s) => s.scopes?.includes("fc1"))!;
    expect(section.locs?.map((l) => `${l.file}:${l.line}`)).toContain(`${thisFile}:${fc1Line}`);
    const fc1Note = new RegExp(`loc\\("${thisFile}":${fc1Line}:\\d+\\).*scope\\("fc1"\\)`);
    const fc2Note = new RegExp(`loc\\("${thisFile}":${fc2Line}:\\d+\\).*scope\\("fc2"\\)`);

    // The kernel IR dump, parsed back, keeps them.
    const kir = dumpProgram(graph, { all: true }).files.find((f) => f.name.endsWith("fuse.kernels.kir"))!.text;
    expect(kir).toMatch(fc1Note);
    expect(
      parseKernelModule(kir)[0]!
        .kernels.flatMap((kk) => kk.sections)
        .some((s) => s.scopes?.includes("fc2")),
    ).toBe(true);

    // JavaScript sources (the artifact k.compile builds).
    const js = await k.compile(small, undefined, { target: "js" });
    const jsSources = js.artifact!.kernels.map((kk) => kk.source).join("\n");
    expect(jsSources).toMatch(fc1Note);
    expect(jsSources).toMatch(fc2Note);

    // CUDA C rendered from the same kernel IR.
    const cuda = program.kernels.map((kk) => renderCudaKernel(kk, program.buffers).source).join("\n");
    expect(cuda).toMatch(fc1Note);
    expect(cuda).toMatch(fc2Note);

    // WebAssembly: the module's `kiln.source` custom section.
    const wasm = await k.compile(small, undefined, { target: "wasm" });
    const wasmNotes = wasm
      .artifact!.kernels.map((kk) =>
        WebAssembly.Module.customSections(new WebAssembly.Module(Uint8Array.from(atob(kk.source), (c) => c.charCodeAt(0))), "kiln.source"),
      )
      .map((found) => new TextDecoder().decode(found[0]))
      .join("\n");
    expect(wasmNotes).toMatch(fc1Note);
    expect(wasmNotes).toMatch(fc2Note);

    // WGSL, where a WebGPU adapter exists.
    if ((await webGpuTestEnv()).available) {
      const gpu = await k.compile(small, undefined, { target: "webgpu" });
      const wgsl = gpu.artifact!.kernels.map((kk) => kk.source).join("\n");
      expect(wgsl).toMatch(fc1Note);
      expect(wgsl).toMatch(fc2Note);
    }
  });

  test("a program without modules has locations and no scope", () => {
    const line = lineOf("examples/mlp.ts", "k.nn.functional.linear(x, w1, b1)");
    const { graph } = traceProgram(forward);
    const program = lowerProgram(graph, planFusion(graph));
    const sections = program.kernels.flatMap((kk) => kk.sections);
    expect(sections.some((s) => s.locs?.some((l) => l.file === "examples/mlp.ts" && l.line === line))).toBe(true);
    expect(sections.every((s) => s.scopes === undefined)).toBe(true);
  });
});
