// The data `kiln view` draws (cli/view-data.ts), checked against small graphs written here:
// module folding and edge lifting against a tree drawn by hand, module placement of unscoped
// nodes, the pass diff against rewrites done by hand, node → kernel against the kernel
// program's own buffers, kernel cost against FLOPs and bytes derived by hand, and the page
// (cli/view-page.ts) carrying the data intact. The page in a browser: test/browser/view.test.ts.

import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { parseGraph } from "../../compiler/ir/parser.ts";
import { foldModules, modulePaths, passDiff, buildViewData, type ViewData } from "../../cli/view-data.ts";
import { renderViewPage } from "../../cli/view-page.ts";
import { viewProfileOf } from "../../cli/view-profile.ts";
import { main } from "../../cli/main.ts";
import { bufferIO } from "../../cli/io.ts";
import { compileJs } from "../../targets/js.ts";
import { compileForView } from "../../cli/view.ts";
import { isProgram, type Program } from "../../dsl/program.ts";

/** The named k.program a module exports. */
function programOf(mod: Record<string, unknown>, name: string): Program {
  const p = mod[name];
  if (!isProgram(p)) throw new Error(`no program ${name}`);
  return p;
}

describe("module folding", () => {
  // Nodes 0..4 with paths root, a, a.b, a.b, c; edges 0→1, 1→2, 2→3, 3→4, 0→4.
  const operandLists = [[], [0], [1], [2], [3, 0]];
  const paths = [[], ["a"], ["a", "b"], ["a", "b"], ["c"]];
  const modules = foldModules(operandLists, paths, [false, false, true, false, true]);
  const byPath = (p: string): number => modules.findIndex((m) => m.path.join(".") === p);
  const [root, a, ab, c] = [byPath(""), byPath("a"), byPath("a.b"), byPath("c")];
  const item = (m: number): number => -(m + 1);

  test("builds the tree of module paths, each node in its own module", () => {
    expect(root).toBe(0);
    expect(modules.length).toBe(4);
    expect(modules[root]!.nodes).toEqual([0]);
    expect([...modules[root]!.children].sort()).toEqual([a, c].sort());
    expect(modules[a]!.nodes).toEqual([1]);
    expect(modules[a]!.children).toEqual([ab]);
    expect(modules[ab]!.nodes).toEqual([2, 3]);
    expect(modules[c]!.nodes).toEqual([4]);
    expect([root, a, ab, c].map((m) => modules[m]!.size)).toEqual([5, 3, 2, 1]);
    expect([root, a, ab, c].map((m) => modules[m]!.changed)).toEqual([2, 1, 1, 1]);
  });

  test("lifts every edge to the innermost module holding both ends, once", () => {
    const edges = (m: number): string[] => modules[m]!.edges.map(([x, y, n]) => `${x}>${y}x${n}`).sort();
    expect(edges(root)).toEqual([`0>${item(a)}x1`, `0>${item(c)}x1`, `${item(a)}>${item(c)}x1`].sort());
    expect(edges(a)).toEqual([`1>${item(ab)}x1`]);
    expect(edges(ab)).toEqual(["2>3x1"]);
    expect(edges(c)).toEqual([]);
  });

  test("counts parallel edges between the same two items", () => {
    const m = foldModules([[], [], [0, 1]], [["p"], ["p"], ["q"]]);
    const p = m.findIndex((x) => x.path.join(".") === "p");
    const q = m.findIndex((x) => x.path.join(".") === "q");
    expect(m[0]!.edges).toEqual([[-(p + 1), -(q + 1), 2]]);
  });
});

