// WebGPU autotuning (targets/webgpu-tune*.ts, docs/tuning.md): section keys, modes and the
// KILN_TUNE switch, the cache file (round trip, refusal of a corrupt one naming the file),
// defaults per adapter kind; on a device: non-default template parameters against the
// interpreter, a search writing the cache, a later compile using it without searching,
// KILN_TUNE=0 ignoring it, and a saved artifact carrying the choices into a loader that runs
// them without any search. Searches here are over row kernels only (4 small candidates):
// matmul candidates with workgroup memory take seconds each to compile on lavapipe.

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import * as k from "kiln";
import type { Graph } from "../../compiler/ir/types.ts";
import type { HostTensor } from "../../compiler/ir/host-tensor.ts";
import type { Section, SectionForm } from "../../compiler/kernel/kernel-ir.ts";
import { printForm } from "../../compiler/kernel/print.ts";
import { compileWebGpu, createWebGpuExecutor } from "../../targets/webgpu.ts";
import {
  adapterKindOf,
  candidatesFor,
  defaultWorkgroupLimits,
  sectionKey,
  tuneModeOf,
  type TuneAdapter,
  type TuningContext,
} from "../../targets/webgpu-tune.ts";
import { formatTuneCache, loadTuneCache, parseTuneCache, tuneCacheFile, type TuneCache } from "../../targets/webgpu-tune-cache.ts";
import { webGpuTuneCounts } from "../../targets/webgpu-tune-search.ts";
import { loadArtifact } from "../../runtime/artifact/load.ts";
import { buildArtifactFolder } from "../../targets/artifact-folder.ts";
import { WebGpuArtifactRunner, webGpuPipelineCounts } from "../../runtime/webgpu/run-artifact.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { expectArtifactMatchesInterpreter, webGpuTestEnv } from "../util/webgpu-env.ts";
import { FULL } from "../util/full.ts";
import { graphInputs } from "../util/graph-inputs.ts";

const env = await webGpuTestEnv();
const f = k.f32;
type Fn = (...xs: k.Tensor[]) => unknown;
const trace = (fn: Fn, specs: k.InputSpec[]): Graph => k.traceFunction("tune", fn as never, specs).graph;

const matmulBias = trace((a, b, c) => a.matmul(b).add(c).relu(), [f([67, 45]), f([45, 70]), f([70])]);
const softmax = trace((x) => x.softmax(-1), [f([24, 200])]);

function inputsOf(g: Graph): Record<string, HostTensor> {
  let n = 0;
  return graphInputs(g, ({ count }) => Float64Array.from({ length: count }, () => Math.fround(Math.sin(++n * 0.731))));
}

const formedSections = (g: Graph, tuning?: TuningContext): Section[] =>
  compileWebGpu(g, tuning ? { tuning } : {}).program.kernels.flatMap((kk) => kk.sections.filter((s) => s.form));

const lavapipe: TuneAdapter = { vendor: "mesa", architecture: "software", device: "llvmpipe", description: "llvmpipe (LLVM 15)", software: true };
const nvidia: TuneAdapter = { vendor: "nvidia", architecture: "hopper", device: "H100", description: "NVIDIA H100", software: false };

