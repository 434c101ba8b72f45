// One driver, one truth: `kiln dump --target T --all` writes every stage of the compile
// (graph passes, fusion groups, kernel IR after lowering and each kernel pass, the memory
// plan, the rendered kernels), the kernel stages parse back with `kiln check`, and the
// rendered sources are byte-identical to the kernels `kiln compile --target T` writes and
// k.compile builds (kiln compile saves k.compile's artifact), for examples/mlp.ts trainStep on
// js, wasm, webgpu and cuda.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { traceProgram } from "../../dsl/program.ts";
import { trainStep } from "../../examples/mlp.ts";
import { kernelFileNames } from "../../runtime/artifact/manifest.ts";
import { acquireWebGpu } from "../../runtime/webgpu/device.ts";
import { backendOf } from "../../targets/backends.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const scratch = mkdtempSync(path.join(os.tmpdir(), "kiln-driver-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function kiln(args: readonly string[]): Promise<string> {
  const io = bufferIO("", root);
  const code = await main(args, io);
  expect(io.stderr).toBe("");
  expect(code).toBe(0);
  return io.stdout;
}

/** name → text of every file under `dir` (relative names, sorted). */
function readTree(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, full), readFileSync(full, "utf8"));
  }
  return files;
}

// Kernel passes each backend runs with its default options, in order.
const kernelPasses: Readonly<Record<string, readonly string[]>> = {
  js: ["tile"],
  wasm: ["block-contraction"],
  webgpu: ["matmul-form", "row-kernels", "vector-form", "tune"],
  cuda: ["tile"],
};
// Stages after the memory plan, before render (webgpu: splitting and packing for device limits).
const layoutStages: Readonly<Record<string, readonly string[]>> = { js: [], wasm: [], webgpu: ["device-layout.txt"], cuda: [] };

describe.each(["js", "wasm", "webgpu", "cuda"])("kiln dump --target %s --all", (target) => {
  test("writes every stage; kernel stages parse back; rendered sources equal kiln compile's and k.compile's kernels", async () => {
    const hasAdapter = target !== "webgpu" || (await acquireWebGpu()) !== undefined;
    const dumpDir = path.join(scratch, `dump-${target}`);
    await kiln(["dump", "examples/mlp.ts", "--entry", "trainStep", "--target", target, "--all", "--verify", "--dump-dir", dumpDir]);
    const dump = readTree(dumpDir);

    // Every stage, numbered in one sequence.
    const stages = [...new Set([...dump.keys()].map((name) => name.split("/")[0]!))];
    const expected = [
      "input.kir",
      "simplify.kir",
      "fuse.groups.txt",
      "lower.kir",
      ...kernelPasses[target]!.map((p) => `${p}.kir`),
      "memory-plan.txt",
      ...layoutStages[target]!,
      "render",
    ];
    expect(stages).toEqual(expected.map((s, i) => `${String(i === 0 ? 0 : i).padStart(2, "0")}-${s}`));
    for (const name of [...dump.keys()].filter((n) => n.endsWith(".kir"))) await kiln(["check", path.join(dumpDir, name)]);
    const ext = backendOf(target).artifactFiles.kernelExtension;
    const rendered = new Map([...dump].filter(([name]) => name.includes("-render/")).map(([name, text]) => [path.basename(name), text]));
    expect(rendered.size).toBeGreaterThan(0);
    for (const name of rendered.keys()) expect(name.endsWith(`.${ext}`)).toBe(true);

    // kiln compile (k.compile, then exe.save; for cuda the standalone folder) writes the same
    // kernel sources. Both run through kiln() so that ops whose nearest frame outside Kiln is the
    // caller (inside k.trainStep) record the same loc in both builds.
    if (hasAdapter) {
      const outDir = path.join(scratch, `out-${target}`);
      await kiln(["compile", "examples/mlp.ts", "--entry", "trainStep", "--target", target, "--out", outDir]);
      const kernelsDir = path.join(outDir, "kernels");
      const written = new Map(readdirSync(kernelsDir).map((f) => [f, readFileSync(path.join(kernelsDir, f), "utf8")] as const));
      expect([...written.keys()].sort()).toEqual([...rendered.keys()].sort());
      for (const [name, text] of rendered) expect(written.get(name), name).toBe(text);
    } else {
      // No WebGPU adapter: rendering needs none, so compare with the driver's artifact under
      // the default limits (traced here, so source locations in comments differ: left out).
      const artifact = backendOf(target).compile(traceProgram(trainStep, "trainStep").graph, {}).artifact;
      const names = kernelFileNames(ext, artifact.kernels).map((f) => path.basename(f));
      expect([...names].sort()).toEqual([...rendered.keys()].sort());
      const noLocs = (text: string): string => text.replace(/ loc\("[^"]*":\d+:\d+\)/g, "");
      names.forEach((name, i) => expect(noLocs(rendered.get(name)!), name).toBe(noLocs(artifact.kernels[i]!.source)));
    }
  }, 120_000);
});
