// The package as a user gets it: `npm pack` (prepack builds dist/), the tarball installed into
// a scratch project outside the repository (its dependencies from npm's cache where present),
// and there (a) plain `node` — no tsx — imports "kiln", compiles a small MLP's training step
// for wasm and trains it (the loss falls), and the installed `kiln` command runs; (b) an esbuild
// browser bundle of a page that imports "kiln" compiles a model inside headless Chromium (the
// compiler in the page, not a prebuilt artifact) and runs it on webgpu and on wasm; outputs are
// compared with values worked out by hand below.
// No Chromium or no WebGPU adapter: the browser checks skip with a notice, unless KILN_REQUIRE_WEBGPU=1.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CHROMIUM = process.env["KILN_CHROMIUM"] ?? "/usr/bin/chromium";
const REQUIRE_WEBGPU = process.env["KILN_REQUIRE_WEBGPU"] === "1";

// The repository's own resolution hint (NODE_OPTIONS=--conditions=kiln-source, vitest.config.ts)
// must not reach the scratch project: there "kiln" is the installed, built package.
const userEnv = { ...process.env, NODE_OPTIONS: "" };
const run = (cmd: string, args: readonly string[], cwd: string): string =>
  execFileSync(cmd, args, { cwd, encoding: "utf8", env: userEnv, stdio: ["ignore", "pipe", "pipe"] });

let scratch = "";
/** Whether the installed package held dist/dsl/library.cache before and after `npm rebuild kiln` ran its postinstall. */
let cacheInTarball = true;
let cacheAfterRebuild = false;

beforeAll(() => {
  scratch = mkdtempSync(path.join(os.tmpdir(), "kiln-pack-"));
  const packs = path.join(scratch, "packs");
  mkdirSync(packs);
  run("npm", ["pack", "--pack-destination", packs, "--silent"], root); // prepack: npm run build
  const tarball = readdirSync(packs).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error("npm pack wrote no tarball");
  const project = path.join(scratch, "project");
  mkdirSync(project);
  writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "uses-kiln", private: true, type: "module" }));
  // Scripts off: webgpu's install script only touches macOS binaries, esbuild's checks its binary.
  run("npm", ["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", path.join(packs, tarball)], project);
  // Then kiln's own, as `npm install` runs it where install scripts run: package.json's
  // postinstall (scripts/postinstall.mjs) writes the library's code cache in the installed
  // folder. npm 11 asks a project to approve a dependency's install scripts (allowScripts; the
  // key of a tarball is its file: spec).
  const installed = path.join(project, "node_modules/kiln/dist/dsl/library.cache");
  cacheInTarball = existsSync(installed);
  const manifest = JSON.parse(readFileSync(path.join(project, "package.json"), "utf8"));
  manifest.allowScripts = { [`file:${path.join(packs, tarball)}`]: true };
  writeFileSync(path.join(project, "package.json"), JSON.stringify(manifest));
  run("npm", ["rebuild", "kiln", "--foreground-scripts", "--no-audit", "--no-fund"], project);
  cacheAfterRebuild = existsSync(installed);
}, 240_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const project = (): string => path.join(scratch, "project");