describe("tuning keys, modes, defaults (no device)", () => {
  test("a section's key ignores its form's params, buffer numbering and source lines; a shape changes it", () => {
    const [s] = formedSections(matmulBias);
    // the same matmul after an unrelated kernel: other buffer numbers, other source lines
    const other = formedSections(trace((z, a, b, c) => [z.mul(2), a.matmul(b).add(c).relu()], [f([3]), f([67, 45]), f([45, 70]), f([70])]));
    expect(sectionKey(s!)).toMatch(/^matmul:[0-9a-f]{24}$/);
    expect(sectionKey({ ...s!, form: { kind: "matmul", form: "workgroup", params: { rows: 2, cols: 2, threads: 64, unroll: 8 } }, locs: [] })).toBe(
      sectionKey(s!),
    );
    expect(sectionKey(other[0]!)).toBe(sectionKey(s!));
    const [bigger] = formedSections(trace((a, b, c) => a.matmul(b).add(c).relu(), [f([68, 45]), f([45, 70]), f([70])]));
    expect(sectionKey(bigger!)).not.toBe(sectionKey(s!));
    expect(sectionKey(formedSections(softmax)[0]!)).toMatch(/^row:/);
  });

  test("KILN_TUNE=0 turns tuning off whatever the option says; default: the cache, never a search", () => {
    expect(tuneModeOf(undefined, undefined)).toBe("cache");
    expect(tuneModeOf(true, "0")).toBe(false);
    expect(tuneModeOf("cache", "off")).toBe(false);
    expect(tuneModeOf(undefined, "1")).toBe(true);
    expect(tuneModeOf(false, "1")).toBe(false);
    expect(tuneModeOf(true, undefined)).toBe(true);
  });

  test("defaults per adapter kind: register blocks on a CPU adapter, workgroup tiles on a GPU", () => {
    expect(adapterKindOf(lavapipe)).toBe("cpu");
    expect(adapterKindOf(nvidia)).toBe("discrete");
    expect(adapterKindOf({ ...nvidia, vendor: "intel", description: "Intel(R) UHD Graphics 630" })).toBe("integrated");
    const form = (kind: TuningContext["kind"]) => printForm(formedSections(matmulBias, { kind })[0]!.form!);
    // a CPU adapter keeps the renderer's defaults (tuned on lavapipe): its forms carry no params
    expect(form("cpu")).toBe("form matmul registers");
    expect(form("discrete")).toBe("form matmul workgroup rows=4 cols=4 threads=256 unroll=16");
    expect(form("integrated")).toBe("form matmul workgroup rows=4 cols=4 threads=256 unroll=8");
    expect(printForm(formedSections(softmax)[0]!.form!)).toBe("form row");
    expect(printForm(formedSections(softmax, { kind: "discrete" })[0]!.form!)).toBe("form row threads=128");
    // Without a device a compile is a CPU adapter's, as before tuning existed.
    expect(form("cpu")).toBe(printForm(formedSections(matmulBias)[0]!.form!));
  });

  test("the candidates: the kind's default first, each within the device's workgroup limits", () => {
    const row: SectionForm = { kind: "row" };
    expect(candidatesFor("cpu", row, defaultWorkgroupLimits).map(printForm)).toEqual([
      "form row threads=64",
      "form row threads=32",
      "form row threads=128",
      "form row threads=256",
    ]);
    const small = { ...defaultWorkgroupLimits, maxComputeInvocationsPerWorkgroup: 64, maxComputeWorkgroupSizeX: 64 };
    const mm = candidatesFor("discrete", { kind: "matmul", form: "registers" }, small);
    expect(mm.every((c) => c.kind === "matmul")).toBe(true);
    expect(mm.map(printForm)).not.toContain("form matmul workgroup rows=4 cols=4 threads=256 unroll=16"); // 256 threads
    expect(mm.map(printForm)).toContain("form matmul workgroup rows=4 cols=4 threads=64 unroll=16");
    expect(
      candidatesFor("cpu", { kind: "matmul", form: "registers" }, defaultWorkgroupLimits, "registers").every(
        (c) => c.kind === "matmul" && c.form === "registers",
      ),
    ).toBe(true);
  });

  test("a tuned form from the context replaces the default for its section only", () => {
    const [s] = formedSections(matmulBias);
    const tuned: SectionForm = { kind: "matmul", form: "registers", params: { rows: 4, cols: 8, threads: 32, unroll: 2 } };
    const tuning: TuningContext = { kind: "cpu", adapter: "a", forms: new Map([[sectionKey(s!), tuned]]) };
    const compiled = compileWebGpu(matmulBias, { tuning });
    expect(printForm(formedSections(matmulBias, tuning)[0]!.form!)).toBe("form matmul registers rows=4 cols=8 threads=32 unroll=2");
    expect(compiled.artifact.tuning).toEqual({
      kind: "cpu",
      adapter: "a",
      choices: { [sectionKey(s!)]: { form: "form matmul registers rows=4 cols=8 threads=32 unroll=2", tuned: true } },
    });
  });
});

