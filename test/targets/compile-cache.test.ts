// The wasm target's persistent compile cache (targets/compile-cache.ts, KILN_COMPILE_CACHE): a
// second compile of the same graph reads the artifact back — the same kernels, the same losses
// bit for bit as a fresh compile — and entries that are corrupt, stale or refused by the engine
// are ignored with a warning naming the file and why, then replaced by a fresh compile.

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import * as k from "kiln";
import { createWasmExecutor, type WasmExecutor } from "../../targets/wasm.ts";
import { printKernelProgram } from "../../compiler/kernel/print.ts";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const saved = process.env["KILN_COMPILE_CACHE"];
let dir: string;
const executors: WasmExecutor[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "kiln-compile-cache-"));
  process.env["KILN_COMPILE_CACHE"] = dir;
});
afterEach(async () => {
  if (saved === undefined) delete process.env["KILN_COMPILE_CACHE"];
  else process.env["KILN_COMPILE_CACHE"] = saved;
  vi.restoreAllMocks();
  await Promise.all(executors.splice(0).map((e) => e.close()));
});

function stepGraph(): Graph {
  k.manualSeed(1);
  const net = k.nn.sequential(k.nn.linear(16, 32), k.nn.relu(), k.nn.linear(32, 4));
  const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.1 }));
  return k.traceFunction("cached_step", step as never, [k.f32([8, 16]), k.i32([8])]).graph;
}

const inputsOf = (g: Graph): Record<string, HostTensor> =>
  graphInputs(g, ({ dtype, count, index, name }) =>
    dtype === "i32"
      ? Int32Array.from({ length: count }, (_, j) => (j + index) % 4)
      : Float64Array.from({ length: count }, (_, j) => (name === "hyper" ? 0.1 : Math.fround(0.3 * Math.cos(0.7 * j + index)))),
  );

async function compileRun(g: Graph, opts = {}) {
  const exe = await createWasmExecutor(g, { threads: 1, ...opts });
  executors.push(exe);
  const out = await exe.run(inputsOf(g));
  return { exe, stages: exe.compileStats!.stages.map((s) => s.name), out: Object.fromEntries(Object.entries(out).map(([n, t]) => [n, Array.from(t.data)])) };
}

const entries = (): string[] => readdirSync(dir).filter((f) => f.endsWith(".json"));
const warnings = () => vi.spyOn(process, "emitWarning").mockImplementation(() => {});

describe("the wasm compile cache", () => {
  test("a hit gives the fresh compile's kernels and results bit for bit, skipping the passes; its kernel program is compiled when read", async () => {
    const g = stepGraph();
    const fresh = await compileRun(g);
    expect(fresh.stages).toContain("render");
    expect(entries()).toHaveLength(1);
    const hit = await compileRun(g);
    expect(hit.stages).toEqual(["compile-cache", "runner"]);
    expect(hit.exe.artifact.kernels.map((kk) => kk.source)).toEqual(fresh.exe.artifact.kernels.map((kk) => kk.source));
    expect(hit.out).toEqual(fresh.out);
    expect(printKernelProgram(hit.exe.compiled.program)).toBe(printKernelProgram(fresh.exe.compiled.program));
    // exe.save's portable twins (not stored: built by that compile when read).
    expect(hit.exe.artifact.kernels.map((kk) => kk.portableSource)).toEqual(fresh.exe.artifact.kernels.map((kk) => kk.portableSource));
    // Another graph (other options too) is another entry.
    await compileRun(g, { block: false });
    expect(entries()).toHaveLength(2);
  });

  test("off without KILN_COMPILE_CACHE (or =0), and for compiles that dump or verify", async () => {
    const g = stepGraph();
    process.env["KILN_COMPILE_CACHE"] = "0";
    await compileRun(g);
    process.env["KILN_COMPILE_CACHE"] = dir;
    await compileRun(g, { verify: true });
    expect(entries()).toEqual([]);
  });

  test.each([
    ["not JSON", (text: string) => text.slice(0, 100), /not valid JSON/],
    ["stale (another build)", (text: string) => JSON.stringify({ ...JSON.parse(text), build: "0".repeat(64) }), /another build of Kiln \(stale\)/],
    ["another key", (text: string) => JSON.stringify({ ...JSON.parse(text), key: "f".repeat(64) }), /its key is another compile's/],
    [
      "a module the engine refuses",
      (text: string) => {
        const entry = JSON.parse(text);
        entry.artifact.kernels[0].source = Buffer.from("not a wasm module").toString("base64");
        return JSON.stringify(entry);
      },
      /the engine refused it \(.*not a valid wasm module/,
    ],
  ])("an entry that is %s is ignored with a warning naming the file, and replaced", async (_, spoil, why) => {
    const g = stepGraph();
    const fresh = await compileRun(g);
    const [name] = entries();
    const file = path.join(dir, name!);
    const good = readFileSync(file, "utf8");
    writeFileSync(file, spoil(good));
    const warned = warnings();
    const again = await compileRun(g);
    expect(again.out).toEqual(fresh.out);
    expect(warned).toHaveBeenCalledTimes(1);
    const message = String(warned.mock.calls[0]![0]);
    expect(message).toContain(file);
    expect(message).toMatch(why);
    expect(message).toMatch(/^kiln compile cache: ignoring /);
    // Replaced by the fresh compile: the next compile hits without a warning.
    expect(readFileSync(file, "utf8")).toBe(good);
    const third = await compileRun(g);
    expect(third.stages[0]).toBe("compile-cache");
    expect(warned).toHaveBeenCalledTimes(1);
  });
});
