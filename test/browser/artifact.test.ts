// Standalone artifacts in a real browser: headless Chromium (Debian's, driven by
// playwright-core) loads artifact folders over http://127.0.0.1 — a secure context, so
// navigator.gpu exists — imports their generated index.js, and runs them; every output is
// compared with the float64 interpreter. The WebGPU artifact runs on Chromium's own Dawn
// (Vulkan: lavapipe on a machine without a GPU); the JS artifact is the fallback check, and
// the wasm artifact runs single-threaded on the page's own thread, and on 2 Web Workers from
// a worker of a second, cross-origin-isolated page (COOP/COEP headers).
// No Chromium or no adapter: the cases skip with a notice, unless KILN_REQUIRE_WEBGPU=1.

import { HyperStore } from "../../dsl/hyper.ts";
import { cpSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, describe, expect, test } from "vitest";
import * as k from "kiln";
import { compileWebGpu } from "../../targets/webgpu.ts";
import { writeArtifactFolder } from "../../targets/artifact-folder.ts";
import { traceProgram } from "../../dsl/program.ts";
import { mlpForward } from "../../examples/mlp.ts";
import { scaleSum, trainStep } from "../artifact/fixtures/tiny-model.ts";

const CHROMIUM = process.env["KILN_CHROMIUM"] ?? "/usr/bin/chromium";
const REQUIRE_WEBGPU = process.env["KILN_REQUIRE_WEBGPU"] === "1";
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-angle=vulkan",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".wasm": "application/wasm",
  ".js": "text/javascript",
  ".json": "application/json",
  ".html": "text/html",
  ".wgsl": "text/plain",
  ".ts": "text/plain",
};

/**
 * Runs in a module worker of the cross-origin-isolated page: loads the artifact's runtime
 * directly and runs its runner with the threads asked for (every section split), answering
 * with the outputs, the runner's thread count and `crossOriginIsolated`, or an error message.
 */
const ISOLATED_WORKER = `self.onmessage = async (e) => {
  const { base, inputs, threads, steps } = e.data;
  try {
    if (steps) {
      // The loader's own path: load() picks the thread count (hardwareConcurrency here).
      const mod = await import(base + "index.js");
      const model = await mod.load();
      const typed = {};
      for (const [name, values] of Object.entries(inputs)) typed[name] = mod.inputs[name].dtype === "i32" ? Int32Array.from(values) : Float32Array.from(values);
      const losses = [];
      for (let i = 0; i < steps; i++) losses.push((await model.run(typed)).loss.data[0]);
      await model.close();
      self.postMessage({ isolated: self.crossOriginIsolated, losses });
      return;
    }
    const { loadArtifact } = await import(base + "runtime/artifact/load.js");
    const { WasmArtifactRunner } = await import(base + "runtime/wasm/run-artifact.js");
    const loaded = await loadArtifact(new URL(base));
    const runner = await WasmArtifactRunner.create(loaded.artifact, { threads, minParallelWork: 0 });
    const typed = {};
    for (const io of loaded.artifact.inputs) typed[io.name] = { dtype: io.dtype, shape: io.shape, data: Float32Array.from(inputs[io.name]) };
    const out = runner.run(typed);
    const threadsUsed = runner.threads;
    await runner.close();
    self.postMessage({ isolated: self.crossOriginIsolated, threads: threadsUsed, outputs: Object.fromEntries(Object.entries(out).map(([n, t]) => [n, Array.from(t.data)])) });
  } catch (err) {
    self.postMessage({ error: String(err && err.message) });
  }
};`;

/**
 * Serves `folders` (URL prefix → directory) and a blank page at /, from 127.0.0.1 on a free port.
 * `isolated`: every response carries COOP/COEP (the page is cross-origin isolated), and /worker.js is ISOLATED_WORKER.
 */