describe("the tuning cache file (no device)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kiln-tune-cache-"));
  const [s] = formedSections(matmulBias);
  const key = sectionKey(s!);

  test("round trip; the file is named by the adapter and holds its text", () => {
    const file = tuneCacheFile(dir, lavapipe);
    expect(path.basename(file)).toMatch(/^[0-9a-f]{16}\.json$/);
    expect(tuneCacheFile(dir, nvidia)).not.toBe(file);
    const cache: TuneCache = {
      file,
      adapter: "mesa | software | llvmpipe | llvmpipe (LLVM 15)",
      kind: "cpu",
      entries: new Map([
        [key, { form: { kind: "matmul", form: "registers", params: { rows: 4, cols: 4, threads: 64, unroll: 4 } }, ms: 1.5, defaultMs: 2, candidates: 10 }],
      ]),
    };
    const text = formatTuneCache(cache);
    expect(JSON.parse(text).entries[key]).toEqual({ form: "form matmul registers rows=4 cols=4 threads=64 unroll=4", ms: 1.5, defaultMs: 2, candidates: 10 });
    expect(parseTuneCache(text, file, lavapipe)).toEqual(cache.entries);
  });

  test.each([
    ["not JSON", "{", "not JSON"],
    ["another adapter's", JSON.stringify({ format: "kiln-tune", version: 1, adapter: "x", entries: {} }), 'it is for adapter "x"'],
    [
      "a bad form",
      JSON.stringify({
        format: "kiln-tune",
        version: 1,
        adapter: "mesa | software | llvmpipe | llvmpipe (LLVM 15)",
        entries: { [key]: { form: "form matmul workgroup rows=4 cols=4 threads=128 unroll=8" } },
      }),
      "threads=128: the workgroup form needs a square thread count",
    ],
    ["a wrong version", JSON.stringify({ format: "kiln-tune", version: 7, adapter: "", entries: {} }), "version is 7"],
  ])("a corrupt file (%s) is refused naming the file", async (_what, text, message) => {
    const file = tuneCacheFile(dir, lavapipe);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    await expect(loadTuneCache(lavapipe, dir)).rejects.toThrow(file);
    await expect(loadTuneCache(lavapipe, dir)).rejects.toThrow(message);
  });
});