describe("the packed package", () => {
  test("ships built JavaScript and declarations, not the TypeScript sources", () => {
    const installed = path.join(project(), "node_modules/kiln");
    expect(existsSync(path.join(installed, "dist/dsl/index.js"))).toBe(true);
    expect(existsSync(path.join(installed, "dist/dsl/index.d.ts"))).toBe(true);
    expect(existsSync(path.join(installed, "dsl/index.ts"))).toBe(false);
    // package.json's postinstall runs a shipped file (npm fails an install whose script is missing).
    expect(existsSync(path.join(installed, "scripts/postinstall.mjs"))).toBe(true);
    // The runtime's sources travel too (artifact folders ship them), at the root: a .ts beside
    // a .d.ts in dist/ is what TypeScript would pick when a user's project checks its types.
    expect(existsSync(path.join(installed, "runtime/artifact/load.ts"))).toBe(true);
    expect(readdirSync(path.join(installed, "dist/runtime/artifact")).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
  });

  test("npm's postinstall writes the library's code cache where the package is installed: a fresh process takes it, and errors still name the user's line", () => {
    // The tarball holds none (a cache names the folder it was made in: prepack builds with --no-code-cache).
    expect(cacheInTarball).toBe(false);
    expect(cacheAfterRebuild).toBe(true);
    const script = `
import * as k from "kiln";
let message;
try {
  await k.compile((a, b) => k.matmul(a, b), [k.f32([2, 3]), k.f32([4, 5])], { target: "cpu" });
} catch (e) {
  message = e.message;
}
console.log(JSON.stringify({ codeCache: globalThis[Symbol.for("kiln.library")].codeCache, message }));
`;
    writeFileSync(path.join(project(), "shape-error.mjs"), script);
    const line = script.split("\n").findIndex((l) => l.includes("k.matmul(a, b)")) + 1;
    for (const [env, codeCache] of [
      [{}, "accepted"],
      [{ KILN_LIBRARY_CACHE: "0" }, "off"],
    ] as const) {
      // It ends by itself (no process.exit): a failed compile leaves no worker holding the process open.
      const out = execFileSync(process.execPath, ["shape-error.mjs"], { cwd: project(), encoding: "utf8", env: { ...userEnv, ...env }, timeout: 30_000 });
      const got = JSON.parse(out.trim().split("\n").at(-1)!) as { codeCache: string; message: string };
      expect(got.codeCache).toBe(codeCache);
      expect(got.message).toMatch(/shape mismatch in matmul/);
      expect(got.message).toMatch(new RegExp(`at shape-error\\.mjs:${line}:\\d+$`));
    }
  });

  test("a TypeScript project type-checks against the declarations (skipLibCheck off)", () => {
    writeFileSync(
      path.join(project(), "check.ts"),
      'import * as k from "kiln";\nexport const exe: Promise<k.Executable> = k.compile((x: k.Tensor) => x.mul(2).sum(), [k.f32([3])], { target: "wasm" });\n',
    );
    const tsconfig = {
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022", "DOM"],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ["check.ts"],
    };
    writeFileSync(path.join(project(), "tsconfig.json"), JSON.stringify(tsconfig));
    const tsc = spawnSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "."], {
      cwd: project(),
      encoding: "utf8",
      env: userEnv,
    });
    expect(`${tsc.stdout}${tsc.stderr}`).toBe("");
    expect(tsc.status).toBe(0);
  }, 60_000);

  test("plain node imports kiln, compiles an MLP training step for wasm, and the loss falls", () => {
    // Two classes of points in 4-d: class c sits around +2 on axis c and -2 elsewhere.
    const script = `
import * as k from "kiln";
const N = 16, D = 4, C = 2;
const x = [], y = [];
for (let i = 0; i < N; i++) {
  const c = i % C;
  y.push(c);
  x.push(Array.from({ length: D }, (_, d) => (d === c ? 2 : -2) + 0.25 * Math.sin(7 * i + d)));
}
const net = k.nn.sequential(k.nn.linear(D, 8), k.nn.relu(), k.nn.linear(8, C));
const step = k.trainStep(net, (logits, labels) => k.nn.functional.crossEntropy(logits, labels), k.optim.adamW({ lr: 0.05 }));
const exe = await k.compile(step, [k.f32([N, D]), k.i32([N])], { target: "wasm" });
const losses = [];
for (let i = 0; i < 8; i++) losses.push((await exe.run([x.flat(), y])).loss.data[0]);
await exe.save("saved"); // the artifact folder: loader and runtime transpiled from the shipped sources
console.log(JSON.stringify({ losses }));
`;
    writeFileSync(path.join(project(), "train.mjs"), script);
    const out = JSON.parse(run(process.execPath, ["train.mjs"], project()).trim().split("\n").at(-1)!) as { losses: number[] };
    expect(out.losses).toHaveLength(8);
    expect(out.losses.every(Number.isFinite)).toBe(true);
    // Cross-entropy of 2 classes starts near ln 2 for a fresh net; 8 AdamW steps on separable data at least halve it.
    expect(out.losses[0]).toBeGreaterThan(0.3);
    expect(out.losses.at(-1)!).toBeLessThan(0.5 * out.losses[0]!);
    for (const file of ["manifest.json", "index.js", "index.ts", "runtime/wasm/run-artifact.js"])
      expect(existsSync(path.join(project(), "saved", file)), file).toBe(true);
  }, 60_000);

  test("the installed kiln command runs the built CLI with plain node", () => {
    const version = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version as string;
    expect(run(path.join(project(), "node_modules/.bin/kiln"), ["--version"], project()).trim()).toBe(`kiln ${version}`);
  });
});