async function serve(folders: Readonly<Record<string, string>>, { isolated = false } = {}): Promise<{ origin: string; close: () => void }> {
  const isolation: Record<string, string> = isolated ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } : {};
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    for (const [name, value] of Object.entries(isolation)) res.setHeader(name, value);
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>kiln artifact check</title>");
      return;
    }
    if (isolated && url.pathname === "/worker.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(ISOLATED_WORKER);
      return;
    }
    const [, prefix, ...rest] = url.pathname.split("/");
    const root = folders[prefix ?? ""];
    const file = root === undefined ? undefined : path.join(root, ...rest.map(decodeURIComponent));
    if (!file || !file.startsWith(root!) || !existsSync(file) || statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

interface BrowserSetup {
  readonly browser?: Browser;
  readonly page?: Page;
  readonly webgpu: boolean;
  readonly notice?: string;
}

async function openBrowser(origin: string): Promise<BrowserSetup> {
  if (!existsSync(CHROMIUM)) return { webgpu: false, notice: `no Chromium at ${CHROMIUM}` };
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  } catch (e) {
    return { webgpu: false, notice: `Chromium at ${CHROMIUM} did not start: ${(e as Error).message.split("\n")[0]}` };
  }
  const page = await browser.newPage();
  await page.goto(`${origin}/`);
  const adapter = await page.evaluate(async () => {
    const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    if (!gpu) return "navigator.gpu is missing";
    return (await gpu.requestAdapter()) ? "ok" : "requestAdapter() returned null";
  });
  return adapter === "ok" ? { browser, page, webgpu: true } : { browser, page, webgpu: false, notice: `Chromium has no WebGPU adapter: ${adapter}` };
}

const tmp = (name: string): string => mkdtempSync(path.join(os.tmpdir(), `kiln-browser-${name}-`));

/** Saves `program` compiled for WebGPU (no Node adapter needed: the artifact is built for WebGPU's default limits). */
function saveWebGpu(program: k.Program, dir: string, state?: Record<string, k.HostOutput>): void {
  const traced = traceProgram(program);
  const graph = traced.graph;
  // A train step's hyperparameters travel in the weights as the state entry `hyper`, as exe.save writes them.
  writeArtifactFolder(dir, {
    artifact: compileWebGpu(graph).artifact,
    graph,
    ...(state ? { state: { ...state, ...new HyperStore(traced.hyper).inputs() } } : {}),
  });
}

const DIGITS = 64;
const predict = k.program(mlpForward, [k.f32([DIGITS, 784]), k.f32([256, 784]), k.f32([256]), k.f32([10, 256]), k.f32([10])], { name: "predict" });

// Folders: the tiny train step and the stateless function for js, wasm and webgpu, and MNIST's predict for webgpu.
const folders: Record<string, string> = {};
const trainExe = await k.compile(trainStep, undefined, { target: "js" });
const trainState = trainExe.state() as Record<string, k.HostOutput>;
for (const target of ["js", "wasm", "webgpu"] as const) {
  folders[`${target}-train`] = tmp(`${target}-train`);
  folders[`${target}-plain`] = tmp(`${target}-plain`);
}
await trainExe.save(folders["js-train"]!);
await (await k.compile(scaleSum, undefined, { target: "js" })).save(folders["js-plain"]!);
// The wasm folders come from exe.save() like the js ones (threads: 1 keeps Node's pool out of it),
// the train step starting from the js executable's state so one reference covers both.
const wasmTrain = await k.compile(trainStep, undefined, { target: "wasm", threads: 1 });
wasmTrain.loadState(trainState);
await wasmTrain.save(folders["wasm-train"]!);
await (await k.compile(scaleSum, undefined, { target: "wasm", threads: 1 })).save(folders["wasm-plain"]!);
saveWebGpu(trainStep, folders["webgpu-train"]!, trainState);
saveWebGpu(scaleSum, folders["webgpu-plain"]!);
folders["webgpu-predict"] = tmp("webgpu-predict");
saveWebGpu(predict, folders["webgpu-predict"]);

// The js folder with one weight byte flipped: the page must refuse it, naming the file.
folders["js-corrupt"] = tmp("js-corrupt");
cpSync(folders["js-train"]!, folders["js-corrupt"], { recursive: true });
const weightsFile = path.join(folders["js-corrupt"], "weights.safetensors");
const weightBytes = readFileSync(weightsFile);
weightBytes[weightBytes.length - 1] = weightBytes[weightBytes.length - 1]! ^ 1;
writeFileSync(weightsFile, weightBytes);

const server = await serve(folders);
const isolatedServer = await serve(folders, { isolated: true });
const setup = await openBrowser(server.origin);
if (setup.notice) console.warn(`test/browser: ${setup.notice}; the browser cases ${REQUIRE_WEBGPU ? "fail (KILN_REQUIRE_WEBGPU=1)" : "skip"}`);