describe("module placement of nodes without a scope", () => {
  const g = parseGraph(`graph @step(%x: f32[4], %"lin.weight": f32[4], %"opt.lin.weight.m": f32[4]) {
  %0 = mul %x, %"lin.weight" : f32[4] scope("lin")
  %1 = exp2 %0 : f32[4]
  %2 = neg %1 : f32[4] scope("lin.act")
  %3 = add %"opt.lin.weight.m", %2 : f32[4]
  %4 = add %"lin.weight", %3 : f32[4]
  %5 = neg %x : f32[4]
  return %2 as y, %4 as "lin.weight" aliases %"lin.weight", %5 as z
}`);
  const { paths, inferred } = modulePaths(g);
  // node order: inputs x, lin.weight, opt…m, then %0..%5
  const at = (i: number): string => paths[i]!.join("/");

  test("scoped nodes keep their module path; a parameter goes to its module", () => {
    expect(at(3)).toBe("lin");
    expect(inferred[3]).toBe(false);
    expect(at(5)).toBe("lin/act");
    expect(at(1)).toBe("lin");
  });

  test("an unscoped node goes where its users are", () => {
    // %1 feeds %2 (lin.act) and, through it, the update: its only user is %2.
    expect(at(4)).toBe("lin/act");
    expect(inferred[4]).toBe(true);
  });

  test("what only updates one state input goes under (update)/<its path>", () => {
    expect(at(6)).toBe("(update)/lin/weight");
    expect(at(7)).toBe("(update)/lin/weight");
    expect(at(2)).toBe("(update)/lin/weight");
  });

  test("what several updates share goes in a (shared) box where their paths meet", () => {
    const opt = parseGraph(`graph @opt(%"m.a": f32[2], %"m.b": f32[2], %t: f32[1]) {
  %0 = mul %t, %t : f32[1]
  %1 = expand %0 : f32[2]
  %2 = add %"m.a", %1 : f32[2]
  %3 = expand %0 : f32[2]
  %4 = add %"m.b", %3 : f32[2]
  return %2 as "m.a" aliases %"m.a", %4 as "m.b" aliases %"m.b"
}`);
    const placed = modulePaths(opt).paths.map((p) => p.join("/"));
    // %0 and %t serve both updates of module m: a (shared) box at their innermost common level.
    expect(placed).toEqual([
      "(update)/m/a",
      "(update)/m/b",
      "(update)/m/(shared)",
      "(update)/m/(shared)",
      "(update)/m/a",
      "(update)/m/a",
      "(update)/m/b",
      "(update)/m/b",
    ]);
  });

  test("the rest stays at the root or in (no module)", () => {
    expect(at(0)).toBe(""); // x: users in lin and in %5
    expect(at(8)).toBe("(no module)");
  });
});

describe("pass diff", () => {
  test("CSE: the duplicate is removed, nothing is new (the product is rewired, not rewritten)", () => {
    const before = parseGraph(`graph @g(%x: f32[4], %y: f32[4]) {
  %0 = add %x, %y : f32[4]
  %1 = add %x, %y : f32[4]
  %2 = mul %0, %1 : f32[4]
  return %2 as out
}`);
    const after = parseGraph(`graph @g(%x: f32[4], %y: f32[4]) {
  %0 = add %x, %y : f32[4]
  %1 = mul %0, %0 : f32[4]
  return %1 as out
}`);
    const { changed, removed } = passDiff(before, after);
    expect(changed.size).toBe(0);
    expect(removed).toEqual({ add: 1 });
  });

  test("a rewrite: the new op is changed, what it replaced is removed, users downstream are kept", () => {
    const before = parseGraph(`graph @g(%x: f32[4]) {
  %0 = const 2 : f32[4]
  %1 = mul %x, %0 : f32[4]
  %2 = exp2 %1 : f32[4]
  return %2 as out
}`);
    const after = parseGraph(`graph @g(%x: f32[4]) {
  %0 = add %x, %x : f32[4]
  %1 = exp2 %0 : f32[4]
  return %1 as out
}`);
    const { changed, removed } = passDiff(before, after);
    const addId = after.nodes.find((n) => n.op === "add")!.id;
    expect([...changed]).toEqual([addId]);
    expect(removed).toEqual({ const: 1, mul: 1 });
  });

  test("the same graph: nothing changed, nothing removed", () => {
    const g = parseGraph(`graph @g(%x: f32[4]) {
  %0 = exp2 %x : f32[4]
  return %0 as out
}`);
    expect(passDiff(g, g)).toEqual({ changed: new Set(), removed: {} });
  });
});

