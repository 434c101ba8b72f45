// The `kiln view` page in a real browser: headless Chromium (Debian's, driven by playwright-core)
// opens the pages `kiln view` writes for the MLP train step (js) and the GPT's (examples/gpt.ts,
// webgpu) from file:// with every
// network request refused, finds no console errors, opens modules, follows a node to its
// kernel's generated source, searches, and prints (never asserts) the load and layout time.
// A screenshot goes to out/view-test.png; with KILN_VIEW_SCREENSHOT=1 also to docs/view.png
// (the one the docs show), so a test run never rewrites a tracked file.
// No Chromium: the cases skip with a notice, unless KILN_REQUIRE_WEBGPU=1 (CI), as in
// test/browser/artifact.test.ts.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, describe, expect, test } from "vitest";
import { bufferIO } from "../../cli/io.ts";
import { main } from "../../cli/main.ts";
import { compileForView } from "../../cli/view.ts";
import { buildViewData } from "../../cli/view-data.ts";
import { renderViewPage } from "../../cli/view-page.ts";
import { traceProgram } from "../../dsl/program.ts";
import { compileJs } from "../../targets/js.ts";
import { trainStep as mlpTrainStep } from "../../examples/mlp.ts";

const CHROMIUM = process.env["KILN_CHROMIUM"] ?? "/usr/bin/chromium";
const REQUIRED = process.env["KILN_REQUIRE_WEBGPU"] === "1";
const GPT = "examples/gpt.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-view-browser-"));

/** Runs `kiln view` and returns the page's path. */
async function writePage(model: string, target: string, name: string): Promise<string> {
  const out = path.join(dir, `${name}.html`);
  const io = bufferIO();
  const code = await main(["view", model, "--entry", "trainStep", "--target", target, "--out", out], io);
  if (code !== 0) throw new Error(`kiln view ${model} failed: ${io.stderr}`);
  return out;
}

let browser: Browser | undefined;
let notice: string | undefined;
if (!existsSync(CHROMIUM)) notice = `no Chromium at ${CHROMIUM}`;
else {
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-background-networking", "--no-first-run"] });
  } catch (e) {
    notice = `Chromium at ${CHROMIUM} did not start: ${(e as Error).message.split("\n")[0]}`;
  }
}
if (notice) console.warn(`test/browser/view: ${notice}; the viewer cases ${REQUIRED ? "fail (KILN_REQUIRE_WEBGPU=1)" : "skip"}`);
afterAll(async () => {
  await browser?.close();
});
const canRun = browser !== undefined || REQUIRED;

interface Opened {
  readonly page: Page;
  readonly errors: string[];
  readonly requests: string[];
}

/** Opens `file` with the network cut off; records console errors, page errors and any request beyond the file. */
async function open(file: string): Promise<Opened> {
  expect(browser, notice).toBeDefined();
  const page = await browser!.newPage({ viewport: { width: 1400, height: 850 } });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    requests.push(url);
    return route.abort();
  });
  const started = performance.now();
  await page.goto(`file://${file}`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 30_000 });
  const timing = (await page.evaluate("({ load: window.kilnView.loadMs, layout: window.kilnView.layoutMs })")) as { load: number; layout: number };
  console.log(
    `view ${path.basename(file)}: ready ${(performance.now() - started).toFixed(0)} ms after navigation (inflate ${timing.load.toFixed(0)} ms, first layout ${timing.layout.toFixed(0)} ms)`,
  );
  return { page, errors, requests };
}

/**
 * Clicks the module box with path `p` (dotted) and waits until it is drawn open. Clicks on the
 * graph are dispatched to the element: a box may lie outside the viewport or under its children.
 */
async function openModule(page: Page, p: string): Promise<void> {
  await page.locator(`g.module[data-path="${p}"] > rect.box`).dispatchEvent("click");
  await page.waitForSelector(`g.module.open[data-path="${p}"]`);
}