/**
 * The page: compiles f(x, w, s) = { a: relu(x @ w - 2).sum(-1), b: softmax(s) } with kiln for
 * each target and posts what it got. By hand: x @ w = [[1,2,1],[3,4,1]]; minus 2 and relu:
 * [[0,0,0],[1,2,0]]; row sums [0, 3]. softmax([0, ln 3]) = [1, 3] / 4 = [0.25, 0.75].
 */
const PAGE_SCRIPT = `
import * as k from "kiln";
const f = (x, w, s) => ({ a: x.matmul(w).sub(2).relu().sum(-1), b: s.softmax(-1) });
const specs = [k.f32([2, 2]), k.f32([2, 3]), k.f32([2])];
const inputs = [[1, 2, 3, 4], [1, 0, -1, 0, 1, 1], [0, Math.log(3)]]; // flat, row-major
const results = {};
for (const target of ["webgpu", "wasm"]) {
  try {
    const exe = await k.compile(f, specs, { target });
    const out = await exe.run(inputs);
    results[target] = { a: Array.from(out.a.data), b: Array.from(out.b.data) };
  } catch (e) {
    results[target] = { error: String((e && e.message) || e) };
  }
}
window.kilnResults = results;
`;

describe("kiln bundled for a browser", () => {
  test("a page compiles a model with kiln and runs it on webgpu and wasm in Chromium", async () => {
    if (!existsSync(CHROMIUM)) {
      if (REQUIRE_WEBGPU) throw new Error(`KILN_REQUIRE_WEBGPU=1 but there is no Chromium at ${CHROMIUM}`);
      console.warn(`test/package: no Chromium at ${CHROMIUM}; the browser check skips`);
      return;
    }
    const www = path.join(project(), "www");
    mkdirSync(www, { recursive: true });
    writeFileSync(path.join(project(), "page.js"), PAGE_SCRIPT);
    // Resolved from the scratch project: "kiln" is the installed tarball; its package.json
    // "browser" map leaves out the Node-only modules (node:*, the Dawn binding, ts-morph).
    const bundle = await build({
      entryPoints: [path.join(project(), "page.js")],
      absWorkingDir: project(),
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      outfile: path.join(www, "page.js"),
      logLevel: "silent",
    });
    expect(bundle.errors).toEqual([]);
    const server = http.createServer((req, res) => {
      if (req.url === "/")
        res.writeHead(200, { "content-type": "text/html" }).end('<!doctype html><title>kiln in a page</title><script type="module" src="/page.js"></script>');
      else if (req.url === "/page.js") res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(path.join(www, "page.js")));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=vulkan"],
    });
    try {
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      await page
        .waitForFunction(() => (window as { kilnResults?: unknown }).kilnResults !== undefined || document.title === "failed", undefined, { timeout: 60_000 })
        .catch(() => undefined);
      expect(pageErrors).toEqual([]);
      const results = (await page.evaluate(() => (window as { kilnResults?: unknown }).kilnResults)) as Record<
        string,
        { a?: number[]; b?: number[]; error?: string }
      >;
      const hasAdapter = await page.evaluate(async () => Boolean(await (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu?.requestAdapter()));
      const targets = hasAdapter || REQUIRE_WEBGPU ? ["webgpu", "wasm"] : ["wasm"];
      if (!targets.includes("webgpu")) console.warn("test/package: Chromium has no WebGPU adapter; only wasm is checked in the page");
      for (const target of targets) {
        const got = results[target]!;
        expect(got.error, target).toBeUndefined();
        expect(got.a, target).toEqual([0, 3]);
        expect(got.b![0]).toBeCloseTo(0.25, 6);
        expect(got.b![1]).toBeCloseTo(0.75, 6);
      }
    } finally {
      await browser.close();
      server.close();
    }
  }, 120_000);
});