describe("kernels", () => {
  const g = parseGraph(`graph @g(%a: f32[6,5], %b: f32[5,7], %c: f32[6,7]) {
  %0 = dot %a, %b : f32[6,7]
  %1 = add %0, %c : f32[6,7]
  %2 = reduce_sum %1 axes=[1] : f32[6,1]
  %3 = exp2 %c : f32[6,7]
  return %1 as y, %2 as s, %3 as e
}`);
  const compiled = compileJs(g, { tile: false });
  const data = buildViewData({
    title: "g",
    target: "js",
    graphs: [
      { stage: "input", graph: g },
      { stage: "simplify", graph: compiled.graph },
    ],
    compiled,
  });
  const final = data.stages.at(-1)!;

  test("every computed node maps to one kernel, and that kernel writes the node's output buffer", () => {
    const buffers = compiled.program.buffers;
    for (const out of final.outputs) {
      const n = final.nodes[out.node]!;
      expect(n.kernel, `${out.name} has a kernel`).toBeDefined();
      const kernel = compiled.program.kernels[n.kernel!]!;
      const written = kernel.writes.map((b) => buffers[b]!.name);
      expect(written).toContain(out.name);
      expect(data.kernels[n.kernel!]!.nodes).toContain(out.node);
    }
    for (const n of final.nodes) if (n.op === "input") expect(n.kernel).toBeUndefined();
    const claimed = data.kernels.flatMap((k) => k.nodes);
    expect(new Set(claimed).size).toBe(claimed.length);
  });

  test("the kernel's rendered source and IR are attached, identical sources stored once", () => {
    for (const [i, k] of data.kernels.entries()) {
      expect(k.rendered.map((r) => data.sources[r.source])).toEqual([compiled.artifact.kernels[i]!.source]);
      expect(k.kir.startsWith(`kernel ${k.name}`)).toBe(true);
    }
    expect(new Set(data.sources).size).toBe(data.sources.length);
  });

  /** The one kernel the page shows for a graph written here. */
  const onlyKernel = (text: string): ViewData["kernels"][number] => {
    const graph = parseGraph(text);
    const c = compileJs(graph, { tile: false });
    const kernels = buildViewData({ title: "k", target: "js", graphs: [{ stage: "input", graph }], compiled: c }).kernels;
    expect(kernels.length).toBe(1);
    return kernels[0]!;
  };

  test("kernel cost: a contraction is 2·M·N·K FLOPs; bytes are the bound buffers", () => {
    const k = onlyKernel(`graph @mm(%a: f32[6,5], %b: f32[5,7]) {
  %0 = dot %a, %b : f32[6,7]
  return %0 as y
}`);
    expect([k.elements, k.flops, k.bytesRead, k.bytesWritten]).toEqual([6 * 7, 2 * 6 * 7 * 5, 4 * (6 * 5 + 5 * 7), 4 * 6 * 7]);
  });

  test("kernel cost: elementwise ops once per element, a row sum once per summed element", () => {
    const k = onlyKernel(`graph @ew(%a: f32[3,4]) {
  %0 = exp2 %a : f32[3,4]
  %1 = neg %0 : f32[3,4]
  %2 = reduce_sum %1 axes=[1] : f32[3,1]
  return %2 as s
}`);
    // exp2 and neg on 12 elements, 12 accumulation steps; 3 sums stored
    expect([k.flops, k.elements]).toEqual([12 + 12 + 12, 3]);
  });
});

describe("the profile overlay", () => {
  test("keeps each kernel's calls and total, names the clock, and totals host time over the steps", () => {
    const overlay = viewProfileOf(
      {
        kernels: [{ name: "k0_dot", calls: 3, totalMs: 1.5, meanMs: 0.5 } as { name: string; calls: number; totalMs: number }],
        clock: "device-timestamps",
        host: { inputMs: 0.25, readbackMs: 0.5, otherMs: 0.25 },
      },
      3,
    );
    expect(overlay).toEqual({ steps: 3, kernels: [{ name: "k0_dot", calls: 3, totalMs: 1.5 }], method: "GPU timestamp queries", hostMs: 3 });
  });
});

