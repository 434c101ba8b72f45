// k.dumpStages and k.targetDevice: the public API the demo uses instead of reaching into the
// compiler and the runtime. The rendered kernels a dump writes are checked against the ones
// k.compile built on its own path (the executor's artifact), not against the dump code itself.

import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import * as k from "../../dsl/index.ts";
import { parseModule } from "../../compiler/ir/parser.ts";

const mlp = (x: k.Tensor, w: k.Tensor, b: k.Tensor) => x.matmul(w).add(b).relu().sum(1);
const specs = [k.f32([4, 3]), k.f32([3, 5]), k.f32([5])];

describe("k.dumpStages", () => {
  test("writes every stage, and the rendered kernels are the ones k.compile runs", async () => {
    const exe = await k.compile(mlp, specs, { target: "js" });
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-dump-stages-"));
    const files = await k.dumpStages(exe.graph, { target: "js", dir });
    expect(files[0]).toBe("00-input.kir");
    // The traced graph parses back as graph IR.
    const input = readFileSync(path.join(dir, "00-input.kir"), "utf8");
    expect(input).toMatch(/^graph @mlp\(%x: f32\[4,3\]/);
    expect(() => parseModule(input)).not.toThrow();
    // Graph passes, fusion, lowering, the memory plan and the rendered kernels are all there.
    expect(files.some((f) => /^\d\d-fuse\.groups\.txt$/.test(f))).toBe(true);
    expect(files.some((f) => /^\d\d-lower\.kir$/.test(f))).toBe(true);
    expect(files.some((f) => /^\d\d-memory-plan\.txt$/.test(f))).toBe(true);
    const renderDir = readdirSync(dir).find((f) => /^\d\d-render$/.test(f));
    expect(renderDir).toBeDefined();
    const kernels = exe.artifact!.kernels;
    expect(kernels.length).toBeGreaterThan(0);
    const rendered = readdirSync(path.join(dir, renderDir!)).sort();
    expect(rendered).toEqual(kernels.map((kn) => `${kn.name}.js`).sort());
    for (const kn of kernels) expect(readFileSync(path.join(dir, renderDir!, `${kn.name}.js`), "utf8")).toBe(kn.source);
  });

  test("options are strict and the target must build artifacts", async () => {
    const exe = await k.compile(mlp, specs, { target: "js" });
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-dump-stages-"));
    await expect(k.dumpStages(exe.graph, { target: "js", dir, dumpAll: true } as k.DumpStagesOptions)).rejects.toThrow(/dumpAll/);
    await expect(k.dumpStages(exe.graph, { target: "reference", dir })).rejects.toThrow(/no backend builds 'reference' artifacts/);
    await expect(k.dumpStages(exe.graph, { target: "nope", dir })).rejects.toThrow(/nope/);
    // … at the caller's line, like k.compile's target errors
    await expect(k.dumpStages(exe.graph, { target: "nope", dir })).rejects.toThrow(/ at test\/dsl\/dump-stages\.test\.ts:\d+:\d+$/);
  });

  test("cuda dumps where the CUDA runtime cannot run, as `kiln dump --target cuda` does (compiling needs no GPU)", async () => {
    const exe = await k.compile(mlp, specs, { target: "js" });
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-dump-stages-"));
    const files = await k.dumpStages(exe.graph, { target: "cuda", dir });
    const renderDir = readdirSync(dir).find((f) => /^\d\d-render$/.test(f));
    expect(files.some((f) => /^\d\d-lower\.kir$/.test(f))).toBe(true);
    const rendered = readdirSync(path.join(dir, renderDir!));
    expect(rendered.length).toBeGreaterThan(0);
    expect(rendered.every((f) => f.endsWith(".cu"))).toBe(true);
  });
});

describe("k.targetDevice", () => {
  test("CPU targets have no device to describe; an unknown name is an error naming it", async () => {
    expect(await k.targetDevice("js")).toBeUndefined();
    expect(await k.targetDevice("wasm")).toBeUndefined();
    await expect(k.targetDevice("webgpoo")).rejects.toThrow(/unknown target 'webgpoo'/);
  });

  test("webgpu: present exactly when the target is available, and a software adapter is what auto skips", async () => {
    const available = (await k.availableTargets()).includes("webgpu");
    const device = await k.targetDevice("webgpu");
    expect(device !== undefined).toBe(available);
    if (!device) return;
    expect(device.name).not.toBe("");
    // lavapipe/llvmpipe here: software. auto never picks a software adapter.
    if (/llvmpipe|lavapipe|swiftshader/i.test(device.name)) expect(device.software).toBe(true);
    const probe = await k.compile((x: k.Tensor) => x.add(1), [k.f32([1])], { target: "auto" });
    if (device.software) expect(probe.target).not.toBe("webgpu");
  });
});
