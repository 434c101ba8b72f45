// FileCheck tests of the kernel level: each `.kir` file in ./kir names stages on a `// RUN:`
// line and holds input IR plus CHECK lines. Graph passes may come first (`simplify`); `lower`
// fuses and lowers the graph (untiled, as the driver's lower stage); then kernel passes run
// (`tile`, `block-contraction`, webgpu's `matmul-form`, `row-kernels` and `vector-form`: the driver's own pass
// objects through its loop, each output verified); `device-layout` last prints WebGPU's
// post-memory-plan stage as the driver dumps it (splitting by binding limit, packing, the form
// each dispatch renders, where each buffer lives) instead of kernel IR. The input (graph or kernel IR) round-trips print → parse → print byte-identically,
// and so does every kernel program produced.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { parseModule } from "../../compiler/ir/parser.ts";
import { printModule } from "../../compiler/ir/printer.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { KernelProgram } from "../../compiler/kernel/kernel-ir.ts";
import { lowerProgram } from "../../compiler/kernel/lower.ts";
import { isKernelIrText, parseKernelModule } from "../../compiler/kernel/parser.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import { verifyKernelProgram } from "../../compiler/kernel/verify.ts";
import { planFusion } from "../../compiler/passes/fuse.ts";
import { passByName, runLevel, runPasses, startPassRun } from "../../compiler/pipeline.ts";
import type { KernelPass } from "../../compiler/backend.ts";
import { kernelLevel } from "../../compiler/compile.ts";
import { blockContractionPass, tilePass } from "../../compiler/kernel-passes.ts";
import { planProgramMemory } from "../../compiler/kernel/program-memory.ts";
import { webGpuBackend } from "../../targets/webgpu.ts";
import { matmulFormPass, rowKernelsPass, vectorFormPass } from "../../targets/webgpu-passes.ts";
import { readDirectives, readRunLine, runFileCheck } from "../util/filecheck.ts";

const here = join(dirname(fileURLToPath(import.meta.url)), "kir");
const kirFiles = readdirSync(here)
  .filter((f) => f.endsWith(".kir"))
  .sort();

/** The driver's kernel passes (compiler/kernel-passes.ts; webgpu's with their default options), by the names RUN lines use. */
const KERNEL_PASSES: ReadonlyMap<string, KernelPass> = new Map(
  [tilePass, blockContractionPass, matmulFormPass(), rowKernelsPass(), vectorFormPass()].map((p) => [p.name, p]),
);

/** One kernel pass through the driver's loop (compiler/pipeline.ts runLevel): verified after it runs. */
function runKernelPass(p: KernelProgram, pass: KernelPass): KernelProgram {
  return runLevel(startPassRun({ verify: true }, [pass.name]), p, [pass], kernelLevel);
}

/** WebGPU's device-layout stage under the default limits, as the driver runs and dumps it (NN-device-layout.txt). */
function formatWebGpuLayout(p: KernelProgram): string {
  const stage = webGpuBackend.layout!;
  return stage.format(p, stage.run(p, planProgramMemory(p, webGpuBackend.memory), {}));
}

/** Runs the RUN stages over the file's IR; returns the text the CHECK lines read and every program made. */
function runStages(text: string, file: string, stages: readonly string[]): { output: string; programs: KernelProgram[] } {
  let graphs: Graph[] | undefined;
  let programs: KernelProgram[] | undefined;
  if (isKernelIrText(text)) programs = parseKernelModule(text, file);
  else graphs = parseModule(text, file);
  const made: KernelProgram[] = [];
  for (const [i, stage] of stages.entries()) {
    if (stage === "device-layout") {
      if (!programs || i !== stages.length - 1) throw new Error(`${file}: device-layout must be the last stage, after lowering`);
      return { output: programs.map(formatWebGpuLayout).join("\n"), programs: made };
    }
    if (stage === "lower") {
      if (!graphs) throw new Error(`${file}: 'lower' needs graph IR input`);
      programs = graphs.map((g) => lowerProgram(g, planFusion(g), { tile: false }));
      graphs = undefined;
    } else if (graphs) {
      graphs = graphs.map((g) => runPasses(g, [passByName(stage)], { verify: true }).graph);
      continue;
    } else {
      const pass = KERNEL_PASSES.get(stage);
      if (!pass) throw new Error(`${file}: unknown kernel pass '${stage}' (known: lower, ${[...KERNEL_PASSES.keys()].join(", ")}, device-layout)`);
      programs = programs!.map((p) => runKernelPass(p, pass));
    }
    for (const p of programs) verifyKernelProgram(p, stage);
    made.push(...programs);
  }
  if (graphs) return { output: printModule(graphs), programs: made };
  return { output: programs!.map(printKernelProgram).join("\n"), programs: made };
}

test("there are kernel-level .kir tests to run", () => {
  expect(kirFiles.length).toBeGreaterThan(0);
});

describe.each(kirFiles)("%s", (file) => {
  const text = readFileSync(join(here, file), "utf8");
  const stages = readRunLine(text);

  test("the input round-trips print → parse → print", () => {
    if (isKernelIrText(text)) {
      const printed = parseKernelModule(text, file).map(printKernelProgram).join("\n");
      expect(parseKernelModule(printed, file).map(printKernelProgram).join("\n")).toBe(printed);
    } else {
      const printed = printModule(parseModule(text, file));
      expect(printModule(parseModule(printed, file))).toBe(printed);
    }
  });

  test("the RUN stages produce what the CHECK lines describe, and their kernel IR round-trips", () => {
    expect(stages?.length, `${file}: no '// RUN: <stages>' line`).toBeGreaterThan(0);
    const { output, programs } = runStages(text, file, stages!);
    expect(readDirectives(text).length, `${file} has no CHECK lines`).toBeGreaterThan(0);
    const result = runFileCheck(text, output);
    expect(result.ok, `${file}:\n${result.message}\n--- output ---\n${output}`).toBe(true);
    for (const p of programs) {
      const printed = printKernelProgram(p);
      const parsed = parseKernelModule(printed, file);
      expect(parsed).toStrictEqual([p]);
      expect(printKernelProgram(parsed[0]!)).toBe(printed);
    }
  });
});