describe("the page", () => {
  test("carries the view data intact, with the layout library and nothing that closes its scripts early", () => {
    const g = parseGraph(`graph @g(%x: f32[4]) {
  %0 = exp2 %x : f32[4] loc("model.ts":3:1)
  return %0 as "</script><b>"
}`);
    const compiled = compileJs(g);
    const data = buildViewData({
      title: "g",
      target: "js",
      graphs: [{ stage: "input", graph: g }],
      compiled,
      readSource: (f) => (f === "model.ts" ? "a\nb\nc\n" : undefined),
    });
    expect(data.files).toEqual({ "model.ts": "a\nb\nc\n" });
    const html = renderViewPage(data);
    const packed = /<script id="kiln-data" type="application\/octet-stream">([^<]*)<\/script>/.exec(html)![1]!;
    expect(JSON.parse(gunzipSync(Buffer.from(packed, "base64")).toString("utf8"))).toEqual(JSON.parse(JSON.stringify(data)));
    expect(html).toContain("dagre");
    expect(html.match(/<\/script>/g)!.length).toBe(3);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  test("kiln view writes a page for the MLP train step", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-view-"));
    const out = path.join(dir, "mlp.html");
    const io = bufferIO();
    const code = await main(["view", "examples/mlp.ts", "--entry", "trainStep", "--target", "js", "--out", out], io);
    expect(io.stderr).toBe("");
    expect(code).toBe(0);
    expect(io.stdout).toMatch(/^wrote .*mlp\.html: trainStep for js, \d+ nodes, \d+ kernels/);
    const html = readFileSync(out, "utf8");
    const packed = /<script id="kiln-data" type="application\/octet-stream">([^<]*)<\/script>/.exec(html)![1]!;
    const data = JSON.parse(gunzipSync(Buffer.from(packed, "base64")).toString("utf8")) as ViewData;
    expect(data.stages.map((s) => s.file)).toEqual(["00-input.kir", "01-simplify.kir"]);
    expect(data.dumps.map((d) => d.name)).toContain("02-fuse.groups.txt");
    expect(data.files["examples/mlp.ts"]).toBe(readFileSync("examples/mlp.ts", "utf8"));
    // The parameters' modules are the Sequential's children, 0 and 2.
    const top = data.stages[1]!.modules.filter((m) => m.parent === 0).map((m) => m.path.join("."));
    expect(top).toEqual(expect.arrayContaining(["0", "2"]));
  });

  test("kiln view shows wasm kernels as text: wabt's disassembly of the very modules the target rendered", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-view-"));
    const out = path.join(dir, "mlp-wasm.html");
    const io = bufferIO();
    expect(await main(["view", "examples/mlp.ts", "--entry", "trainStep", "--target", "wasm", "--out", out], io)).toBe(0);
    const html = readFileSync(out, "utf8");
    const packed = /<script id="kiln-data" type="application\/octet-stream">([^<]*)<\/script>/.exec(html)![1]!;
    const data = JSON.parse(gunzipSync(Buffer.from(packed, "base64")).toString("utf8")) as ViewData;
    expect(data.sourceKind).toBe("wat");
    // The same kernels compiled apart: each page text exports what V8 reads from that binary.
    const { compiled } = await compileForView(programOf(await import("../../examples/mlp.ts"), "trainStep"), "trainStep", "wasm");
    const binaries = buildViewData({ title: "t", target: "wasm", graphs: [], compiled }).sources;
    expect(data.sources.length).toBe(binaries.length);
    binaries.forEach((b64, i) => {
      const exported = WebAssembly.Module.exports(new WebAssembly.Module(Buffer.from(b64, "base64"))).map((e) => e.name);
      const text = data.sources[i]!;
      expect(text.startsWith("(module")).toBe(true);
      for (const name of exported) expect(text).toContain(`(export "${name}"`);
    });
  });

  test("a bad --profile is a usage error", async () => {
    const io = bufferIO();
    expect(await main(["view", "examples/mlp.ts", "--profile", "x"], io)).toBe(2);
    expect(io.stderr).toContain("--profile needs a positive whole number");
  });
});