describe.runIf(canRun)("kiln view in headless Chromium", () => {
  test("MLP train step: open a module, follow a node to its kernel's source", async () => {
    const file = await writePage("examples/mlp.ts", "js", "mlp");
    const { page, errors, requests } = await open(file);
    const before = await page.locator("g.node").count();
    await openModule(page, "0");
    expect(await page.locator("g.node").count()).toBeGreaterThan(before);
    // A node of the first linear layer that a kernel computes: its panel names the kernel.
    await page.locator('g.module[data-path="0"] g.node[data-kernel]').first().dispatchEvent("click");
    await page.click("#panel a.kernel-link");
    const name = (await page.textContent("#panel h2"))!.trim();
    const source = await page.textContent("#panel pre.kernel-source");
    // The same program compiled here, apart from the page: its kernel of that name has that source.
    const expected = compileJs(traceProgram(mlpTrainStep, "trainStep").graph).artifact.kernels.find((k) => k.name === name);
    expect(expected, `a js kernel named ${name}`).toBeDefined();
    // Nodes traced outside the model file (the optimizer's) carry the tracing call's line: here and in the CLI, two different lines.
    const withoutLocs = (text: string): string => text.replace(/loc\("[^"]*":\d+:\d+\)/g, "loc()");
    expect(withoutLocs(source!)).toBe(withoutLocs(expected!.source));
    expect(source).toContain('loc("examples/mlp.ts":');
    // The kernel's source line opens the model file at that line.
    await page.click('#panel a.loc[data-loc^="examples/mlp.ts"] >> nth=0');
    expect(await page.textContent("#source-view")).toContain("examples/mlp.ts");
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  });

  test("a profile overlay: times on the graph, the kernels table sorted by time", async () => {
    // Times made up here (kernel i takes i + 1 ms a step over 4 steps): the page's arithmetic, not a measurement.
    const { graphs, compiled } = await compileForView(mlpTrainStep, "trainStep", "js");
    const kernels = compiled.artifact.kernels.map((k, i) => ({ name: k.name, calls: 4, totalMs: 4 * (i + 1) }));
    const file = path.join(dir, "mlp-profile.html");
    writeFileSync(file, renderViewPage(buildViewData({ title: "mlp", target: "js", graphs, compiled, profile: { steps: 4, kernels, method: "made up" } })));
    const { page, errors } = await open(file);
    await page.click('header nav button[data-tab="kernels"]');
    const firstRow = (await page.locator("#kernels-tab tr.pick").first().textContent())!;
    const slowest = compiled.artifact.kernels.at(-1)!.name;
    expect(firstRow).toContain(slowest.slice(0, 40));
    expect(firstRow).toContain(`${kernels.length.toFixed(3)}`);
    const total = (kernels.length * (kernels.length + 1)) / 2;
    expect(await page.textContent("#kernels-tab")).toContain(`${total.toFixed(3)} ms/step in kernels`);
    await page.click('header nav button[data-tab="graph"]');
    await openModule(page, "0");
    expect(await page.locator('g.module[data-path="0"] g.node[data-kernel] text').allTextContents()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^\d+\.\d{3} ms$/)]),
    );
    expect(errors).toEqual([]);
    await page.close();
  });

  test("GPT train step: open blocks.0.attn, follow a node to its WGSL, search, other stages", async () => {
    const file = await writePage(GPT, "webgpu", "gpt");
    const { page, errors, requests } = await open(file);
    for (const p of ["blocks", "blocks.0", "blocks.0.attn"]) await openModule(page, p);
    // A node drawn inside blocks.0.attn with a kernel; its panel shows the module and links to the kernel.
    await page.locator('g.module[data-path="blocks.0.attn"] g.node[data-kernel]').first().dispatchEvent("click");
    expect(await page.textContent("#panel")).toContain("blocks.0.attn");
    await page.click("#panel a.kernel-link");
    const source = (await page.textContent("#panel pre.kernel-source"))!;
    const name = (await page.textContent("#panel h2"))!.trim();
    expect(source).toContain("@compute");
    expect(source).toContain(name);
    // Back from the kernel to its node (the graph centres on it), and to the kernel again: the screenshot.
    await page.click("#panel a.node-link >> nth=0");
    await page.click("#panel a.kernel-link");
    mkdirSync("out", { recursive: true });
    await page.screenshot({ path: "out/view-test.png" });
    if (process.env["KILN_VIEW_SCREENSHOT"] === "1") copyFileSync("out/view-test.png", "docs/view.png");
    // Search by parameter name finds its input node; picking a hit selects it.
    await page.fill("#search", "blocks.1.mlp.0.weight");
    await page.press("#search", "Enter");
    await page.click("#panel a.node-link >> nth=0");
    expect(await page.textContent("#panel h2")).toContain("blocks.1.mlp.0.weight");
    // The traced graph as the other stage: drawn, with nothing marked changed at the input.
    await page.selectOption("#stage", "0");
    expect(await page.locator("g.node.changed, g.module.changed").count()).toBe(0);
    await page.selectOption("#stage", "1");
    expect(await page.locator("g.module.changed").count()).toBeGreaterThan(0);
    // The kernels table lists every kernel.
    await page.click('header nav button[data-tab="kernels"]');
    expect(await page.locator("#kernels-tab tr.pick").count()).toBeGreaterThan(10);
    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  });
});