afterAll(async () => {
  await setup.browser?.close();
  server.close();
  isolatedServer.close();
});

type Wire = Record<string, { dtype: string; shape: number[]; data: number[] }>;

/**
 * Runs in the page: imports the folder's index.js, load()s it from its own URL and runs it
 * `runs` times, returning outputs as plain arrays. A string, not a function: vitest would
 * rewrite a function's `import()` into its own loader, which the page does not have.
 */
const PAGE_SCRIPT = `async ({ url, inputs, runs }) => {
  const mod = await import(url);
  const model = await mod.load();
  const typed = {};
  for (const [name, values] of Object.entries(inputs)) typed[name] = mod.inputs[name].dtype === "i32" ? Int32Array.from(values) : Float32Array.from(values);
  const results = [];
  for (let i = 0; i < runs; i++) {
    const out = await model.run(typed);
    results.push(Object.fromEntries(Object.entries(out).map(([n, t]) => [n, { dtype: t.dtype, shape: [...t.shape], data: Array.from(t.data) }])));
  }
  return results;
}`;

async function runInBrowser(folder: string, inputs: Record<string, number[]>, runs = 1): Promise<Wire[]> {
  const args = { url: `${server.origin}/${folder}/index.js`, inputs, runs };
  return (await setup.page!.evaluate(`(${PAGE_SCRIPT})(${JSON.stringify(args)})`)) as Wire[];
}

const x = [0.5, -1, 2, 0.25, -0.5, 1.5, 0, 1];
const y = [2, 0];
const a = [1, 2, 3, 4, 5, 6];
const b = [1, 0, -1, 2, 2, 2];

/** Three training steps on the interpreter from the same initial state: the losses. */
async function referenceLosses(): Promise<number[]> {
  const reference = await k.compile(trainStep, undefined, { target: "reference" });
  reference.loadState(trainState);
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) losses.push(((await reference.run({ x, y })) as { loss: k.HostOutput }).loss.data[0]!);
  return losses;
}

const expectClose = (actual: readonly number[], expected: ArrayLike<number>, tolerance: number): void => {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) =>
    expect(Math.abs(v - expected[i]!), `element ${i}: ${v} vs ${expected[i]}`).toBeLessThanOrEqual(tolerance * (1 + Math.abs(expected[i]!))),
  );
};

const haveBrowser = setup.page !== undefined;
const canRun = (needsWebGpu: boolean): boolean => (needsWebGpu ? setup.webgpu : haveBrowser) || REQUIRE_WEBGPU;

describe.each([
  ["js", false],
  ["wasm", false],
  ["webgpu", true],
] as const)("a %s artifact in headless Chromium", (target, needsWebGpu) => {
  test.runIf(canRun(needsWebGpu))("a stateless function matches the interpreter", async () => {
    expect(needsWebGpu ? setup.webgpu : haveBrowser, setup.notice).toBe(true);
    const [out] = await runInBrowser(`${target}-plain`, { a, b });
    const reference = (await (await k.compile(scaleSum, undefined, { target: "reference" })).run({ a, b })) as { total: k.HostOutput; doubled: k.HostOutput };
    expect(out!["total"]!.shape).toEqual([2]);
    expectClose(out!["total"]!.data, reference.total.data, 1e-6);
    expectClose(out!["doubled"]!.data, reference.doubled.data, 0);
  });

  test.runIf(canRun(needsWebGpu))("three training steps give the interpreter's losses (state kept in the page)", async () => {
    expect(needsWebGpu ? setup.webgpu : haveBrowser, setup.notice).toBe(true);
    const runs = await runInBrowser(`${target}-train`, { x, y }, 3);
    expectClose(
      runs.map((r) => r["loss"]!.data[0]!),
      await referenceLosses(),
      1e-5,
    );
  });
});