describe.skipIf(!env.available)("tuning on the device", () => {
  let cacheDir: string;
  const saved = { dir: process.env["KILN_CACHE_DIR"], tune: process.env["KILN_TUNE"] };
  beforeEach(() => {
    cacheDir = mkdtempSync(path.join(tmpdir(), "kiln-tune-"));
    process.env["KILN_CACHE_DIR"] = cacheDir;
    delete process.env["KILN_TUNE"];
  });
  afterEach(() => {
    process.env["KILN_CACHE_DIR"] = saved.dir;
    if (saved.tune === undefined) delete process.env["KILN_TUNE"];
    else process.env["KILN_TUNE"] = saved.tune;
  });

  // Matmul shaders take seconds each to compile on lavapipe: the sweep of the workgroup form's
  // tiles runs under KILN_FULL=1; the default loop keeps one small ragged register block.
  const paramCases: [string, Graph, SectionForm][] = [
    ["registers rows=4 cols=2 threads=32 unroll=2", matmulBias, { kind: "matmul", form: "registers", params: { rows: 4, cols: 2, threads: 32, unroll: 2 } }],
    ["row threads=256 (more threads than the row has elements left)", softmax, { kind: "row", threads: 256 }],
    ["row threads=32", softmax, { kind: "row", threads: 32 }],
    ...(FULL
      ? ([
          [
            "registers rows=8 cols=4 threads=128 unroll=1",
            matmulBias,
            { kind: "matmul", form: "registers", params: { rows: 8, cols: 4, threads: 128, unroll: 1 } },
          ],
          [
            "workgroup rows=2 cols=4 threads=64 unroll=8",
            matmulBias,
            { kind: "matmul", form: "workgroup", params: { rows: 2, cols: 4, threads: 64, unroll: 8 } },
          ],
          [
            "workgroup rows=2 cols=2 threads=256 unroll=16",
            matmulBias,
            { kind: "matmul", form: "workgroup", params: { rows: 2, cols: 2, threads: 256, unroll: 16 } },
          ],
        ] as [string, Graph, SectionForm][])
      : []),
  ];
  test.each(paramCases)("non-default params match the interpreter: %s", async (_what, g, form) => {
    const [s] = formedSections(g);
    const compiled = compileWebGpu(g, { tuning: { kind: "cpu", forms: new Map([[sectionKey(s!), form]]) } });
    expect(compiled.artifact.tuning!.choices[sectionKey(s!)]!.tuned).toBe(true);
    await expectArtifactMatchesInterpreter(env.context!, g, compiled.artifact, inputsOf(g));
  });

  test("a search writes the cache; a later compile uses it without searching; KILN_TUNE=0 ignores it", async () => {
    const before = webGpuTuneCounts().searches;
    const searched = await createWebGpuExecutor(softmax, { tune: true, progress: false });
    expect(webGpuTuneCounts().searches - before).toBe(1);
    const [result] = searched.tuning.searched;
    expect(result!.candidates).toBe(4);
    expect(result!.ms).toBeLessThanOrEqual(result!.defaultMs);
    const file = searched.tuning.file!;
    expect(file.startsWith(cacheDir)).toBe(true);
    const onDisk = JSON.parse(readFileSync(file, "utf8"));
    expect(onDisk.entries[result!.key].form).toBe(printForm(result!.form));
    expect(onDisk.adapter).toContain(env.context!.adapter.description);

    const cached = await createWebGpuExecutor(softmax, { progress: false });
    expect(webGpuTuneCounts().searches - before).toBe(1);
    expect(cached.artifact.tuning!.choices[result!.key]).toEqual({ form: printForm(result!.form), tuned: true });
    const inputs = inputsOf(softmax);
    const want = Object.values(interpret(softmax, inputs))[0]!;
    const got = Object.values(await cached.run(inputs))[0]!;
    got.data.forEach((v, i) => expect(Math.abs(v - want.data[i]!)).toBeLessThan(1e-5));

    process.env["KILN_TUNE"] = "0";
    const off = await createWebGpuExecutor(softmax, { tune: true, progress: false });
    expect(webGpuTuneCounts().searches - before).toBe(1);
    expect(off.tuning.mode).toBe(false);
    expect(off.artifact.tuning!.choices[result!.key]).toEqual({ form: "form row", tuned: false });
  });

  test("identical kernels over other buffers share one pipeline (names and comments aside)", async () => {
    // two kernels that differ only in their names, source lines and GPU buffers; a shape no other test uses
    const g = trace((a, b) => [a.exp().mul(1.75), b.exp().mul(1.75)], [f([3, 37]), f([3, 37])]);
    const artifact = compileWebGpu(g, { horizontal: false }).artifact;
    expect(artifact.kernels).toHaveLength(2);
    expect(artifact.kernels[0]!.source).not.toBe(artifact.kernels[1]!.source);
    const before = webGpuPipelineCounts().async;
    await expectArtifactMatchesInterpreter(env.context!, g, artifact, inputsOf(g));
    expect(webGpuPipelineCounts().async - before).toBe(1);
  });

  test("a saved artifact carries the choices; its loader runs them without searching", async () => {
    // A cache entry as a search would leave it (the search itself is the test above).
    const key = sectionKey(formedSections(softmax)[0]!);
    const file = tuneCacheFile(cacheDir, env.context!.adapter);
    mkdirSync(path.dirname(file), { recursive: true });
    const adapter = [env.context!.adapter.vendor, env.context!.adapter.architecture, env.context!.adapter.device, env.context!.adapter.description].join(" | ");
    writeFileSync(file, JSON.stringify({ format: "kiln-tune", version: 1, adapter, entries: { [key]: { form: "form row threads=128" } } }));
    const searches = webGpuTuneCounts().searches;
    const exe = await k.compile((x: k.Tensor) => x.softmax(-1), [f([24, 200])], { target: "webgpu", progress: false });
    expect((exe.artifact as { tuning?: { choices: unknown } }).tuning!.choices).toEqual({ [key]: { form: "form row threads=128", tuned: true } });
    // exe.save's folder without the generated loader (ts-morph takes seconds), read back as loadArtifact reads a folder
    const folder = buildArtifactFolder({ artifact: exe.artifact!, graph: softmax, withoutLoader: true });
    const loaded = await loadArtifact(async (file) => folder.files.get(file));
    const manifest = JSON.parse(new TextDecoder().decode(folder.files.get("manifest.json")));
    const tuning = (exe.artifact as { tuning?: unknown }).tuning;
    expect(tuning).toBeDefined();
    expect(manifest.tuning).toEqual(tuning);
    expect((loaded.artifact as { tuning?: unknown }).tuning).toEqual(tuning);
    expect(Object.values(manifest.tuning.choices as Record<string, { tuned: boolean }>).every((c) => c.tuned)).toBe(true);
    const runner = await WebGpuArtifactRunner.create(env.context!.device, loaded.artifact);
    const x = Float32Array.from({ length: 24 * 200 }, (_, i) => Math.sin(i));
    const [name] = loaded.artifact.inputs.map((io) => io.name);
    const got = Object.values(await runner.run({ [name!]: { dtype: "f32", shape: [24, 200], data: x } }))[0]!;
    const want = (await exe.run([{ dtype: "f32", shape: [24, 200], data: x }])) as { data: ArrayLike<number> };
    expect(Array.from(got.data)).toEqual(Array.from(want.data));
    runner.destroy();
    expect(webGpuTuneCounts().searches).toBe(searches);
  });
});