test.runIf(canRun(false))("the wasm runtime in a page defaults to one thread and refuses threads > 1 with a clear message", async () => {
  expect(haveBrowser, setup.notice).toBe(true);
  const base = `${server.origin}/wasm-plain/`;
  const message = await setup.page!.evaluate(`(async () => {
    const { loadArtifact } = await import("${base}runtime/artifact/load.js");
    const { WasmArtifactRunner } = await import("${base}runtime/wasm/run-artifact.js");
    const loaded = await loadArtifact(new URL("${base}"));
    const single = await WasmArtifactRunner.create(loaded.artifact);
    if (single.threads !== 1) return "default threads: " + single.threads;
    return WasmArtifactRunner.create(loaded.artifact, { threads: 2 }).then(() => "created", (e) => e.message);
  })()`);
  expect(message).toMatch(/^artifact \S+: 2 wasm threads need Node, or a Web Worker in a cross-origin-isolated page; run with threads: 1$/);
});

test.runIf(canRun(false))(
  "in a worker of a cross-origin-isolated page the wasm runtime splits every section over 2 Web Workers and matches the interpreter; load() trains there too",
  async () => {
    expect(haveBrowser, setup.notice).toBe(true);
    const page = await setup.browser!.newPage();
    try {
      await page.goto(`${isolatedServer.origin}/`);
      const answer = (await page.evaluate(`new Promise((resolve) => {
      const worker = new Worker("/worker.js", { type: "module" });
      worker.onmessage = (e) => { worker.terminate(); resolve(e.data); };
      worker.onerror = (e) => resolve({ error: "worker: " + e.message });
      worker.postMessage(${JSON.stringify({ base: `${isolatedServer.origin}/wasm-plain/`, inputs: { a, b }, threads: 2 })});
    })`)) as { error?: string; isolated: boolean; threads: number; outputs: Record<string, number[]> };
      expect(answer.error).toBeUndefined();
      expect(answer.isolated).toBe(true);
      expect(answer.threads).toBe(2);
      const reference = (await (await k.compile(scaleSum, undefined, { target: "reference" })).run({ a, b })) as { total: k.HostOutput; doubled: k.HostOutput };
      expectClose(answer.outputs["total"]!, reference.total.data, 1e-6);
      expectClose(answer.outputs["doubled"]!, reference.doubled.data, 0);
      const training = (await page.evaluate(`new Promise((resolve) => {
      const worker = new Worker("/worker.js", { type: "module" });
      worker.onmessage = (e) => { worker.terminate(); resolve(e.data); };
      worker.onerror = (e) => resolve({ error: "worker: " + e.message });
      worker.postMessage(${JSON.stringify({ base: `${isolatedServer.origin}/wasm-train/`, inputs: { x, y }, steps: 3 })});
    })`)) as { error?: string; isolated: boolean; losses: number[] };
      expect(training.error).toBeUndefined();
      expectClose(training.losses, await referenceLosses(), 1e-5);
    } finally {
      await page.close();
    }
  },
);

test.runIf(canRun(false))("the page refuses a folder whose weights do not match the manifest, naming the file", async () => {
  expect(haveBrowser, setup.notice).toBe(true);
  const message = await setup.page!.evaluate(`import("${server.origin}/js-corrupt/index.js").then((m) => m.load()).then(() => "loaded", (e) => e.message)`);
  expect(message).toMatch(/^weights\.safetensors: sha256 mismatch \(manifest says [0-9a-f]{64}, file has [0-9a-f]{64}\)$/);
});

test.runIf(canRun(true))("the MNIST MLP's predict artifact on WebGPU in Chromium matches the interpreter on real digits", async () => {
  expect(setup.webgpu, setup.notice).toBe(true);
  const digits = k.data.mnist("test", { count: DIGITS });
  const random = (n: number, scale: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * scale);
  const weights = { w1: random(256 * 784, 0.05), b1: random(256, 0.05), w2: random(10 * 256, 0.1), b2: random(10, 0.1) };
  const names = (JSON.parse(readFileSync(path.join(folders["webgpu-predict"]!, "manifest.json"), "utf8")) as { inputs: { name: string }[] }).inputs.map(
    (i) => i.name,
  );
  const values = [Array.from(digits.images), weights.w1, weights.b1, weights.w2, weights.b2];
  const [out] = await runInBrowser("webgpu-predict", Object.fromEntries(names.map((n, i) => [n, values[i]!])));
  const reference = (await (await k.compile(predict, undefined, { target: "reference" })).run(values)) as k.HostOutput;
  const logits = Object.values(out!)[0]!;
  expect(logits.shape).toEqual([DIGITS, 10]);
  expectClose(logits.data, reference.data, 1e-4);
});
